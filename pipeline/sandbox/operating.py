"""The operating-time limit (limits.md, "Ограничения на ресурсоемкость"): each method's execution time per
webhook/app is summed in one-minute buckets over ten minutes; once the sum exceeds the limit, the method's next
call is refused (429 OPERATION_TIME_LIMIT) until enough buckets have dropped out. The call that crosses the limit
still completes. `operating_reset_at` is when the oldest bucket drops out: ten minutes after the first call
counted in it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["OperatingTime"]

WINDOW_S = 600.0  # the portal's; a test may scale it down (SandboxOptions.operating_window_s)


@dataclass
class _Ledger:
    window_s: float
    buckets: list[list[float]] = field(default_factory=list)  # [[first call's time, seconds summed], ...]

    def expire(self, now: float) -> None:
        # Gone at the whole second `operating_reset_at` announces, so a client that waits for it is let through.
        self.buckets = [bucket for bucket in self.buckets if int(bucket[0] + self.window_s) > now]

    @property
    def operating(self) -> float:
        return sum(bucket[1] for bucket in self.buckets)

    @property
    def reset_at(self) -> int | None:
        return int(self.buckets[0][0] + self.window_s) if self.buckets else None


class OperatingTime:
    """Per (caller, method) ledgers; the clock is the sandbox's (tests move it instead of sleeping)."""

    def __init__(self, limit_s: float, window_s: float = WINDOW_S) -> None:
        self.limit_s, self.window_s = limit_s, window_s
        self.ledgers: dict[tuple[str, str], _Ledger] = {}
        self.lock = threading.Lock()

    def blocked(self, caller: str, method: str, now: float) -> bool:
        """Checked before a call: is the method's sum already over the limit?"""
        with self.lock:
            ledger = self.ledgers.get((caller, method))
            if ledger is None:
                return False
            ledger.expire(now)
            return ledger.operating > self.limit_s

    def add(self, caller: str, method: str, now: float, cost_s: float) -> tuple[float, int]:
        """Count one call; returns (operating, operating_reset_at) for the answer's `time` block."""
        with self.lock:
            ledger = self.ledgers.setdefault((caller, method), _Ledger(self.window_s))
            ledger.expire(now)
            if not ledger.buckets or now >= ledger.buckets[-1][0] + self.window_s / 10:  # ten buckets
                ledger.buckets.append([now, 0.0])
            ledger.buckets[-1][1] += cost_s
            reset_at = ledger.reset_at
            return ledger.operating, reset_at if reset_at is not None else int(now + self.window_s)
