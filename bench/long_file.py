"""Memory on a long recording: `callqa analyze` on a 2-hour stereo call vs a 10-minute one.

The long files are the sample calls played back to back (with 5 s pauses) until they last 10 minutes (one
decoding block) and `--hours`, encoded as 8 kHz stereo mp3 like a PBX recording. Each analysis runs as its own
`callqa analyze` process; the figures are its wall time and peak RSS. Bounded memory means the 2-hour peak stays
at the 10-minute one instead of growing with the length (a whole 2-hour call decoded at once would be 0.9 GB of
float32 before any model runs).

    .venv/bin/python bench/long_file.py [--hours 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.audio import decode_all  # noqa: E402
from tests.audio_write import write_audio  # noqa: E402
from tests.conftest import SAMPLE_CALLS  # noqa: E402

CALLQA = Path(sys.executable).with_name("callqa")


def build_long_call(path: Path, hours: float) -> float:
    pieces = [decode_all(call.stereo)[1][:, ::2] for call in SAMPLE_CALLS]  # back to 8 kHz
    pause = np.zeros((2, 8000 * 5), np.float32)
    target = int(hours * 3600 * 8000)
    chunks, total, index = [], 0, 0
    while total < target:
        piece = pieces[index % len(pieces)]
        chunks += [piece, pause]
        total += piece.shape[1] + pause.shape[1]
        index += 1
    write_audio(path, np.concatenate(chunks, axis=1)[:, :target], 8000, bitrate=32_000)
    return target / 8000


def analyze(path: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `callqa analyze` process."""
    started = time.perf_counter()
    process = subprocess.Popen([str(CALLQA), "analyze", str(path), "--json", str(out), "--quiet",
                                "--device", "cpu"])
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"callqa analyze failed on {path} (status {status})")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_long_call(args.build, args.hours)
        return 0
    with tempfile.TemporaryDirectory(prefix="callqa-long-") as tmp:
        workdir = Path(tmp)
        rows = [("sample call", SAMPLE_CALLS[0].duration_s, *analyze(SAMPLE_CALLS[0].stereo, workdir / "s.json"))]
        # One block (10 minutes) and many blocks: bounded memory means the second peak is about the first.
        for hours in (1 / 6, args.hours):
            path = workdir / f"long-{hours:.2f}h.mp3"
            # Built in a child process: Linux carries a parent's peak RSS over into the children it forks, so
            # a big parent would inflate the figures measured below.
            subprocess.run([sys.executable, __file__, "--hours", str(hours), "--build", str(path)], check=True)
            rows.append((f"{hours * 60:.0f} min call", hours * 3600, *analyze(path, workdir / "l.json")))
    for label, duration_s, seconds, peak_mb in rows:
        print(f"{label:13} {duration_s:7.0f} s audio  {seconds:7.1f} s wall  {duration_s / seconds:5.1f}x realtime  "
              f"peak RSS {peak_mb:6.0f} MB")
    print(f"peak RSS {rows[2][0]} / {rows[1][0]}: {rows[2][3] / rows[1][3]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
