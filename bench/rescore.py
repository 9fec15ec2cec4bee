"""Re-scoring throughput: stored transcripts of five-minute calls, on one core.

Builds `--calls` stored transcripts of about five minutes each (the sample calls' stereo transcripts laid end to
end, words and the legs' activity), then derives each call's result with the shipped lexicons and scorecard as
`callqa rescore` and `callqa run --rescore` do: read and validate the JSON, derive roles, turns, metrics,
quality, hits and score, serialise the result (writing the file is left out: that is the disk's speed). Pinned
to one CPU core. Two runs in one process: cold (the per-word-form lemma and token caches emptied before every
call, as if each call were the first) as the baseline, and warm (caches kept, as in a real batch of calls).
Also prints the warm rate of diarized mono calls made the same way of the sample calls' mono transcripts (their
roles found from the lexicons' cues as they are re-scored), where a warm call's time goes, and the warm rate
with every lexicon's `fuzzy` option off against the shipped lexicons (fuzzy terms and uncertain verdicts on),
interleaved twice (issue 13: at most 20 % slower).

    .venv/bin/python bench/rescore.py [--calls 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.verdicts import without_fuzzy  # noqa: E402
from pipeline.analyze import CallAnalyzer  # noqa: E402
from pipeline.derive import DeriveSetup, derive  # noqa: E402
from pipeline.lexicon import text  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from pipeline.support.collector import settle_for_batch  # noqa: E402
from pipeline.transcript import Transcript, read_transcript  # noqa: E402
from tests.conftest import SAMPLE_CALLS  # noqa: E402

FIVE_MINUTES_S = 300.0


def five_minute_transcripts(count: int, *, mono: bool = False) -> list[Transcript]:
    """`count` stored transcripts of five-minute calls made of the sample calls' stereo transcripts (`mono`: of
    their mono files' transcripts, the speakers diarized)."""
    analyzer = CallAnalyzer(load_settings(device="cpu"))
    if mono:
        pieces = [analyzer.transcribe(call.mono, direction=call.direction) for call in SAMPLE_CALLS]
    else:
        pieces = [analyzer.transcribe(call.stereo, manager_channel=call.manager_channel, direction=call.direction)
                  for call in SAMPLE_CALLS]
    return [laid_end_to_end(pieces, first=index).model_copy(update={"call_id": f"bench-{index}"})
            for index in range(count)]


def laid_end_to_end(pieces: list[Transcript], *, first: int = 0, length_s: float = FIVE_MINUTES_S) -> Transcript:
    """Stereo transcripts laid end to end from `pieces[first]` on (words and the legs' activity) until the call is
    `length_s` long: a longer call made of real recognised ones."""
    words, activity, offset, k = [], {}, 0.0, first
    while offset < length_s:
        piece = pieces[k % len(pieces)]
        words += [w.model_copy(update={"start": w.start + offset, "end": w.end + offset}) for w in piece.words]
        for speaker, spans in (piece.activity or {}).items():
            activity.setdefault(speaker, []).extend((start + offset, end + offset) for start, end in spans)
        offset += piece.duration_s
        k += 1
    return pieces[first % len(pieces)].model_copy(update={"words": words, "activity": activity, "duration_s": offset})


def rescore_all(paths: list[Path], setup: DeriveSetup, *, cold: bool) -> tuple[float, int]:
    words = 0
    started = time.perf_counter()
    for path in paths:
        if cold:
            text.tokenize.cache_clear()
            text.lemma.cache_clear()
            text._surfaces.cache_clear()
        result = derive(read_transcript(path.read_bytes()), setup)
        result.to_json()
        words += len(result.words)
    return time.perf_counter() - started, words


def stage_times(paths: list[Path], setup: DeriveSetup) -> dict[str, float]:
    """Milliseconds per call in each stage of re-scoring."""
    totals = {"read + validate": 0.0, "derive": 0.0, "serialise": 0.0}
    for path in paths:
        started = time.perf_counter()
        transcript = read_transcript(path.read_bytes())
        read = time.perf_counter()
        rescored = derive(transcript, setup)
        scored = time.perf_counter()
        rescored.to_json()
        done = time.perf_counter()
        totals["read + validate"] += read - started
        totals["derive"] += scored - read
        totals["serialise"] += done - scored
    return {name: seconds * 1000 / len(paths) for name, seconds in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    transcripts = five_minute_transcripts(args.calls)
    mono_transcripts = five_minute_transcripts(max(20, args.calls // 4), mono=True)
    setup = DeriveSetup.load()
    settle_for_batch()  # as `callqa rescore` does after loading its lexicons
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core from here on
    with tempfile.TemporaryDirectory(prefix="callqa-rescore-") as tmp:
        paths, mono_paths = [], []
        for transcript in transcripts:
            path = Path(tmp) / f"{transcript.call_id}.json"
            path.write_text(transcript.to_json(), encoding="utf-8")
            paths.append(path)
        for transcript in mono_transcripts:
            path = Path(tmp) / f"{transcript.call_id}.mono.json"
            path.write_text(transcript.to_json(), encoding="utf-8")
            mono_paths.append(path)
        cold_s, words = rescore_all(paths[: max(20, args.calls // 10)], setup, cold=True)
        cold_calls = max(20, args.calls // 10)
        text.tokenize.cache_clear()
        text.lemma.cache_clear()
        text._surfaces.cache_clear()
        warm_s, warm_words = rescore_all(paths, setup, cold=False)
        statistics = text.cache_statistics()
        rescore_all(mono_paths, setup, cold=False)  # their own words into the caches first
        mono_s, mono_words = rescore_all(mono_paths, setup, cold=False)
        stages = stage_times(paths[:100], setup)
        exact = without_fuzzy(setup)
        rates: dict[str, list[float]] = {"exact": [], "fuzzy": []}
        for _ in range(2):
            for name, variant in (("exact", exact), ("fuzzy", setup)):
                seconds, _ = rescore_all(paths, variant, cold=False)
                rates[name].append(len(paths) / seconds)
    per_call = warm_words / len(paths)
    print(f"{len(paths)} stored transcripts of {FIVE_MINUTES_S / 60:.0f}-minute calls ({per_call:.0f} words each), "
          f"{len(setup.lexicons.lexicons)} lexicons, scorecard {setup.scorecard.id}, one core")
    print(f"  cold caches: {cold_calls / cold_s:7.1f} calls/s  ({words / cold_s:9.0f} words/s)")
    print(f"  warm caches: {len(paths) / warm_s:7.1f} calls/s  ({warm_words / warm_s:9.0f} words/s)")
    print(f"  ratio warm / cold: {(len(paths) / warm_s) / (cold_calls / cold_s):.1f}")
    print(f"  diarized mono, warm: {len(mono_paths) / mono_s:7.1f} calls/s  ({mono_words / mono_s:9.0f} words/s; "
          f"{len(mono_paths)} calls of the mono files' transcripts, roles found from the lexicons' cues)")
    print("  per call (warm): " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in stages.items()))
    print(f"  fuzzy off {max(rates['exact']):.1f} calls/s, shipped (fuzzy on) {max(rates['fuzzy']):.1f} calls/s "
          f"(best of 2 each, interleaved): {max(rates['fuzzy']) / max(rates['exact']):.2f}x")
    print(f"  lemma cache (per recognised word text): hit rate {statistics['tokens_hit_rate']:.4f}, "
          f"{statistics['tokens_cached']} distinct word texts, {statistics['lemmas_cached']} word forms analysed "
          f"by pymorphy3")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
