"""Stereo calls two ways, measured against ground truth in one run: the mix vs each leg on its own.

- `mix` (the default): transcribe the mixed call, give each word to the channel that carried it, and
  re-transcribe per leg only where both parties talk at once.
- `per_channel`: transcribe each leg separately and merge the two timelines.

Figures per strategy over the sample calls: lemma WER of the whole call, of the client's words and of the
client's short replies (four words or fewer, where context matters most), words given to the wrong role, the
largest talk-ratio error, and the time taken.

    .venv/bin/python bench/stereo_strategies.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.analyze import CallAnalyzer  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from tests.conftest import SAMPLE_CALLS  # noqa: E402
from tests.evaluation import lemma_wer, role_errors  # noqa: E402


def _text_within(words, utterances) -> str:
    """The recognised words of a role that fall inside the given utterances (with 0.3 s slack)."""
    return " ".join(w.text for w in words if any(u.start - 0.3 <= (w.start + w.end) / 2 <= u.end + 0.3
                                                  for u in utterances))


def measure(strategy: str, asr_model=None) -> dict:
    analyzer = CallAnalyzer(load_settings(device="cpu", stereo_strategy=strategy), asr_model=asr_model)
    references = {"all": [], "client": [], "short": []}
    hypotheses = {"all": [], "client": [], "short": []}
    wrong_roles = total_words = 0
    ratio_errors = []
    started = time.perf_counter()
    for call in SAMPLE_CALLS:
        result = analyzer.analyze(call.stereo, manager_channel=call.manager_channel)
        words = result.words
        references["all"].append(call.text)
        hypotheses["all"].append(" ".join(w.text for w in words))
        client = [u for u in call.utterances if u.role == "client"]
        short = [u for u in client if len(u.text.split()) <= 4]
        client_words = [w for w in words if w.role == "client"]
        references["client"].append(" ".join(u.text for u in client))
        hypotheses["client"].append(" ".join(w.text for w in client_words))
        references["short"].append(" ".join(u.text for u in short))
        hypotheses["short"].append(_text_within(client_words, short))
        wrong_roles += len(role_errors(words, call.utterances))
        total_words += len(words)
        manager, client_s = call.talk_s("manager"), call.talk_s("client")
        ratio_errors.append(abs(result.metrics.talk_ratio_manager - manager / (manager + client_s)))
    elapsed = time.perf_counter() - started
    return {
        "strategy": strategy,
        "wer": {key: lemma_wer(" ".join(references[key]), " ".join(hypotheses[key])) for key in references},
        "wrong_roles": wrong_roles,
        "words": total_words,
        "max_ratio_error": max(ratio_errors),
        "seconds": elapsed,
        "asr_model": analyzer.asr_model,
    }


def main() -> int:
    mix = measure("mix")
    per_channel = measure("per_channel", asr_model=mix["asr_model"])
    audio_s = sum(call.duration_s for call in SAMPLE_CALLS)
    print(f"{len(SAMPLE_CALLS)} stereo sample calls, {audio_s:.0f} s of audio, whisper-base int8 on CPU")
    print(f"{'strategy':12} {'lemma WER':>9} {'client':>7} {'short replies':>13} {'wrong roles':>12} "
          f"{'max |Δ talk ratio|':>18} {'time':>7}")
    for figures in (mix, per_channel):
        wer = figures["wer"]
        print(f"{figures['strategy']:12} {wer['all']:9.3f} {wer['client']:7.3f} {wer['short']:13.3f} "
              f"{figures['wrong_roles']:>5}/{figures['words']:<6} {figures['max_ratio_error']:18.3f} "
              f"{figures['seconds']:6.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
