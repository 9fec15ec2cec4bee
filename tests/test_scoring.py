"""Scorecards: the default one on every scripted dialogue, and the engine's rules on hand-made calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.derive import SCORE_WARNING, DeriveSetup, derive
from pipeline.schema import Hit, Metrics, PerRole, PerRoleCount, Turn
from pipeline.scoring import CallFacts, load_scorecard
from pipeline.transcript import Transcript
from pipeline.turns import build_turns
from tests.conftest import SAMPLE_CALLS, SampleCall, script_facts


@pytest.mark.parametrize("call", SAMPLE_CALLS, ids=[call.call_id for call in SAMPLE_CALLS])
def test_default_scorecard_on_the_script(derive_setup: DeriveSetup, call: SampleCall) -> None:
    """Each dialogue was written to pass or fail given criteria (tests/synth/dialogues.yaml, `expect`)."""
    words, turns, metrics = script_facts(call)
    hits = derive_setup.lexicons.matcher.find_hits(words, turns, call.duration_s)
    score = derive_setup.scorecard.score(CallFacts(hits, turns, metrics, call.duration_s, call.direction),
                                    derive_setup.lexicons)
    judged = [c for c in score.criteria if c.kind != "metric"]
    assert {c.id for c in judged if c.applicable and not c.passed} == call.expect_fail
    assert {c.id for c in judged if not c.applicable} == call.expect_not_applicable
    for criterion in score.criteria:
        if criterion.applicable and criterion.passed and criterion.kind == "required":
            assert criterion.evidence, criterion.id  # a passed requirement shows what was said
        if not criterion.passed:
            assert criterion.expected, criterion.id  # a failure says what was expected
    assert {g.id for g in score.groups} == {"standards", "communication"}


def test_the_rude_call_is_zeroed_and_says_why(derive_setup: DeriveSetup) -> None:
    call = next(c for c in SAMPLE_CALLS if c.call_id == "conditioners")
    words, turns, metrics = script_facts(call)
    hits = derive_setup.lexicons.matcher.find_hits(words, turns, call.duration_s)
    score = derive_setup.scorecard.score(CallFacts(hits, turns, metrics, call.duration_s, call.direction),
                                    derive_setup.lexicons)
    assert (score.total, score.grade, score.passed, score.auto_failed) == (0.0, 1, False, ["no_rudeness"])
    rude = next(c for c in score.criteria if c.id == "no_rudeness")
    assert any("сказал" in e.text for e in rude.evidence) and any("морочьте" in e.text for e in rude.evidence)
    fillers = next(c for c in score.criteria if c.id == "fillers")
    assert fillers.value == 4 and not fillers.passed
    price = next(c for c in score.criteria if c.id == "price_after_needs")
    assert "прозвучало раньше" in price.note


CARD = """scorecard: unit
title: Проверка
groups: {a: Группа А}
grades: {5: 90, 4: 75, 3: 60, 2: 40}
criteria:
  - {id: greet, title: Поздоровался, group: a, kind: required, weight: 10,
     require: {lexicon: greeting, role: manager, within: {first_s: 10}}}
  - {id: price_late, title: Цена после вопросов, group: a, kind: required, weight: 10,
     require: {lexicon: price, role: manager}, after: {lexicon: needs, role: manager}}
  - {id: answer, title: Ответ на возражение, kind: required, weight: 10,
     when: {lexicon: objections, role: client}, require: {lexicon: handling, role: manager}, within_turns: 2}
  - {id: fillers, title: Без паразитов, kind: forbidden, weight: 10, forbid: {lexicon: fillers}, max_count: 1}
  - {id: ratio, title: Доля речи, kind: metric, weight: 10, metric: talk_ratio_manager, min: 0.4, max: 0.6}
  - {id: outgoing, title: Удобно ли, kind: required, weight: 10, direction: out,
     require: {lexicon: convenience}}
  - {id: rude, title: Без грубости, kind: forbidden, weight: 10, auto_fail: true, forbid: {lexicon: rudeness}}
