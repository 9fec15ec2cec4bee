"""Verdicts a manager can trust (issue 13): the scorecard's criteria judged from the audio against the same
criteria judged from each call's script, with the shipped lexicons as they are and with every `fuzzy` option off
(the baseline), in one run.

For each sample call, stereo and mono: the call is transcribed once (kept in --transcripts, so a re-run
re-scores only), derived with each lexicon setup, and compared with the script's words on the same legs derived
the same way (tests/conftest.py, `script_transcript`). Printed per setup: per criterion agreement, false ✘ and
false ✔; all together with the total score's mean absolute error; lexicon hit recall and precision against the
script's hits.

    .venv/bin/python bench/verdicts.py [--transcripts DIR] [--calls dental,fitness] [--heldout]

--heldout measures instead the dialogues of tests/synth/heldout.yaml, written for this and never used to tune
anything: rendered with festival and sox (tests/synth/render.py) into the transcripts folder on first use.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.analyze import CallAnalyzer  # noqa: E402
from pipeline.derive import DeriveSetup, derive  # noqa: E402
from pipeline.lexicon.loader import LexiconSet  # noqa: E402
from pipeline.lexicon.matcher import Matcher  # noqa: E402
from pipeline.schema import Hit  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from pipeline.transcript import Transcript, read_transcript  # noqa: E402
from tests.conftest import SAMPLE_CALLS, TESTS, load_sample_calls, script_transcript  # noqa: E402
from tests.evaluation import VerdictComparison  # noqa: E402


def without_fuzzy(setup: DeriveSetup) -> DeriveSetup:
    """The same lexicons with every `fuzzy` option off: matching as it was before recognition-tolerant terms."""
    assert setup.lexicons is not None
    lexicons = {
        lexicon_id: lexicon.model_copy(update={
            "fuzzy": False,
            "terms": [term.model_copy(update={
                "fuzzy": None,
                "phrases": [phrase if isinstance(phrase, str) else phrase.model_copy(update={"fuzzy": None})
                            for phrase in term.phrases]}) for term in lexicon.terms]})
        for lexicon_id, lexicon in setup.lexicons.lexicons.items()}
    exact = dataclasses.replace(setup.lexicons, lexicons=lexicons, matcher=Matcher(lexicons))
    assert isinstance(exact, LexiconSet)
    return dataclasses.replace(setup, lexicons=exact)


def same_hit(truth: Hit, found: Hit, slack_s: float = 1.0) -> bool:
    return ((truth.lexicon, truth.term, truth.role) == (found.lexicon, found.term, found.role)
            and truth.start - slack_s < found.end and found.start - slack_s < truth.end)


def transcripts(kind: str, folder: Path, calls, analyzer: CallAnalyzer) -> dict[str, Transcript]:
    """Each call's transcript from its `kind` (stereo or mono) file, read from `folder` where kept there."""
    found = {}
    for call in calls:
        kept = folder / f"{call.call_id}.{kind}.json"
        if kept.is_file():
            found[call.call_id] = read_transcript(kept.read_text(encoding="utf-8"))
            continue
        if kind == "stereo":
            transcript = analyzer.transcribe(call.stereo, call_id=call.call_id,
                                             manager_channel=call.manager_channel, direction=call.direction)
        else:
            transcript = analyzer.transcribe(call.mono, call_id=f"{call.call_id}-mono", direction=call.direction)
        kept.write_text(transcript.to_json(), encoding="utf-8")
        found[call.call_id] = transcript
    return found


def measure(setup: DeriveSetup, calls, stereo: dict[str, Transcript], heard: dict[str, Transcript]) -> list[str]:
    comparison = VerdictComparison()
    recalled = truth_total = right = found_total = questions_close = 0
    question_lines = []
    for call in calls:
        script = derive(script_transcript(call, stereo[call.call_id]), setup)
        audio = derive(heard[call.call_id], setup)
        comparison.add(call.call_id, script, audio)
        truth_total += len(script.hits)
        found_total += len(audio.hits)
        recalled += sum(any(same_hit(t, f) for f in audio.hits) for t in script.hits)
        right += sum(any(same_hit(t, f) for t in script.hits) for f in audio.hits)
        asked = {role: (getattr(script.metrics.questions, role) or 0, getattr(audio.metrics.questions, role) or 0)
                 for role in ("manager", "client")}
        questions_close += all(abs(a - b) <= 1 for a, b in asked.values())
        question_lines.append(f"  questions {call.call_id}: " + ", ".join(
            f"{role} script {a} audio {b}" for role, (a, b) in asked.items()))
    fuzzy = sum(getattr(hit, "match", "lemma") == "fuzzy" for call in calls
                for hit in derive(heard[call.call_id], setup).hits)
    return [*comparison.lines(),
            f"lexicon hits: recall {recalled / max(truth_total, 1):.3f}, precision {right / max(found_total, 1):.3f} "
            f"({truth_total} in the scripts, {found_total} from the audio, {fuzzy} of them fuzzy)",
            f"questions per role within ±1 of the script on {questions_close} of {len(calls)} calls",
            *question_lines,
            *(f"  disagrees: {call} {criterion}: script {script} audio {audio}"
              for call, criterion, script, audio in comparison.disagreements())]


def heldout_calls(folder: Path):
    """The held-out dialogues, rendered into `folder` unless already there."""
    from tests.synth import render

    dialogues_file = TESTS / "synth" / "heldout.yaml"
    for seed, dialogue in enumerate(render.load_dialogues(dialogues_file)):
        if not (folder / f"{dialogue['id']}.truth.json").is_file():
            render.render_dialogue(dialogue, folder, seed=100 + seed)
    return load_sample_calls(folder, dialogues_file)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=Path, help="keep transcripts here and reuse them (default: none)")
    parser.add_argument("--calls", help="comma-separated call ids (default: all nine)")
    parser.add_argument("--heldout", action="store_true", help="the held-out dialogues (tests/synth/heldout.yaml)")
    args = parser.parse_args()
    setup = DeriveSetup.load()
    analyzer = CallAnalyzer(load_settings(device="cpu", model="whisper-base"), setup=setup)
    with tempfile.TemporaryDirectory(prefix="callqa-verdicts-") as scratch:
        folder = args.transcripts or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        calls = heldout_calls(folder) if args.heldout else SAMPLE_CALLS
        calls = [c for c in calls if not args.calls or c.call_id in args.calls.split(",")]
        stereo = transcripts("stereo", folder, calls, analyzer)
        mono = transcripts("mono", folder, calls, analyzer)
    for name, variant in (("exact matching (every fuzzy option off)", without_fuzzy(setup)),
                          ("the shipped lexicons", setup)):
        for kind, heard in (("stereo", stereo), ("mono", mono)):
            print(f"\n## {name}, {kind} ({len(calls)} calls)")
            print(*measure(variant, calls, stereo, heard), sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
