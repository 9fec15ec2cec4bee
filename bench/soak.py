"""The fault-injection soak (issue 11): a night of many calls with workers killed, S3 writes failing or hanging
and a flaky portal, re-run twice; against a clean night of the same calls measured in the same run.

Figures: calls lost, comments posted twice, calls transcribed twice, and the faulted night's wall time (its three
runs together) as a ratio to the clean night's. The goal: 0, 0, 0 and at most 1.3x. An hour or two with the
default 300 calls on 2 cores; run it by hand and record the figures in bench/README.md.

    .venv/bin/python bench/soak.py [--calls 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.soak import SoakPlan, soak  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--kill-every", type=int, default=25, help="kill a worker each time this many calls are "
                                                                   "stored")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callqa-soak-") as scratch:
        clean = soak(SoakPlan(calls=args.calls, faults=False), Path(scratch) / "clean")
        print("clean night:", *clean.lines(), sep="\n  ")
        faulted = soak(SoakPlan(calls=args.calls, kill_every=args.kill_every), Path(scratch) / "faults")
        print("night of faults:", *faulted.lines(), sep="\n  ")
    ratio = faulted.wall_s / clean.wall_s
    print(f"calls lost {len(faulted.lost)}, comments posted twice {faulted.duplicate_comments}, "
          f"transcribed twice {len(faulted.transcribed_twice)}; wall {faulted.wall_s:.0f} s against a clean "
          f"{clean.wall_s:.0f} s: {ratio:.2f}x (goal 1.3x)")


if __name__ == "__main__":
    main()
