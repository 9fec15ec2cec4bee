"""Verdicts a manager can trust: the scorecard's lexicon criteria judged from the audio against the same criteria
judged from each call's script (its words on the same legs, scored through the same `derive`), questions counted
from wording, and an uncertain verdict where recognition failed, shown as such.

Bounds (bench/verdicts.py, bench/README.md): on the nine stereo calls the issue's goals, agreement at least 0.95
(measured 0.968) and false ✘ at most 3 % of the verdicts that apply (measured 1.7 %, 2 of 121; 8.3 % before
recognition-tolerant matching); mono, whose roles come from the diarizer, at least 0.90 and at most 6 % (measured
0.952 and 3.3 %). Two more disagreements still pass the stereo agreement bound; two more false ✘ fail theirs.
"""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.analyze import CallAnalyzer
from pipeline.derive import DeriveSetup, derive
from pipeline.publish.comment import render_comment
from pipeline.schema import CallResult
from pipeline.transcript import Transcript
from tests.conftest import SAMPLE_CALLS, script_transcript
from tests.evaluation import VerdictComparison


def _compare(heard: dict[str, Transcript], stereo: dict[str, Transcript], setup: DeriveSetup) -> VerdictComparison:
    comparison = VerdictComparison()
    for call in SAMPLE_CALLS:
        script = derive(script_transcript(call, stereo[call.call_id]), setup)
        comparison.add(call.call_id, script, derive(heard[call.call_id], setup))
    return comparison


@pytest.fixture(scope="module")
def script_results(stereo_transcripts: dict[str, Transcript], derive_setup: DeriveSetup) -> dict[str, CallResult]:
    return {call.call_id: derive(script_transcript(call, stereo_transcripts[call.call_id]), derive_setup)
            for call in SAMPLE_CALLS}


def test_stereo_verdicts_agree_with_the_scripts(stereo_transcripts, derive_setup: DeriveSetup) -> None:
    comparison = _compare(stereo_transcripts, stereo_transcripts, derive_setup)
    report = "\n".join(comparison.lines())
    assert len(comparison.applicable) >= 100, report
    assert comparison.agreement >= 0.95, report
    assert comparison.false_fail <= 0.03, report
    assert comparison.false_pass == 0.0, report


def test_mono_verdicts_agree_with_the_scripts(mono_transcripts, stereo_transcripts,
                                              derive_setup: DeriveSetup) -> None:
    comparison = _compare(mono_transcripts, stereo_transcripts, derive_setup)
    report = "\n".join(comparison.lines())
    assert comparison.agreement >= 0.90, report
    assert comparison.false_fail <= 0.06, report


def test_questions_per_role_are_counted_from_wording(stereo_results, script_results) -> None:
    """Whisper drops most question marks; the count by wording stays within one of the script's for both roles
    on at least 8 of the 9 calls (measured 9 of 9; 6 of 9 when only '?', "ли" and sentence-initial
    interrogatives counted)."""
    close = []
    for call in SAMPLE_CALLS:
        heard, said = stereo_results[call.call_id].metrics.questions, script_results[call.call_id].metrics.questions
        close.append(abs((heard.manager or 0) - (said.manager or 0)) <= 1
                     and abs((heard.client or 0) - (said.client or 0)) <= 1)
    assert sum(close) >= 8, close


def test_a_garbled_company_name_is_uncertain_not_failed(stereo_results) -> None:
    """fitness: whisper-base heard "Добрый день, Светлана, у Патлев меня зовут" for "Добрый день, фитнес-клуб
    Атлет, меня зовут" (on an AMD EPYC; "Патлет" on an Intel Xeon: int8 arithmetic differs between CPUs). The
    manager named the company; the comment must not say ✘, and the score leaves the criterion out."""
    result = stereo_results["fitness"]
    company = next(c for c in result.score.criteria if c.id == "company")
    assert company.verdict == "uncertain" and not company.passed and company.max_points == 0
    heard = company.evidence[0].text if company.evidence else ""
    assert heard.startswith("Патле") and f"«{heard}» (похоже на «фитнес-клуб атлет»)" in company.note
    text = render_comment(result)
    assert "[B]Не удалось надёжно распознать (проверьте по записи):[/B]" in text
    assert "? Назвал компанию — похоже:" in text and "✘ Назвал компанию" not in text


def test_the_company_s_names_as_hotwords_make_whisper_spell_them(analyzer, settings,
                                                                derive_setup: DeriveSetup) -> None:
    """The same call with company.yaml's names biasing recognition (`hotword_lexicons: [company]`): the name is
    heard, the criterion met."""
    call = next(c for c in SAMPLE_CALLS if c.call_id == "fitness")
    named = CallAnalyzer(settings.model_copy(update={"hotword_lexicons": ["company"]}),
                         asr_model=analyzer.asr_model, setup=analyzer.setup)
    result = named.analyze(call.stereo, call_id=call.call_id, manager_channel=call.manager_channel,
                           direction=call.direction)
    assert result.model.asr.hotwords and result.score is not None
    assert next(c for c in result.score.criteria if c.id == "company").verdict == "met"


def test_a_manager_who_did_not_name_the_company_still_fails(stereo_results) -> None:
    """conditioners is scripted to fail: clear words, no company. No doubt excuses it."""
    company = next(c for c in stereo_results["conditioners"].score.criteria if c.id == "company")
    assert company.verdict == "not_met" and "✘ Назвал компанию" in render_comment(stereo_results["conditioners"])


def test_an_uncertain_verdict_can_count_as_not_met(stereo_transcripts, derive_setup: DeriveSetup) -> None:
    assert derive_setup.scorecard is not None
    definition = derive_setup.scorecard.definition.model_copy(update={"uncertain_counts_as_not_met": True})
    strict = dataclasses.replace(derive_setup,
                                 scorecard=dataclasses.replace(derive_setup.scorecard, definition=definition))
    lenient = derive(stereo_transcripts["fitness"], derive_setup).score
    counted = derive(stereo_transcripts["fitness"], strict).score
    assert lenient is not None and counted is not None
    company = next(c for c in counted.criteria if c.id == "company")
    assert company.verdict == "uncertain" and company.applicable and company.max_points == 10
    assert counted.total < lenient.total
