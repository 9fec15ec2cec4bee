"""Word-level speaker assignment: each word gets the speaker whose segments cover most of it.

Not one speaker per Whisper segment: a segment often holds both parties of a quick exchange, and giving it one
speaker collapses their turns. Overlapping speech is explicit: a word that two speakers' segments both cover
substantially is marked `overlap`.

Then the words of a sentence are kept together (`realign_to_sentences`): a diarizer decides over windows of about
a second and a half, so at a change of speaker the first or last words of one party's sentence fall to the other
("вам удобно сейчас | говорить."), while Whisper's punctuation of the same audio says where the sentence ends.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence

from pipeline.asr import AsrWord
from pipeline.speakers.base import SpeakerWord
from pipeline.speakers.diarization import DiarizationSegment

__all__ = ["SENTENCE_PAUSE_S", "assign_speakers", "realign_to_sentences"]

SENTENCE_ENDS = (".", "?", "!", "…")
# A pause this long ends a sentence even where Whisper wrote no full stop: the other party may have answered in it.
SENTENCE_PAUSE_S = 1.0


def assign_speakers(words: list[AsrWord], segments: list[DiarizationSegment], *,
                    overlap_share: float = 0.3) -> list[SpeakerWord]:
    """Give each word the speaker whose segments (any order, possibly overlapping) cover most of it; a word that a
    second speaker covers for at least `overlap_share` of its length is marked `overlap`; a word between
    segments goes to the nearest one."""
    ordered = sorted(segments, key=lambda segment: segment.start)
    starts = [segment.start for segment in ordered]
    longest = max((segment.end - segment.start for segment in ordered), default=0.0)
    assigned = []
    for word in words:
        covered: dict[str, float] = {}
        first = bisect.bisect_left(starts, word.start - longest)
        for segment in ordered[first: bisect.bisect_right(starts, word.end)]:
            shared = min(segment.end, word.end) - max(segment.start, word.start)
            if shared > 0:
                covered[segment.speaker] = covered.get(segment.speaker, 0.0) + shared
        if covered:
            ranked = sorted(covered.items(), key=lambda item: -item[1])
            speaker = ranked[0][0]
            duration = max(word.end - word.start, 1e-3)
            overlap = len(ranked) > 1 and ranked[1][1] >= overlap_share * duration
        elif ordered:  # between segments (a word in a pause VAD cut): the nearest speaker
            nearest = min(ordered, key=lambda s: min(abs(s.start - word.end), abs(word.start - s.end)))
            speaker, overlap = nearest.speaker, False
        else:
            speaker, overlap = "S1", False
        assigned.append(SpeakerWord(word=word, speaker=speaker, overlap=overlap))
    return assigned


def realign_to_sentences(words: Sequence[SpeakerWord], *, max_run_s: float) -> list[SpeakerWord]:
    """Within each sentence (words up to one that ends in . ? ! or …, or up to a pause of SENTENCE_PAUSE_S), a
    run of another speaker's words shorter than `max_run_s` and fewer than the sentence's main speaker's goes to
    that speaker; a sentence whose speakers have as many words each is left as it is.

    On the nine sample calls' mono mixes this halved the words given the wrong role (20 to 10 of 768) and moved
    none of the right ones (bench/diarization.py). `max_run_s` 0 leaves every word where it was.

    Args:
        words: the call's words in the order Whisper wrote them, each with its speaker.
        max_run_s: the longest run moved (the diarizer's window: a longer run is the diarizer's own finding).
    """
    if max_run_s <= 0:
        return list(words)
    speakers = [item.speaker for item in words]
    for sentence in _sentences(words):
        runs: list[list[int]] = []  # indices into `words`, one list per run of one speaker
        for index in sentence:
            if runs and speakers[runs[-1][0]] == speakers[index]:
                runs[-1].append(index)
            else:
                runs.append([index])
        if len(runs) < 2:
            continue
        counts = Counter(speakers[index] for index in sentence).most_common()
        main, main_count = counts[0]
        if counts[1][1] == main_count:
            continue
        for run in runs:
            first, last = words[run[0]].word, words[run[-1]].word
            if speakers[run[0]] != main and last.end - first.start <= max_run_s and len(run) < main_count:
                for index in run:
                    speakers[index] = main
    return [item if item.speaker == speaker else item.model_copy(update={"speaker": speaker})
            for item, speaker in zip(words, speakers, strict=True)]


def _sentences(words: Sequence[SpeakerWord]) -> list[list[int]]:
    sentences: list[list[int]] = []
    current: list[int] = []
    for index, item in enumerate(words):
        if current and item.word.start - words[current[-1]].word.end >= SENTENCE_PAUSE_S:
            sentences.append(current)
            current = []
        current.append(index)
        if item.word.text.rstrip(" \"'»)").endswith(SENTENCE_ENDS):
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences
