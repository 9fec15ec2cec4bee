"""Word-level speaker assignment: each word gets the speaker whose segments cover most of it.

Not one speaker per Whisper segment: a segment often holds both parties of a quick exchange, and giving it one
speaker collapses their turns. Overlapping speech is explicit: a word that two speakers' segments both cover
substantially is marked `overlap`.
"""

from __future__ import annotations

import bisect

from pipeline.asr import AsrWord
from pipeline.speakers.base import SpeakerWord
from pipeline.speakers.diarization import DiarizationSegment

__all__ = ["assign_speakers"]


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
