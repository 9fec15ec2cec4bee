"""Stereo calls three ways, measured against ground truth in one run.

- `mix`: transcribe the mixed call, give each word to the channel that carried it, and re-transcribe per leg
  only where both parties talk at once.
- `per_channel`: transcribe each leg separately and merge the two timelines.
- `mix_redecode` (the default): the mix, then the client's turns heard again on the client's leg alone (packed
  into one stream), each turn keeping the more probable hypothesis (pipeline/speakers/redecode.py).
- `mix_redecode, no timestamps`: the same with Whisper's timestamp tokens left out of stereo calls
  (`asr.timestamp_tokens: mono`, the default before 2026-12-05).

Figures per strategy over the sample calls: lemma WER of the whole call, of the client's words, of the client's
short replies (four words or fewer, where context matters most) and of the manager's words, words given to the
wrong party, the largest talk-ratio error, and the time: CPU seconds of this process per minute of audio (what
the analysis costs, less sensitive than wall time to other work on the machine) and wall seconds. The strategies
take turns call by call (the same minute of a busy machine for each); with `--rounds N` each call's time is the
best of N.

    .venv/bin/python bench/stereo_strategies.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.analyze import CallAnalyzer  # noqa: E402
from pipeline.asr import AsrOptions  # noqa: E402
from pipeline.schema import CallResult  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from tests.conftest import SAMPLE_CALLS  # noqa: E402
from tests.evaluation import lemma_wer, role_errors  # noqa: E402

# label -> settings
STRATEGIES = {"mix": {"stereo_strategy": "mix"}, "per_channel": {"stereo_strategy": "per_channel"},
              "mix_redecode": {"stereo_strategy": "mix_redecode"},
              "mix_redecode, no timestamps": {"stereo_strategy": "mix_redecode",
                                              "asr": AsrOptions(timestamp_tokens="mono")}}


def _text_within(words, utterances) -> str:
    """The recognised words of a role that fall inside the given utterances (with 0.3 s slack)."""
    return " ".join(w.text for w in words if any(u.start - 0.3 <= (w.start + w.end) / 2 <= u.end + 0.3
                                                  for u in utterances))


def _timed(analyzer: CallAnalyzer, call, rounds: int) -> tuple[CallResult, float, float]:
    best_cpu = best_wall = float("inf")
    result = None
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        result = analyzer.analyze(call.stereo, manager_channel=call.manager_channel)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    assert result is not None
    return result, best_cpu, best_wall


def measure(rounds: int = 1) -> dict[str, dict]:
    labels = list(STRATEGIES)
    first = CallAnalyzer(load_settings(device="cpu", **STRATEGIES[labels[0]]))
    analyzers = {labels[0]: first} | {
        label: CallAnalyzer(load_settings(device="cpu", **STRATEGIES[label]), asr_model=first.asr_model)
        for label in labels[1:]}
    keys = ("all", "client", "short", "manager")
    figures = {strategy: {"references": {key: [] for key in keys}, "hypotheses": {key: [] for key in keys},
                          "wrong": 0, "words": 0, "ratio_errors": [], "cpu_s": 0.0, "wall_s": 0.0}
               for strategy in STRATEGIES}
    first.analyze(SAMPLE_CALLS[0].stereo)  # warm-up: lazy imports and caches off the clock
    for call in SAMPLE_CALLS:
        client = [u for u in call.utterances if u.role == "client"]
        short = [u for u in client if len(u.text.split()) <= 4]
        manager = [u for u in call.utterances if u.role == "manager"]
        for strategy, analyzer in analyzers.items():
            result, cpu_s, wall_s = _timed(analyzer, call, rounds)
            found = figures[strategy]
            words = result.words
            client_words = [w for w in words if w.role == "client"]
            for key, reference, hypothesis in (
                    ("all", call.text, " ".join(w.text for w in words)),
                    ("client", " ".join(u.text for u in client), " ".join(w.text for w in client_words)),
                    ("short", " ".join(u.text for u in short), _text_within(client_words, short)),
                    ("manager", " ".join(u.text for u in manager),
                     " ".join(w.text for w in words if w.role == "manager"))):
                found["references"][key].append(reference)
                found["hypotheses"][key].append(hypothesis)
            found["wrong"] += len(role_errors(words, call.utterances))
            found["words"] += len(words)
            manager_s, client_s = call.talk_s("manager"), call.talk_s("client")
            found["ratio_errors"].append(abs(result.metrics.talk_ratio_manager - manager_s / (manager_s + client_s)))
            found["cpu_s"] += cpu_s
            found["wall_s"] += wall_s
    for found in figures.values():
        found["wer"] = {key: lemma_wer(" ".join(found["references"][key]), " ".join(found["hypotheses"][key]))
                        for key in keys}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="time each call this many times, keep the best")
    args = parser.parse_args()
    figures = measure(args.rounds)
    audio_min = sum(call.duration_s for call in SAMPLE_CALLS) / 60
    print(f"{len(SAMPLE_CALLS)} stereo sample calls, {audio_min * 60:.0f} s of audio, whisper-base int8 on CPU")
    print(f"{'strategy':28} {'lemma WER':>9} {'client':>7} {'short':>6} {'manager':>8} {'wrong party':>12} "
          f"{'max |Δ ratio|':>13} {'CPU s/audio min':>15} {'vs mix':>7} {'wall':>7}")
    base_cpu = figures["mix"]["cpu_s"]
    for strategy, found in figures.items():
        wer = found["wer"]
        print(f"{strategy:28} {wer['all']:9.3f} {wer['client']:7.3f} {wer['short']:6.3f} {wer['manager']:8.3f} "
              f"{found['wrong']:>5}/{found['words']:<6} {max(found['ratio_errors']):13.3f} "
              f"{found['cpu_s'] / audio_min:15.2f} {found['cpu_s'] / base_cpu:6.2f}x {found['wall_s']:6.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
