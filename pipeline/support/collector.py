"""The garbage collector set up for a long run of small, short-lived work: re-scoring thousands of stored calls.

Each call builds a few thousand objects (its words, turns, hits) that die with it, nearly all freed by reference
counting (the few cycles, such as a fuzzy walk's recursive closure, wait for the next collection). With
CPython's defaults the collector starts after every 700 new objects, and every tenth and hundredth time it also
scans the caches that grow during the run (lemmas, the matcher's per-word lookups): a sixth of re-scoring time
in bench/rescore.py's stage profile. Everything loaded before the run (dictionaries, lexicons) lives
as long as the process and is frozen out of the scans; the young generation is collected less often.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_for_batch"]

# New objects between two young collections (CPython's default is 700). 5000 measured 12-15 % faster than the
# default in bench/rescore.py's stage profile; much larger values were no better (each collection scans more).
YOUNG_THRESHOLD = 5000


def settle_for_batch() -> None:
    """Freeze what this process has loaded so far and collect young objects less often, for the rest of the
    process's life: call it once, after loading, in a process that does only batch work."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
