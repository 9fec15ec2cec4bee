"""A sentence is one person's: Whisper's punctuation corrects a diarizer's word-level speakers in mono calls.

A diarizer decides over windows (the embedded one's are 1.6 s), so where the speaker changes, the first or last
words of one party's sentence fall to the other ("вам удобно сейчас | говорить."), and a sentence shorter than a
window ("Алло!", "Игорь.", "Подходит.") takes the voice of the speech around it. Whisper's punctuation of the same
audio says where each sentence begins and ends, so after the words get their speakers (assign.py):

1. `realign_to_sentences`: inside a sentence, a short run of another speaker's words goes to the sentence's main
   speaker.
2. `settle_short_sentences`: a short sentence is heard on its own (its audio embedded while the call streams
   through, `embed_short_sentences`) and goes, whole, to the speaker whose voice it clearly matches.

On the nine sample calls' mono mixes the words with the wrong role went 20 -> 10 -> 0 of 768, and on the held-out
dialogues 32 -> 30 -> 1 of 287 (the manager's "Алло!" answering the cleaning call had gone with the client's first
words, so who answered pointed the wrong way and the call got no roles); bench/README.md, diarization.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.asr import AsrWord, sentence_spans
from pipeline.audio import SAMPLE_RATE_HZ
from pipeline.speakers.base import SpeakerWord
from pipeline.speakers.voices import embed_clips

__all__ = ["SENTENCE_PAUSE_S", "SentenceVoice", "embed_short_sentences", "realign_to_sentences",
           "settle_short_sentences"]

# A pause this long ends a sentence even where Whisper wrote no full stop: the other party may have answered in it.
SENTENCE_PAUSE_S = 1.0
_PAD_S = 0.1  # around a short sentence's words when it is embedded: Whisper's word times clip the edges
_MIN_CLIP_S = 0.2  # less is too little of a voice to compare


def realign_to_sentences(words: Sequence[SpeakerWord], *, max_run_s: float) -> list[SpeakerWord]:
    """Within each sentence, a run of another speaker's words shorter than `max_run_s` and fewer than the
    sentence's main speaker's goes to that speaker; a sentence whose speakers have as many words each is left
    as it is.

    Args:
        words: the call's words in the order Whisper wrote them, each with its speaker.
        max_run_s: the longest run moved (about the diarizer's window: a longer run is the diarizer's own
            finding); 0 moves nothing.
    """
    if max_run_s <= 0:
        return list(words)
    speakers = [item.speaker for item in words]
    for sentence in sentence_spans([item.word for item in words], pause_s=SENTENCE_PAUSE_S):
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
    return _with_speakers(words, speakers)


@dataclass(frozen=True)
class SentenceVoice:
    """A short sentence's span in the call (seconds) and its audio's voice embedding (unit length, (256,))."""

    start: float
    end: float
    embedding: np.ndarray


def embed_short_sentences(samples: np.ndarray, words: Sequence[AsrWord], *, offset_s: float,
                          max_s: float) -> list[SentenceVoice]:
    """The voice of each sentence of `words` no longer than `max_s`, from `samples` (16 kHz mono, starting at
    `offset_s` in the call): what `settle_short_sentences` compares with the speakers' voices once they are known.
    A sentence that runs past the samples (a block's edge) is left out."""
    if max_s <= 0:
        return []
    spans, clips = [], []
    end_s = offset_s + len(samples) / SAMPLE_RATE_HZ
    for sentence in sentence_spans(words, pause_s=SENTENCE_PAUSE_S):
        start, end = words[sentence[0]].start, words[sentence[-1]].end
        if end - start > max_s or start < offset_s or end > end_s:
            continue
        first = int(max(0.0, start - _PAD_S - offset_s) * SAMPLE_RATE_HZ)
        last = int((min(end_s, end + _PAD_S) - offset_s) * SAMPLE_RATE_HZ)
        if last - first >= _MIN_CLIP_S * SAMPLE_RATE_HZ:
            spans.append((start, end))
            clips.append(samples[first:last].astype(np.float32, copy=False))
    return [SentenceVoice(start, end, embedding) for (start, end), embedding in zip(spans, embed_clips(clips),
                                                                                    strict=True)]


def settle_short_sentences(words: Sequence[SpeakerWord], sentences: Sequence[SentenceVoice],
                           voices: dict[str, np.ndarray], *, margin: float) -> list[SpeakerWord]:
    """Each short sentence's words (those whose middle lies in its span) go to the speaker whose voice the
    sentence's own audio matches, where it beats every other speaker's by `margin` (cosine); elsewhere they keep
    the speakers they have.

    Args:
        words: the call's words with their speakers.
        sentences: `embed_short_sentences` of the call.
        voices: each speaker's voice (unit length), from the diarization.
        margin: `speakers.voices.clear_margin`.
    """
    if len(voices) < 2 or not sentences:
        return list(words)
    names = list(voices)
    centroids = np.stack([voices[name] for name in names])
    middles = np.array([(item.word.start + item.word.end) / 2 for item in words])
    speakers = [item.speaker for item in words]
    for sentence in sentences:
        similarity = centroids @ sentence.embedding
        ranked = np.argsort(similarity)[::-1]
        if similarity[ranked[0]] - similarity[ranked[1]] < margin:
            continue
        inside = np.flatnonzero((middles >= sentence.start) & (middles <= sentence.end))
        for index in inside:
            speakers[index] = names[ranked[0]]
    return _with_speakers(words, speakers)


def _with_speakers(words: Sequence[SpeakerWord], speakers: list[str]) -> list[SpeakerWord]:
    return [item if item.speaker == speaker else item.model_copy(update={"speaker": speaker})
            for item, speaker in zip(words, speakers, strict=True)]
