"""Turns: what one speaker said without the other taking the floor in between.

A turn is a run of one speaker's consecutive words. It ends when another speaker says a word entirely inside
the pause before the speaker's next word (the other took the floor), or at a pause longer than `max_pause_s`.
Words the other party says *over* a speaker (an overlap, where both legs' words interleave in time) do not cut
the speaker's turn: the interrupted sentence stays one turn, and the interruption is a turn of its own.
"""

from __future__ import annotations

import bisect
from itertools import chain

from pydantic import TypeAdapter

from pipeline.schema import Turn, Word

__all__ = ["build_turns"]

# Turns are validated as one list, strictly (their values are the validated words' own): about half the time of
# building each Turn on its own, which re-scoring feels.
_TURNS = TypeAdapter(list[Turn])


def _turn_fields(run: list[Word]) -> dict:
    return {"start": run[0].start, "end": max([word.end for word in run]), "speaker": run[0].speaker,
            "role": run[0].role, "text": " ".join([word.text for word in run])}


def _floor_taken(other_starts: list[float], other_ends: list[float], gap_start: float, gap_end: float) -> bool:
    """Did another speaker say a whole word inside this pause? (Their words' starts in order, and ends.)"""
    first = bisect.bisect_left(other_starts, gap_start)
    last = bisect.bisect_right(other_starts, gap_end, first)
    return first < last and min(other_ends[first:last]) <= gap_end


def build_turns(words: list[Word], *, max_pause_s: float = 2.0) -> list[Turn]:
    """Group time-ordered words into turns, returned in order of their start."""
    by_speaker: dict[str, list[Word]] = {}
    for word in words:
        by_speaker.setdefault(word.speaker, []).append(word)
    spans = {speaker: [(word.start, word.end) for word in own] for speaker, own in by_speaker.items()}
    turns: list[dict] = []
    for speaker, own in by_speaker.items():
        # The other speakers' words as (start, end), by start: whether one lies wholly inside a pause is a
        # bisect and a min over the few that start in it (re-scoring does this for every word of every call).
        others = sorted(chain.from_iterable(theirs for other, theirs in spans.items() if other != speaker))
        other_starts = [start for start, _ in others]
        other_ends = [end for _, end in others]
        first = 0  # the first word of the current turn, in `own`
        previous_end = own[0].end
        for index, (start, end) in enumerate(spans[speaker]):
            if index and (start - previous_end > max_pause_s
                          or _floor_taken(other_starts, other_ends, previous_end, start)):
                turns.append(_turn_fields(own[first:index]))
                first = index
            previous_end = end
        turns.append(_turn_fields(own[first:]))
    return _TURNS.validate_python(sorted(turns, key=lambda turn: (turn["start"], turn["end"])), strict=True)
