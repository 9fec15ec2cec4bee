"""Where a call's time goes: wall seconds per stage, summed over the call's blocks.

    times = StageTimes()
    with times.stage("asr"):
        ...
    times.as_dict()   # {"decode": 0.41, "vad": 0.12, "asr": 3.2, ...}

One object per call, passed down with the call (never shared between calls): on a GPU worker several calls run at
once in threads, and each must count its own seconds. The run summary keeps them per call (`CallOutcome.stage_s`),
so an operator sees whether decoding, VAD, recognition or the speakers bound a night (bench/gpu.py sums them).
The stages are wall time on the worker's thread: with several calls in flight they overlap, and their sum is not
the run's wall time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["STAGES", "StageTimes"]

T = TypeVar("T")

# The stages in the order a call meets them (others may be added; these are the ones callqa records).
STAGES = ("fetch", "decode", "vad", "asr", "overlaps", "redecode", "speakers", "audio_copy", "derive", "store")


class StageTimes:
    """Seconds per named stage of one call, added up as the call goes (`stage`, `timed`, `add`)."""

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self._seconds[name] = self._seconds.get(name, 0.0) + max(0.0, seconds)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = self._clock()
        try:
            yield
        finally:
            self.add(name, self._clock() - started)

    def timed(self, name: str, items: Iterable[T]) -> Iterator[T]:
        """`items`, with the time spent producing each one (a generator's work between yields) counted as `name`."""
        iterator = iter(items)
        while True:
            started = self._clock()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(name, self._clock() - started)
                return
            self.add(name, self._clock() - started)
            yield item

    @classmethod
    def carried(cls, seconds: dict[str, float], *, clock: Callable[[], float] = time.perf_counter) -> StageTimes:
        """New times that start from `seconds`, what an earlier step of the same call counted."""
        times = cls(clock=clock)
        for name, value in seconds.items():
            times.add(name, value)
        return times

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in self._seconds.items()}
