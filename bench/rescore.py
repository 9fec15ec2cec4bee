"""Re-scoring throughput: stored results of five-minute calls, on one core.

Builds `--calls` stored results of about five minutes each (the sample calls' recognised words, laid end to end
with their turns, metrics recomputed), then re-scores them with the shipped lexicons and scorecard as
`callqa rescore` does: read the JSON, validate it, find hits, score, serialise (writing the file is left out:
that is the disk's speed). Pinned to one CPU core. Two runs in one process: cold (the per-word-form lemma and
token caches emptied before every call, as if each call were the first) as the baseline, and warm (caches kept,
as in a real batch of calls). Also prints where a warm call's time goes.

    .venv/bin/python bench/rescore.py [--calls 300]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import text  # noqa: E402
from pipeline.analyze import CallAnalyzer  # noqa: E402
from pipeline.metrics import compute_metrics  # noqa: E402
from pipeline.rescore import read_result  # noqa: E402
from pipeline.schema import CallResult  # noqa: E402
from pipeline.scoring.apply import ScoringSetup, apply_scoring  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from tests.conftest import SAMPLE_CALLS  # noqa: E402

FIVE_MINUTES_S = 300.0


def five_minute_results(count: int) -> list[CallResult]:
    analyzer = CallAnalyzer(load_settings(device="cpu"))
    pieces = [analyzer.analyze(call.stereo, manager_channel=call.manager_channel, direction=call.direction)
              for call in SAMPLE_CALLS]
    results = []
    for index in range(count):
        words, turns, offset, k = [], [], 0.0, index
        while offset < FIVE_MINUTES_S:
            piece = pieces[k % len(pieces)]
            words += [w.model_copy(update={"start": w.start + offset, "end": w.end + offset}) for w in piece.words]
            turns += [t.model_copy(update={"start": t.start + offset, "end": t.end + offset}) for t in piece.turns]
            offset += piece.duration_s
            k += 1
        base = pieces[index % len(pieces)]
        results.append(base.model_copy(update={
            "call_id": f"bench-{index}", "words": words, "turns": turns, "duration_s": offset,
            "metrics": compute_metrics(words, turns), "hits": [], "score": None}))
    return results


def rescore_all(paths: list[Path], setup: ScoringSetup, *, cold: bool) -> tuple[float, int]:
    words = 0
    started = time.perf_counter()
    for path in paths:
        if cold:
            text.tokenize.cache_clear()
            text.lemma.cache_clear()
            text._surfaces.cache_clear()
        result = apply_scoring(read_result(path), setup)
        result.to_json()
        words += len(result.words)
    return time.perf_counter() - started, words


def stage_times(paths: list[Path], setup: ScoringSetup) -> dict[str, float]:
    """Milliseconds per call in each stage of re-scoring."""
    totals = {"read + validate": 0.0, "hits + score": 0.0, "serialise": 0.0}
    for path in paths:
        started = time.perf_counter()
        result = read_result(path)
        read = time.perf_counter()
        rescored = apply_scoring(result, setup)
        scored = time.perf_counter()
        rescored.to_json()
        done = time.perf_counter()
        totals["read + validate"] += read - started
        totals["hits + score"] += scored - read
        totals["serialise"] += done - scored
    return {name: seconds * 1000 / len(paths) for name, seconds in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    results = five_minute_results(args.calls)
    setup = ScoringSetup.load()
    gc.freeze()  # as `callqa rescore` does after loading its lexicons
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core from here on
    with tempfile.TemporaryDirectory(prefix="callqa-rescore-") as tmp:
        paths = []
        for result in results:
            path = Path(tmp) / f"{result.call_id}.json"
            path.write_text(result.to_json(), encoding="utf-8")
            paths.append(path)
        cold_s, words = rescore_all(paths[: max(20, args.calls // 10)], setup, cold=True)
        cold_calls = max(20, args.calls // 10)
        text.tokenize.cache_clear()
        text.lemma.cache_clear()
        text._surfaces.cache_clear()
        warm_s, warm_words = rescore_all(paths, setup, cold=False)
        statistics = text.cache_statistics()
        stages = stage_times(paths[:100], setup)
    per_call = warm_words / len(paths)
    print(f"{len(paths)} stored results of {FIVE_MINUTES_S / 60:.0f}-minute calls ({per_call:.0f} words each), "
          f"{len(setup.lexicons.lexicons)} lexicons, scorecard {setup.scorecard.id}, one core")
    print(f"  cold caches: {cold_calls / cold_s:7.1f} calls/s  ({words / cold_s:9.0f} words/s)")
    print(f"  warm caches: {len(paths) / warm_s:7.1f} calls/s  ({warm_words / warm_s:9.0f} words/s)")
    print(f"  ratio warm / cold: {(len(paths) / warm_s) / (cold_calls / cold_s):.1f}")
    print("  per call (warm): " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in stages.items()))
    print(f"  lemma cache (per recognised word text): hit rate {statistics['tokens_hit_rate']:.4f}, "
          f"{statistics['tokens_cached']} distinct word texts, {statistics['lemmas_cached']} word forms analysed "
          f"by pymorphy3")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
