"""Lexicons and scoring end to end on the sample audio, re-scoring without ASR, and the QA lead's commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.derive import DeriveSetup, derive
from pipeline.lexicon import DEFAULT_LEXICONS
from pipeline.schema import CallResult, Hit
from pipeline.scoring import DEFAULT_SCORECARD
from pipeline.transcript import read_transcript
from tests.conftest import SAMPLE_CALLS, script_facts

CALLQA = Path(sys.executable).with_name("callqa")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CALLQA), *args], capture_output=True, text=True, timeout=600)


def _same_hit(truth: Hit, found: Hit, slack_s: float = 1.0) -> bool:
    return ((truth.lexicon, truth.term, truth.role) == (found.lexicon, found.term, found.role)
            and truth.start - slack_s < found.end and found.start - slack_s < truth.end)


def test_lexicon_precision_and_recall_on_the_audio(stereo_results, derive_setup: DeriveSetup) -> None:
    """Hits on the recognised calls against hits on their scripts: measured 0.99 precision, 0.89 recall
    (bench/README.md); recall is bounded by whisper-base's errors on names and short words."""
    found_right = found_total = recalled = truth_total = 0
    for call in SAMPLE_CALLS:
        words, turns, _ = script_facts(call)
        truth = derive_setup.lexicons.matcher.find_hits(words, turns, call.duration_s)
        found = stereo_results[call.call_id].hits
        truth_total += len(truth)
        found_total += len(found)
        recalled += sum(any(_same_hit(t, f) for f in found) for t in truth)
        found_right += sum(any(_same_hit(t, f) for t in truth) for f in found)
    assert truth_total >= 150
    assert found_right / found_total >= 0.95
    assert recalled / truth_total >= 0.80


def test_analyze_records_hits_score_and_versions(stereo_results, derive_setup: DeriveSetup) -> None:
    for call in SAMPLE_CALLS:
        result = stereo_results[call.call_id]
        assert result.lexicon_version == derive_setup.lexicons.version
        assert result.scorecard_version == derive_setup.scorecard.version
        assert result.score is not None and 0 <= result.score.total <= 100 and 1 <= result.score.grade <= 5
        assert all(result.turns[h.turn].role == h.role for h in result.hits)
    rude = stereo_results["conditioners"].score
    assert rude.auto_failed == ["no_rudeness"] and rude.total == 0 and rude.grade == 1
    good = stereo_results["windows"].score
    assert good.passed and good.grade >= 4


def _without_scoring(result: CallResult) -> CallResult:
    return result.model_copy(update={"hits": [], "score": None, "lexicon_version": None,
                                     "scorecard_version": None})


@pytest.mark.parametrize("call_id", [call.call_id for call in SAMPLE_CALLS])
def test_rescore_equals_analyze(stereo_results, derive_setup: DeriveSetup, call_id: str) -> None:
    analyzed = stereo_results[call_id]
    stored = _without_scoring(analyzed).to_json()  # a result stored before transcripts had their own schema
    rescored = derive(read_transcript(stored), derive_setup)
    assert rescored.hits == analyzed.hits
    assert rescored.score == analyzed.score
    assert (rescored.lexicon_version, rescored.scorecard_version, rescored.warnings) == (
        analyzed.lexicon_version, analyzed.scorecard_version, analyzed.warnings)


def _results_and_polite_lexicons(tmp_path: Path, stereo_results, call_ids, polite: list[str]) -> tuple[Path, Path]:
    """A folder of the calls' results and a broken one, and a copy of the shipped lexicons whose politeness term
    also accepts `polite`."""
    results = tmp_path / "results"
    results.mkdir()
    for call_id in call_ids:
        (results / f"{call_id}.json").write_text(stereo_results[call_id].to_json(), encoding="utf-8")
    (results / "broken.json").write_text("{}", encoding="utf-8")
    lexicons = tmp_path / "lexicons"
    shutil.copytree(DEFAULT_LEXICONS, lexicons, ignore=shutil.ignore_patterns("scorecards", "schema"))
    politeness = lexicons / "politeness.yaml"
    added = "".join(f' "{phrase}",' for phrase in polite)
    politeness.write_text(politeness.read_text(encoding="utf-8").replace(
        '"будьте любезны",', f'"будьте любезны",{added}'), encoding="utf-8")
    return results, lexicons


def test_rescore_command_diffs_then_writes(stereo_results, tmp_path: Path) -> None:
    # A QA lead accepts "понял вас" as polite: autoservice (which lacked politeness) gains a hit and points.
    results, lexicons = _results_and_polite_lexicons(tmp_path, stereo_results, ("autoservice", "furniture"),
                                                     ["понял вас"])
    before = (results / "autoservice.json").read_text(encoding="utf-8")

    done = run("rescore", str(results), "--lexicons", str(lexicons), "--diff")
    assert done.returncode == 1  # broken.json failed; the others were still compared
    assert "broken.json: not a callqa result" in done.stderr
    assert "autoservice.json: score" in done.stdout and "politeness/polite «Понял вас" in done.stdout
    assert "критерий politeness: не выполнен -> выполнен" in done.stdout
    assert "furniture.json: no change" in done.stdout
    assert (results / "autoservice.json").read_text(encoding="utf-8") == before  # --diff writes nothing

    (results / "broken.json").unlink()
    done = run("rescore", str(results), "--lexicons", str(lexicons))
    assert done.returncode == 0, done.stderr
    rescored = CallResult.from_json((results / "autoservice.json").read_text(encoding="utf-8"))
    assert rescored.score.total > stereo_results["autoservice"].score.total
    assert rescored.lexicon_version != stereo_results["autoservice"].lexicon_version
    assert rescored.words == stereo_results["autoservice"].words  # nothing but the scoring changed


