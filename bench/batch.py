"""Batch throughput on this machine: `callqa run` against `callqa analyze` on each file in a loop, in one run.

All stereo sample calls (with their manifest) into a fresh local store each time:
- `analyze` loop: one `callqa analyze` process per file (what a shell script would do; the model loads per file);
- `callqa run --workers 1`: one worker process using every core for its ASR;
- `callqa run` with the LocalCluster default for this machine;
- `callqa run --workers N` with one worker per core (each ASR single-threaded).

Figures: audio seconds per wall second (end to end, cluster start-up included) and the ratio to the loop.

    .venv/bin/python bench/batch.py
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import CALLS, SAMPLE_CALLS  # noqa: E402

CALLQA = Path(sys.executable).with_name("callqa")
ENV = {**os.environ, "CALLQA_DEVICE": "cpu"}


def make_source(folder: Path) -> None:
    folder.mkdir()
    with (CALLS / "manifest.csv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["file"].endswith(".stereo.mp3")]
    for row in rows:
        shutil.copy(CALLS / row["file"], folder / row["file"])
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - started


def main() -> int:
    audio_s = sum(call.duration_s for call in SAMPLE_CALLS)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="callqa-batch-") as tmp:
        workdir = Path(tmp)
        source = workdir / "calls"
        make_source(source)
        started = time.perf_counter()
        for call in SAMPLE_CALLS:
            subprocess.run([str(CALLQA), "analyze", str(call.stereo), "--json", str(workdir / f"{call.call_id}.json"),
                            "--manager-channel", call.manager_channel, "--direction", call.direction, "-q"],
                           check=True, env=ENV)
        loop_s = time.perf_counter() - started
        rows = [("analyze loop (a process per file)", loop_s)]
        for label, extra in (("run --workers 1", ["--workers", "1"]), ("run (LocalCluster default)", []),
                             (f"run --workers {cores}", ["--workers", str(cores)])):
            store = workdir / f"store-{len(rows)}"
            rows.append((label, timed([str(CALLQA), "run", "--source", str(source), "--store", str(store), *extra])))
    print(f"{len(SAMPLE_CALLS)} stereo sample calls, {audio_s:.0f} s of audio, {cores} cores, whisper-base int8")
    for label, seconds in rows:
        print(f"  {label:34} {seconds:6.1f} s  {audio_s / seconds:5.1f} audio-s per wall-s  "
              f"ratio to the loop {loop_s / seconds:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