"""


def hit(lexicon: str, start: float, role: str = "manager", turn: int | None = None) -> Hit:
    return Hit(lexicon=lexicon, term="t", role=role, start=start, end=start + 0.5, text=lexicon, turn=turn)


def turns(*roles: str) -> list[Turn]:
    return [Turn(start=i * 5.0, end=i * 5.0 + 4, speaker=r, role=r, text="…") for i, r in enumerate(roles)]


def metrics(ratio: float | None) -> Metrics:
    return Metrics(talk_ratio_manager=ratio, manager_talk_s=None, client_talk_s=None, total_talk_s=10, silence_s=0,
                   long_silences=0, overlap_s=0, longest_monologue_s=PerRole(), interruptions=PerRoleCount(),
                   speech_rate_wpm=PerRole(), questions=PerRoleCount())


@pytest.fixture()
def card(tmp_path: Path):
    (tmp_path / "card.yaml").write_text(CARD, encoding="utf-8")
    return load_scorecard(tmp_path / "card.yaml")


def score(card, hits, call_turns, ratio=0.5, direction="in"):
    result = card.score(CallFacts(hits=hits, turns=call_turns, metrics=metrics(ratio), duration_s=60,
                                  direction=direction))
    return result, {c.id: c for c in result.criteria}


def test_a_clean_call(card) -> None:
    call_turns = turns("manager", "client", "manager", "client", "manager")
    hits = [hit("greeting", 1, turn=0), hit("needs", 2, turn=0), hit("objections", 6, "client", turn=1),
            hit("handling", 11, turn=2), hit("price", 12, turn=2)]
    result, criteria = score(card, hits, call_turns)
    assert [c.id for c in result.criteria if not c.passed] == []
    assert not criteria["outgoing"].applicable and criteria["outgoing"].note == "только для исходящих звонков"
    assert (result.total, result.grade, result.passed) == (100.0, 5, True)
    assert [(e.start, e.text) for e in criteria["price_late"].evidence] == [(2, "needs"), (12, "price")]
    assert [e.text for e in criteria["answer"].evidence] == ["objections", "handling"]
    assert result.groups[0].model_dump() == {"id": "a", "title": "Группа А", "total": 100.0, "grade": 5}


def test_order_windows_answers_counts_and_ranges(card) -> None:
    call_turns = turns("manager", "client", "manager", "client", "manager", "client", "manager")
    hits = [hit("greeting", 12, turn=0),  # too late for the 10 s window
            hit("price", 2, turn=0), hit("needs", 3, turn=0),  # price before the needs question
            hit("objections", 6, "client", turn=1), hit("handling", 31, turn=6),  # answered in the 3rd turn
            hit("fillers", 7, turn=2), hit("fillers", 8, turn=2)]
    result, criteria = score(card, hits, call_turns, ratio=0.8)
    assert {c.id for c in result.criteria if not c.passed} == {"greet", "price_late", "answer", "fillers", "ratio"}
    assert "00:02 «price» прозвучало раньше" in criteria["price_late"].note
    assert criteria["answer"].note == "без ответа: 00:06 «objections»"
    assert criteria["fillers"].value == 2 and criteria["ratio"].value == 0.8
    assert criteria["ratio"].expected == "talk_ratio_manager: не меньше 0.4 и не больше 0.6"
    # 10 points of 60 applicable (greet, price, answer, fillers, ratio fail; rude passes; outgoing n/a)
    assert (result.total, result.grade, result.passed) == (16.7, 1, False)


def test_not_applicable_criteria_carry_no_points(card) -> None:
    result, criteria = score(card, [hit("greeting", 1, turn=0), hit("needs", 2, turn=0), hit("price", 3, turn=0),
                                    hit("convenience", 4, turn=0)], turns("manager"), ratio=None, direction="out")
    assert not criteria["answer"].applicable and criteria["answer"].note.startswith("не было события")
    assert not criteria["ratio"].applicable
    assert criteria["outgoing"].applicable and criteria["outgoing"].passed
    assert result.total == 100.0 and sum(c.max_points for c in result.criteria) == 50


def test_auto_fail_zeroes_the_total(card) -> None:
    result, criteria = score(card, [hit("greeting", 1, turn=0), hit("rudeness", 2, turn=0)], turns("manager"))
    assert not criteria["rude"].passed and [e.text for e in criteria["rude"].evidence] == ["rudeness"]
    assert (result.total, result.grade, result.passed, result.auto_failed) == (0.0, 1, False, ["rude"])


def test_reviews_replace_verdicts_and_the_total_is_made_again(card) -> None:
    from pipeline.reviews import Review

    def review(criterion: str, verdict: str) -> Review:
        return Review(call_id="c", criterion=criterion, verdict=verdict, reviewer="qa",  # type: ignore[arg-type]
                      reviewer_name="Анна", at="2026-12-03T10:00:00Z")

    call_turns = turns("manager", "client", "manager", "client", "manager", "client", "manager")
    hits = [hit("greeting", 12, turn=0), hit("price", 2, turn=0), hit("needs", 3, turn=0),
            hit("objections", 6, "client", turn=1), hit("handling", 31, turn=6)]
    machine, _ = score(card, hits, call_turns, ratio=0.8)
    assert machine.total == 33.3  # 20 of 60: fillers and rude pass
    reviewed = card.reviewed(machine, [review("greet", "met"), review("answer", "not_applicable"),
                                       review("ratio", "met"), review("gone", "not_met")])
    # greet and ratio now met (+20), answer no longer applies (-10 of the maximum): 40 of 50
    assert (reviewed.total, reviewed.grade, reviewed.passed, reviewed.auto_failed) == (80.0, 4, True, [])
    assert reviewed.groups[0].total == 50.0 and reviewed.reviewed_by == ["Анна"]  # group a: greet 10 of 20
    assert [c.id for c in reviewed.criteria] == [c.id for c in machine.criteria]  # the gone one is ignored
    rude = card.reviewed(machine, [review("rude", "not_met")])
    assert (rude.total, rude.passed, rude.auto_failed) == (0.0, False, ["rude"])
    assert card.reviewed(machine, [review("gone", "met")]) == machine


def test_a_criterion_s_fingerprint_is_its_rule(card, tmp_path: Path) -> None:
    greet = "{id: greet, title: Поздоровался, group: a, kind: required, weight: 10,"
    variants = {"same": CARD.replace(greet, "{kind: required, min_count: 1, weight: 20, title: Привет, id: greet, "
                                            "group: a, auto_fail: false,"),
                "window": CARD.replace("within: {first_s: 10}", "within: {first_s: 15}")}
    fingerprints = {}
    for name, text in variants.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
        fingerprints[name] = load_scorecard(tmp_path / f"{name}.yaml").definition.criteria[0].fingerprint()
    original = card.definition.criteria[0].fingerprint()
    assert len(original) == 12 and int(original, 16) >= 0
    assert fingerprints["same"] == original != fingerprints["window"]
    assert len({c.fingerprint() for c in card.definition.criteria}) == len(card.definition.criteria)


@pytest.mark.parametrize(("total", "grade"), [(100, 5), (90, 5), (89.9, 4), (75, 4), (60, 3), (40, 2), (39.9, 1)])
def test_grade_bands(card, total: float, grade: int) -> None:
    assert card.definition.grade_of(total) == grade


def test_scoring_needs_known_roles(stereo_results, derive_setup: DeriveSetup) -> None:
    result = next(iter(stereo_results.values()))
    words = [w.model_copy(update={"role": "unknown", "speaker": "mixed"}) for w in result.words]
    mono = result.model_copy(update={"words": words, "turns": build_turns(words)})
    scored = derive(Transcript.from_result(mono), derive_setup)
    assert scored.score is None and scored.scorecard_version is None
    assert scored.hits and {h.role for h in scored.hits} == {"unknown"}
    assert f"{SCORE_WARNING}manager and client are not known in this call" in scored.warnings
    # scoring again replaces its own warning instead of piling them up
    assert derive(Transcript.from_result(scored), derive_setup).warnings.count(
        f"{SCORE_WARNING}manager and client are not known in this call") == 1
