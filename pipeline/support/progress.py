"""The one progress callback every long step reports through (the pattern of pyannote.audio's hooks).

    hook(step, artifact=None, *, completed=None, total=None)

`step` names what happened ("asr", "done" for one call; "planned", "cluster", "call", "comment" for a run),
`artifact` is what it produced (a finished call's outcome, the run's plan), `completed`/`total` say how far it
is (seconds of audio, or calls). Steps never test for None: they get `no_progress` by default. Only the command
line draws anything.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ProgressHook", "no_progress"]


class ProgressHook(Protocol):
    def __call__(self, step: str, artifact: object = None, *, completed: float | None = None,
                 total: float | None = None) -> None: ...


def no_progress(step: str, artifact: object = None, *, completed: float | None = None,
                total: float | None = None) -> None:
    return None
