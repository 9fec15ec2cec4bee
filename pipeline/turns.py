"""Turns: what one speaker said without the other speaking in between.

A turn is a maximal run of one speaker's consecutive words; a pause longer than `max_pause_s` inside it starts a
new turn (a long silence reads as two statements in the transcript).
"""

from __future__ import annotations

from pipeline.schema import Turn, Word

__all__ = ["build_turns"]


def build_turns(words: list[Word], *, max_pause_s: float = 2.0) -> list[Turn]:
    """Group time-ordered words into turns."""
    turns: list[Turn] = []
    run: list[Word] = []

    def close() -> None:
        if run:
            turns.append(Turn(start=run[0].start, end=max(w.end for w in run), speaker=run[0].speaker,
                              role=run[0].role, text=" ".join(w.text for w in run)))

    for word in words:
        if run and (word.speaker != run[-1].speaker or word.start - run[-1].end > max_pause_s):
            close()
            run = []
        run.append(word)
    close()
    return turns
