"""Store requests several at a time: publishing a night reads and writes some 3 000 small objects (results and
ledgers), and each request waits on the network, not the CPU. One after another, a request that hangs for its
time-out or retries a 503 holds up every request behind it; eight at a time, it holds up one lane of eight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["REQUESTS_AT_ONCE", "concurrently"]

# Below boto3's default connection pool (10), so no request waits for a connection.
REQUESTS_AT_ONCE = 8

T = TypeVar("T")
R = TypeVar("R")


def concurrently(work: Callable[[T], R], items: Sequence[T], *, at_once: int = REQUESTS_AT_ONCE) -> list[R]:
    """`[work(item) for item in items]`, up to `at_once` items at a time, in the items' order.

    `work` runs in threads: it must touch only its own item's objects (every store here is safe to share
    between threads). The first exception `work` raises is raised here, once every item has run.
    """
    if len(items) <= 1 or at_once <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(at_once, len(items)), thread_name_prefix="callqa-store") as pool:
        futures = [pool.submit(work, item) for item in items]
        return [future.result() for future in futures]