def test_rescore_shares_the_files_among_worker_processes_with_the_same_outcome(stereo_results,
                                                                                tmp_path: Path) -> None:
    """`--workers 2` re-scores in two spawned processes, each loading the lexicons itself: the same diff, in the
    same order, the same files written, and the same failure, as in one process."""
    results, lexicons = _results_and_polite_lexicons(tmp_path, stereo_results,
                                                     [call.call_id for call in SAMPLE_CALLS[:5]],
                                                     ["понял вас", "хорошо"])

    compared = {n: run("rescore", str(results), "--lexicons", str(lexicons), "--diff", "--workers", n)
                for n in ("1", "2")}
    assert compared["1"].returncode == compared["2"].returncode == 1
    assert compared["1"].stdout == compared["2"].stdout and "changed, 1 failed" in compared["2"].stdout
    assert "score" in compared["2"].stdout and "broken.json: not a callqa result" in compared["2"].stderr
    written = {}
    for n in ("1", "2"):
        out = tmp_path / f"out-{n}"
        done = run("rescore", str(results), "--lexicons", str(lexicons), "--out", str(out), "--workers", n)
        assert done.returncode == 1, done.stderr
        written[n] = {path.name: path.read_bytes() for path in sorted(out.iterdir())}
    assert written["1"] == written["2"] and len(written["2"]) == 5
    empty = run("rescore", str(tmp_path))  # results one level down only: nothing to do, and it says so
    assert empty.returncode == 0 and "0 results re-scored" in empty.stdout
    assert f"no result files (*.json) at the top of {tmp_path}" in empty.stderr


def test_rescore_starts_worker_processes_only_for_enough_files() -> None:
    from pipeline.scoring.files import FILES_PER_WORKER, worker_count

    assert worker_count(10) == 1 and worker_count(FILES_PER_WORKER - 1) == 1
    cores = len(os.sched_getaffinity(0))
    assert worker_count(100 * FILES_PER_WORKER) == min(cores, 100) and worker_count(3, requested=8) == 3
    assert worker_count(0) == 1 and worker_count(50, requested=2) == 2


def test_a_folder_without_the_scorecards_lexicons(stereo_transcripts, tmp_path: Path) -> None:
    lexicons = tmp_path / "lexicons"
    lexicons.mkdir()
    shutil.copy(DEFAULT_LEXICONS / "objections.yaml", lexicons)
    setup = DeriveSetup.load(lexicons)  # the default scorecard: hits, no score, a warning
    result = derive(stereo_transcripts["stroymat"], setup)
    assert {hit.lexicon for hit in result.hits} == {"objections"} and result.score is None
    assert any("needs lexicons missing" in w and "greeting" in w for w in result.warnings)
    done = run("rescore", str(tmp_path / "none.json"), "--lexicons", str(lexicons), "--scorecard",
               str(DEFAULT_SCORECARD))  # named explicitly: refused before any result is read
    assert done.returncode == 3 and "is not in" in done.stderr and "sales.yaml:" in done.stderr


def test_lexicon_commands(stereo_results, tmp_path: Path) -> None:
    done = run("lexicon", "test")
    assert done.returncode == 0 and "of 1" in done.stdout and "do not" not in done.stdout
    # examples that pass only by the tolerance are shown, so a QA lead sees what it adds
    assert "greeting/company example 'Стамутология, улыбка' matches (fuzzy: нечётко 0." in done.stdout
    done = run("lexicon", "try", str(DEFAULT_LEXICONS), "Стамутология, улыбка, администратор Мария")
    company = next(line for line in done.stdout.splitlines() if line.startswith("greeting/company"))
    assert done.returncode == 0 and "«стамутология" in company and "нечётко 0." in company
    done = run("lexicon", "try", str(DEFAULT_LEXICONS), "Короче, это как бы дорого. Я подумаю.")
    assert done.returncode == 0
    assert "fillers/filler  «короче»" in done.stdout and "objections/think  «подумаю»" in done.stdout
    stored = tmp_path / "call.json"
    stored.write_text(stereo_results["dental"].to_json(), encoding="utf-8")
    done = run("lexicon", "try", str(DEFAULT_LEXICONS), str(stored))
    assert done.returncode == 0 and "менеджер  greeting/hello" in done.stdout

    broken = tmp_path / "lexicons"
    broken.mkdir()
    (broken / "x.yaml").write_text("title: X\nterms:\n  - id: a\n    phrases: [дорого]\n"
                                   "    examples: [дешево]\n", encoding="utf-8")
    done = run("lexicon", "test", str(broken))
    assert done.returncode == 1
    assert f"{broken}/x.yaml:5: FAILED: x/a example 'дешево' does not match" in done.stdout


def test_analyze_cli_fills_hits_and_score(tmp_path: Path) -> None:
    call = next(c for c in SAMPLE_CALLS if c.call_id == "windows")
    out = tmp_path / "windows.json"
    done = run("analyze", str(call.stereo), "--json", str(out), "--manager-channel", call.manager_channel,
               "--direction", call.direction, "--device", "cpu")
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["hits"] and result["score"]["total"] > 0
    assert {"total", "grade", "passed", "criteria"} <= set(result["score"])
    criterion = result["score"]["criteria"][0]
    assert {"id", "title", "passed", "points", "max_points", "evidence"} <= set(criterion)
    assert "score" in done.stdout
