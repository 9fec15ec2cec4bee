"""How many CPU cores this process may use: what ASR threads, LocalCluster workers and re-scoring processes are
sized to."""

from __future__ import annotations

import os

__all__ = ["available_cores"]


def available_cores() -> int:
    """The cores this process may run on (its affinity: a container's or `taskset`'s limit), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
