"""Does biasing Whisper towards the lexicons' phrases (faster-whisper `hotwords`) help? Three ways in one run.

On every stereo sample call: lexicon recall and precision against the hits found in the script itself (what a
perfect transcript would give), and the lemma WER of the transcript: without hotwords, with the company's own
names only (company.yaml, `asr.hotwords`), and with every lexicon's phrases (`lexicon_hotwords`).

    .venv/bin/python bench/hotwords.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.analyze import CallAnalyzer  # noqa: E402
from pipeline.derive import DeriveSetup  # noqa: E402
from pipeline.schema import Hit  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from tests.conftest import SAMPLE_CALLS, script_facts  # noqa: E402
from tests.evaluation import lemma_wer  # noqa: E402


def same_hit(truth: Hit, found: Hit, slack_s: float = 1.0) -> bool:
    return ((truth.lexicon, truth.term, truth.role) == (found.lexicon, found.term, found.role)
            and truth.start - slack_s < found.end and found.start - slack_s < truth.end)


def measure(hotwords: bool | str, setup: DeriveSetup, asr_model=None) -> dict:
    """`hotwords`: True for every lexicon's phrases, a string for exactly these words, False for none."""
    if isinstance(hotwords, str):
        settings = load_settings(device="cpu", asr={"hotwords": hotwords})
    else:
        settings = load_settings(device="cpu", lexicon_hotwords=hotwords)
    analyzer = CallAnalyzer(settings, setup=setup, asr_model=asr_model)
    recalled = truth_total = right = found_total = 0
    references, hypotheses = [], []
    started = time.perf_counter()
    for call in SAMPLE_CALLS:
        words, turns, _ = script_facts(call)
        truth = setup.lexicons.matcher.find_hits(words, turns, call.duration_s)
        result = analyzer.analyze(call.stereo, manager_channel=call.manager_channel, direction=call.direction)
        recalled += sum(any(same_hit(t, f) for f in result.hits) for t in truth)
        right += sum(any(same_hit(t, f) for t in truth) for f in result.hits)
        truth_total += len(truth)
        found_total += len(result.hits)
        references.append(call.text)
        hypotheses.append(" ".join(w.text for w in result.words))
    return {"recall": recalled / truth_total, "precision": right / max(found_total, 1),
            "wer": lemma_wer(" ".join(references), " ".join(hypotheses)), "seconds": time.perf_counter() - started,
            "truth": truth_total, "asr_model": analyzer.asr_model}


def main() -> int:
    setup = DeriveSetup.load()
    company = setup.lexicons.lexicons["company"]
    names = ", ".join(str(phrase) for term in company.terms for phrase in term.phrases)
    without = measure(False, setup)
    with_names = measure(names, setup, without["asr_model"])
    with_hotwords = measure(True, setup, without["asr_model"])
    print(f"{len(SAMPLE_CALLS)} stereo sample calls, {without['truth']} lexicon hits in their scripts; "
          f"hotwords prompt: {len(setup.lexicons.hotwords())} characters; company names: {names}")
    for name, figures in (("without hotwords", without), ("company names", with_names),
                          ("every lexicon", with_hotwords)):
        print(f"  {name:17} recall {figures['recall']:.3f}  precision {figures['precision']:.3f}  "
              f"lemma WER {figures['wer']:.3f}  {figures['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
