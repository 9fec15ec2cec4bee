"""Turns: what one speaker said without the other taking the floor in between.

A turn is a run of one speaker's consecutive words. It ends when another speaker says a word entirely inside
the pause before the speaker's next word (the other took the floor), or at a pause longer than `max_pause_s`.
Words the other party says *over* a speaker (an overlap, where both legs' words interleave in time) do not cut
the speaker's turn: the interrupted sentence stays one turn, and the interruption is a turn of its own.
"""

from __future__ import annotations

import bisect

from pipeline.schema import Turn, Word

__all__ = ["build_turns"]


def _make_turn(run: list[Word]) -> Turn:
    return Turn(start=run[0].start, end=max(word.end for word in run), speaker=run[0].speaker, role=run[0].role,
                text=" ".join(word.text for word in run))


def _floor_taken(others: list[Word], other_starts: list[float], gap_start: float, gap_end: float) -> bool:
    """Did another speaker say a whole word inside this pause?"""
    first = bisect.bisect_left(other_starts, gap_start)
    last = bisect.bisect_right(other_starts, gap_end)
    return any(word.end <= gap_end for word in others[first:last])


def build_turns(words: list[Word], *, max_pause_s: float = 2.0) -> list[Turn]:
    """Group time-ordered words into turns, returned in order of their start."""
    by_speaker: dict[str, list[Word]] = {}
    for word in words:
        by_speaker.setdefault(word.speaker, []).append(word)
    turns: list[Turn] = []
    for speaker, own in by_speaker.items():
        others = sorted((w for w in words if w.speaker != speaker), key=lambda w: w.start)
        other_starts = [w.start for w in others]
        run = [own[0]]
        for previous, word in zip(own, own[1:]):
            if word.start - previous.end > max_pause_s or _floor_taken(others, other_starts, previous.end, word.start):
                turns.append(_make_turn(run))
                run = []
            run.append(word)
        turns.append(_make_turn(run))
    return sorted(turns, key=lambda turn: (turn.start, turn.end))
