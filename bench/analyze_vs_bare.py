"""End-to-end `callqa analyze` against bare faster-whisper on the same files, model and settings, in one run.

Bare faster-whisper here is what a user would write: `WhisperModel.transcribe(path, language="ru",
vad_filter=True, word_timestamps=True, condition_on_previous_text=False, beam_size=5)`, segments consumed. The
pipeline does everything else too (decoding per channel, batched ASR, channel attribution, overlaps, metrics,
quality gates, lexicon hits and the score, the result JSON). Each side runs in its own process, with the model
loaded before the clock starts, so the peak RSS figures are each side's own. Runs alternate, and the best of
`--repeat` is kept.

    .venv/bin/python bench/analyze_vs_bare.py [--repeat 2] [--files tests/data/calls/*.stereo.mp3]

`--fresh` measures what a user waits for instead: each file in a fresh process from the command line on, imports
and model loading included — bare faster-whisper (`python -c`: import, load, transcribe) against `callqa
analyze FILE --json OUT`, the latter with its compiled lexicons kept from an earlier command (the usual case)
and with them compiled afresh (the first command after a lexicon edit).

    .venv/bin/python bench/analyze_vs_bare.py --fresh [--repeat 3] [--files ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILES = sorted((REPO / "tests" / "data" / "calls").glob("*.stereo.mp3"))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_side(side: str, files: list[str]) -> dict:
    """Runs inside the child process: load the model, time the files, report."""
    import models
    from pipeline.asr import load_asr
    from pipeline.audio import probe

    resolved = models.resolve("whisper-base")
    asr = load_asr(resolved.name, str(resolved.path), resolved.sha256, "cpu")
    audio_s = sum(probe(path).declared_duration_s or 0.0 for path in files)
    if side == "bare":
        whisper = asr.whisper
        started = time.perf_counter()
        words = 0
        for path in files:
            segments, _ = whisper.transcribe(path, language="ru", vad_filter=True, word_timestamps=True,
                                             condition_on_previous_text=False, beam_size=5)
            words += sum(len(segment.words) for segment in segments)
    else:
        from pipeline.analyze import CallAnalyzer
        from pipeline.derive import DeriveSetup
        from pipeline.settings import load_settings
        from pipeline.support.fileio import write_text_atomic

        analyzer = CallAnalyzer(load_settings(device="cpu"), asr_model=asr, setup=DeriveSetup.load())
        out = Path("/tmp/callqa-bench")
        started = time.perf_counter()
        words = 0
        for path in files:
            result = analyzer.analyze(path)
            write_text_atomic(out / f"{Path(path).stem}.json", result.to_json())
            words += len(result.words)
    elapsed = time.perf_counter() - started
    return {"side": side, "seconds": elapsed, "audio_s": audio_s, "words": words, "peak_rss_mb": _peak_rss_mb()}


_BARE_FRESH = """
import os, sys
from faster_whisper import WhisperModel
model_path, audio = sys.argv[1:]
whisper = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=len(os.sched_getaffinity(0)))
segments, _ = whisper.transcribe(audio, language="ru", vad_filter=True, word_timestamps=True,
                                 condition_on_previous_text=False, beam_size=5)
print(sum(len(segment.words) for segment in segments))
"""


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO, env=env)
    return time.perf_counter() - started


def fresh(files: list[str], repeat: int) -> None:
    """Each file in a fresh process, from the command line on, best of `repeat` alternating runs per side."""
    import os
    import shutil
    import tempfile

    sys.path.insert(0, str(REPO))
    import models

    model_path = str(models.resolve("whisper-base").path)
    callqa = str(Path(sys.executable).with_name("callqa"))
    with tempfile.TemporaryDirectory(prefix="callqa-fresh-") as scratch:
        cache = Path(scratch) / "cache"
        env = {**os.environ, "CALLQA_CACHE_DIR": str(cache)}
        sides = {
            "bare faster-whisper": lambda audio: _timed([sys.executable, "-c", _BARE_FRESH, model_path, audio], env),
            "callqa analyze, lexicons compiled earlier": lambda audio: _timed(
                [callqa, "analyze", audio, "--json", f"{scratch}/out.json", "-q"], env),
            "callqa analyze, lexicons just edited": lambda audio: (shutil.rmtree(cache, ignore_errors=True), _timed(
                [callqa, "analyze", audio, "--json", f"{scratch}/out.json", "-q"], env))[1],
        }
        _timed([callqa, "lexicon", "check"], env)  # the compiled set an earlier command leaves
        totals = dict.fromkeys(sides, 0.0)
        for audio in files:
            best = dict.fromkeys(sides, float("inf"))
            for _ in range(repeat):
                for side, run in sides.items():
                    best[side] = min(best[side], run(audio))
                _timed([callqa, "lexicon", "check"], env)
            for side in sides:
                totals[side] += best[side]
    bare = totals["bare faster-whisper"]
    print(f"files: {len(files)}, each in a fresh process (best of {repeat}), whisper-base int8, beam 5")
    for side, seconds in totals.items():
        print(f"  {side:42} {seconds:6.1f} s  ratio to bare {seconds / bare:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--files", nargs="*", default=[str(p) for p in DEFAULT_FILES])
    parser.add_argument("--fresh", action="store_true", help="each file in a fresh process, imports included")
    parser.add_argument("--child", choices=["bare", "pipeline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fresh:
        fresh(args.files, args.repeat)
        return 0
    if args.child:
        print(json.dumps(run_side(args.child, args.files)))
        return 0
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for side in ("bare", "pipeline"):
            done = subprocess.run([sys.executable, __file__, "--child", side, "--files", *args.files],
                                  capture_output=True, text=True, check=True, cwd=REPO)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            if side not in best or figures["seconds"] < best[side]["seconds"]:
                best[side] = figures
    bare, full = best["bare"], best["pipeline"]
    audio_s = bare["audio_s"]
    print(f"files: {len(args.files)}, audio: {audio_s:.1f} s, CPU threads: all, whisper-base int8, beam 5")
    for figures in (bare, full):
        print(f"  {figures['side']:8}  {figures['seconds']:6.1f} s  {audio_s / figures['seconds']:5.1f}x realtime  "
              f"RTF {figures['seconds'] / audio_s:.3f}  peak RSS {figures['peak_rss_mb']:.0f} MB  "
              f"words {figures['words']}")
    print(f"ratio pipeline / bare faster-whisper: {full['seconds'] / bare['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
