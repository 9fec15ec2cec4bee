"""People's reviews of criterion verdicts: stored append-only (a folder and a real S3 server, reviewers racing),
applied by `derive` (the score follows them and says so), kept by every re-score (the store's, `callqa rescore`,
`callqa run --rescore`, the nightly run's finish step), told in the deal comment (the sandbox portal over HTTP);
and the calibration of the automatic verdicts against people's, with figures computed by hand. Calls are the
sample calls' scripts (no ASR)."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.bitrix24.client import Bitrix24Client, WebhookAuth
from pipeline.calibration import calibrate, cohen_kappa
from pipeline.derive import DeriveSetup, derive
from pipeline.publish import PublishSettings, publish_stored
from pipeline.publish.comment import render_comment
from pipeline.reviews import (
    MAX_ATTEMPTS,
    REVIEWS_SCHEMA,
    Review,
    ReviewConflict,
    ReviewError,
    add_review,
    check_review,
    read_reviews,
    rescore_stored,
    store_result,
)
from pipeline.sandbox import serve
from pipeline.schema import CallMetadata, CallResult, CriterionResult, CriterionReview, Score
from pipeline.settings import load_settings
from pipeline.stores import FolderStore, Versioned, result_key, reviews_key, transcript_key
from pipeline.transcript import Transcript
from tests.cli_helpers import run_callqa
from tests.test_batch import make_source, run, run_summary, statuses
from tests.test_bitrix24_e2e import DEALS, seeded_portal
from tests.test_derive import BY_ID, _transcript

AT = "2026-12-03T10:15:00+00:00"
ANNA, PETR = ("ivanova", "Анна Иванова"), ("petrov", "Пётр Петров")


def _review(criterion: str, verdict: str, *, call_id: str = "dental", who: tuple[str, str] = ANNA,
            rule: str | None = None, comment: str = "", at: str = AT) -> Review:
    return Review(call_id=call_id, criterion=criterion, verdict=verdict, reviewer=who[0],  # type: ignore[arg-type]
                  reviewer_name=who[1], at=at, rule=rule, comment=comment)


@pytest.fixture(scope="module")
def dental() -> Transcript:
    return _transcript(BY_ID["dental"], "channels")


@pytest.fixture(scope="module")
def machine(dental: Transcript, derive_setup: DeriveSetup) -> CallResult:
    result = derive(dental, derive_setup)
    assert result.score is not None
    return result


def _criterion(result: CallResult, criterion_id: str) -> CriterionResult:
    assert result.score is not None
    return next(c for c in result.score.criteria if c.id == criterion_id)


def _total_by_hand(criteria: list[CriterionResult]) -> float:
    applicable = [c for c in criteria if c.applicable]
    return round(100 * sum(c.points for c in applicable) / sum(c.max_points for c in applicable), 1)


# --- derive applies reviews ---------------------------------------------------------------------------------


def test_a_review_overrides_the_machine_and_the_score_says_so(dental, machine, derive_setup) -> None:
    assert _criterion(machine, "greeting").verdict == "met" and _criterion(machine, "talk_ratio").verdict == "not_met"
    reviews = [_review("greeting", "met", who=PETR),  # overturned by the later review of the same criterion
               _review("greeting", "not_met", comment="поздоровался невнятно"),
               _review("talk_ratio", "met", who=PETR), _review("company", "not_met")]
    reviewed = derive(dental, derive_setup, reviews)
    assert reviewed.score is not None and machine.score is not None
    greeting, ratio = _criterion(reviewed, "greeting"), _criterion(reviewed, "talk_ratio")
    assert (greeting.verdict, greeting.passed, greeting.points, greeting.max_points) == ("not_met", False, 0, 5)
    assert (ratio.verdict, ratio.passed, ratio.points, ratio.max_points) == ("met", True, 5, 5)
    assert greeting.review == CriterionReview(verdict="not_met", automatic="met", reviewer="ivanova",
                                              reviewer_name="Анна Иванова", at=AT, comment="поздоровался невнятно")
    assert ratio.review is not None and ratio.review.automatic == "not_met" and ratio.note is None
    assert greeting.evidence == _criterion(machine, "greeting").evidence  # what the machine heard stays
    # 17 criteria, 16 apply (convenience does not), 95 points in all: the machine gave 90; the reviews take
    # greeting's 5 and company's 10 and give talk ratio's 5: 80
    assert machine.score.total == round(100 * 90 / 95, 1) == 94.7
    assert reviewed.score.total == _total_by_hand(reviewed.score.criteria) == round(100 * 80 / 95, 1) == 84.2
    assert (machine.score.grade, reviewed.score.grade) == (5, 4)
    assert reviewed.score.reviewed_by == ["Анна Иванова", "Пётр Петров"] and machine.score.reviewed_by == []
    standards = {g.id: g.total for g in reviewed.score.groups}["standards"]
    before = {g.id: g.total for g in machine.score.groups}["standards"]
    assert standards is not None and before is not None and standards < before  # greeting is a standard
    assert CallResult.from_json(reviewed.to_json()) == reviewed  # the new fields round-trip
    assert derive(dental, derive_setup, reviews) == reviewed  # still pure and deterministic


def test_agreeing_reviews_change_nothing_but_who_reviewed(dental, machine, derive_setup) -> None:
    assert machine.score is not None
    reviews = [_review(c.id, c.verdict) for c in machine.score.criteria
               if c.verdict in ("met", "not_met", "not_applicable")]
    reviewed = derive(dental, derive_setup, reviews).score
    assert reviewed is not None
    assert (reviewed.total, reviewed.grade, reviewed.passed, reviewed.groups, reviewed.auto_failed) == (
        machine.score.total, machine.score.grade, machine.score.passed, machine.score.groups,
        machine.score.auto_failed)
    assert [c.model_copy(update={"review": None}) for c in reviewed.criteria] == machine.score.criteria
    assert reviewed.reviewed_by == ["Анна Иванова"]


def test_not_applicable_and_auto_fail_count_as_the_engine_counts_them(dental, machine, derive_setup) -> None:
    assert machine.score is not None
    out = derive(dental, derive_setup, [_review("company", "not_applicable")]).score
    assert out is not None
    company = next(c for c in out.criteria if c.id == "company")
    assert (company.applicable, company.max_points, company.points, company.passed) == (False, 0, 0, True)
    assert out.total == round(100 * 80 / 85, 1)  # company's 10 points leave both sides of the share
    rude = derive(dental, derive_setup, [_review("no_rudeness", "not_met")]).score
    assert rude is not None
    assert rude.auto_failed == ["no_rudeness"] and rude.total == 0 and not rude.passed and rude.grade == 1


def test_reviews_that_cannot_apply_are_ignored(dental, machine, derive_setup) -> None:
    gone = derive(dental, derive_setup, [_review("dropped_from_the_scorecard", "not_met")])
    assert gone == machine
    unscored = derive(dental, DeriveSetup(lexicons=derive_setup.lexicons), [_review("greeting", "not_met")])
    assert unscored.score is None
    with pytest.raises(ValueError, match="another call"):
        derive(dental, derive_setup, [_review("greeting", "met", call_id="someone-else")])


def test_a_changed_rule_is_flagged_a_retitled_one_is_not(dental, machine, derive_setup) -> None:
    scorecard = derive_setup.scorecard
    assert scorecard is not None
    review = Review.for_criterion(machine, scorecard, criterion="greeting", verdict="not_met", reviewer="ivanova",
                                  reviewer_name="Анна Иванова", at="2026-12-03T13:15:00+03:00")
    assert review.at == AT and review.automatic == "met" and review.scorecard_version == machine.scorecard_version
    assert review.rule is not None and len(review.rule) == 12

    def edited(**changes) -> DeriveSetup:
        criteria = [c.model_copy(update=changes) if c.id == "greeting" else c for c in scorecard.definition.criteria]
        definition = scorecard.definition.model_copy(update={"criteria": criteria})
        return dataclasses.replace(derive_setup, scorecard=dataclasses.replace(scorecard, definition=definition))

    same = _criterion(derive(dental, derive_setup, [review]), "greeting").review
    retitled = _criterion(derive(dental, edited(title="Поздоровался", weight=7.0), [review]), "greeting").review
    stricter = _criterion(derive(dental, edited(min_count=2), [review]), "greeting").review
    assert same is not None and retitled is not None and stricter is not None
    assert not same.rule_changed and not retitled.rule_changed and stricter.rule_changed
    assert stricter.rule == review.rule and stricter.verdict == "not_met"  # flagged, still counted


def test_a_review_of_an_unknown_criterion_is_refused(machine, derive_setup) -> None:
    with pytest.raises(ReviewError, match="has no criterion 'greetings'; expected one of: greeting, company"):
        check_review(_review("greetings", "met"), derive_setup.scorecard)
    with pytest.raises(ReviewError, match="greetings"):
        Review.for_criterion(machine, derive_setup.scorecard, criterion="greetings", verdict="met",
                             reviewer="ivanova", reviewer_name="Анна Иванова", at=AT)
    with pytest.raises(ValueError, match="time zone"):
        _review("greeting", "met", at="2026-12-03T10:15:00")


# --- the store: append-only, racing reviewers ------------------------------------------------------------------




def test_reviews_are_appended_and_read_back_in_order(store) -> None:
    assert read_reviews(store, "dental") == []  # none stored: no reviews, no error
    first, second = _review("greeting", "met"), _review("greeting", "not_met", who=PETR)
    assert add_review(store, first) == [first]
    assert add_review(store, second) == [first, second]
    assert read_reviews(store, "dental") == [first, second]
    document = json.loads(store.read(reviews_key("dental")))
    assert document["schema"] == REVIEWS_SCHEMA and [r["reviewer_name"] for r in document["reviews"]] == [
        "Анна Иванова", "Пётр Петров"]


@pytest.mark.parametrize("reviewers", [2, 8])
def test_reviewers_adding_at_once_all_keep_their_reviews(store, reviewers: int) -> None:
    barrier = threading.Barrier(reviewers)
    errors: list[BaseException] = []

    def reviewer(index: int) -> None:
        barrier.wait()
        try:
            add_review(store, _review("greeting", "met", who=(f"user{index}", f"Проверяющий {index}")))
        except BaseException as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)

    threads = [threading.Thread(target=reviewer, args=(index,)) for index in range(reviewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.reviewer for r in read_reviews(store, "dental")) == sorted(f"user{i}" for i in range(reviewers))


class _Contested(FolderStore):
    """A real folder store where another reviewer appends between every read of the list and this writer's
    conditional write (as if many reviewers kept winning the race)."""

    def read_versioned(self, key: str) -> Versioned | None:
        found = super().read_versioned(key)
        if found is not None and key.endswith("reviews.json"):
            document = json.loads(found.data)
            document["reviews"].append(_review("company", "met", who=PETR).model_dump(mode="json"))
            self.write(key, json.dumps(document).encode())
        return found


def test_a_writer_that_keeps_losing_gives_up_without_overwriting(tmp_path: Path) -> None:
    store = _Contested(tmp_path / "store")
    add_review(store, _review("greeting", "met", who=PETR))  # created: nobody raced the first write
    with pytest.raises(ReviewConflict, match=f"kept changing.*{MAX_ATTEMPTS} attempts"):
        add_review(store, _review("greeting", "not_met"))
    stored = read_reviews(FolderStore(tmp_path / "store"), "dental")
    assert len(stored) == 1 + MAX_ATTEMPTS and {r.reviewer for r in stored} == {"petrov"}


def test_an_unreadable_list_is_refused_and_left_alone(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    store.write(reviews_key("dental"), b'{"schema": "callqa.reviews/9", "reviews": []}')
    with pytest.raises(ReviewError, match="not a callqa.reviews/1 list"):
        read_reviews(store, "dental")
    with pytest.raises(ReviewError):
        add_review(store, _review("greeting", "met"))
    assert store.read(reviews_key("dental")) == b'{"schema": "callqa.reviews/9", "reviews": []}'


def test_fields_of_a_later_version_are_kept_when_appending(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    later = {**_review("greeting", "met").model_dump(mode="json"), "audio_at_s": 12.5}
    store.write(reviews_key("dental"), json.dumps({"schema": REVIEWS_SCHEMA, "reviews": [later]}).encode())
    add_review(store, _review("company", "met"))
    assert json.loads(store.read(reviews_key("dental")))["reviews"][0] == later


# --- re-scoring keeps reviews -----------------------------------------------------------------------------------


def test_the_stored_result_follows_the_reviews(tmp_path: Path, dental, derive_setup) -> None:
    store = FolderStore(tmp_path / "store")
    assert rescore_stored(store, "dental", derive_setup) is None  # no transcript stored
    store.write(transcript_key("dental"), dental.to_json().encode())
    plain = store_result(store, dental, derive_setup)
    add_review(store, _review("greeting", "not_met"))
    reviewed = rescore_stored(store, "dental", derive_setup)
    assert reviewed is not None and reviewed.score is not None and plain.score is not None
    assert reviewed.score.total < plain.score.total and reviewed.score.reviewed_by == ["Анна Иванова"]
    assert CallResult.from_json(store.read(result_key("dental"))) == reviewed


class _ReviewedMeanwhile(FolderStore):
    """A real folder store where a reviewer adds a review just as the first result is written."""

    def write(self, key: str, data: bytes, **conditions) -> bool:
        written = super().write(key, data, **conditions)
        if key.endswith("result.json") and not getattr(self, "reviewed", False):
            self.reviewed = True
            add_review(self, _review("company", "not_met", who=PETR))
        return written


def test_a_review_added_while_the_result_is_stored_is_not_lost(tmp_path: Path, dental, derive_setup) -> None:
    store = _ReviewedMeanwhile(tmp_path / "store")
    add_review(store, _review("greeting", "not_met"))
    returned = store_result(store, dental, derive_setup)
    stored = CallResult.from_json(store.read(result_key("dental")))
    assert stored == returned and stored.score is not None
    assert stored.score.reviewed_by == ["Анна Иванова", "Пётр Петров"]


def test_callqa_rescore_keeps_the_reviews_beside_a_result_and_those_inside_one(tmp_path: Path, dental,
                                                                               derive_setup) -> None:
    store = FolderStore(tmp_path / "store")
    store.write(transcript_key("dental"), dental.to_json().encode())
    add_review(store, _review("greeting", "not_met"))
    add_review(store, _review("talk_ratio", "met", who=PETR))
    expected = store_result(store, dental, derive_setup)
    stored = tmp_path / "store" / result_key("dental")
    loose = tmp_path / "dental.json"  # a result file elsewhere: no reviews.json beside it
    machine = derive(dental, derive_setup)
    loose.write_text(expected.to_json(), encoding="utf-8")
    stored.write_text(machine.to_json(), encoding="utf-8")  # as if the reviews had not been applied yet
    done = run_callqa("rescore", str(stored), str(loose))
    assert done.returncode == 0, done.stderr
    assert "2 results re-scored in place" in done.stdout
    for path in (stored, loose):
        rescored = CallResult.from_json(path.read_text(encoding="utf-8"))
        assert rescored.score == expected.score, path


def test_the_nightly_rescore_keeps_the_reviews(tmp_path: Path, derive_setup) -> None:
    call = BY_ID["dental"]
    source, store = make_source(tmp_path / "calls", [call]), FolderStore(tmp_path / "store")
    transcript = _transcript(call, "channels")
    store.write(transcript_key(call.call_id), transcript.to_json().encode())
    add_review(store, _review("greeting", "not_met", call_id=call.call_id))
    done = run("--source", str(source), "--store", str(tmp_path / "store"), "--rescore", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert statuses(run_summary(tmp_path / "store", done.stdout)) == {call.call_id: "rescored"}
    result = CallResult.from_json(store.read(result_key(call.call_id)))
    assert result.score is not None and result.score.reviewed_by == ["Анна Иванова"]
    assert _criterion(result, "greeting").verdict == "not_met"
    assert result == derive(transcript, derive_setup, read_reviews(store, call.call_id))


def test_a_call_transcribed_again_keeps_its_reviews(tmp_path: Path, derive_setup) -> None:
    """The nightly run's finish step on a real (in-process) Dask worker, handed the call's transcript as the
    transcription step hands it over (the script's words: no ASR here)."""
    from distributed import Client, LocalCluster

    from pipeline.batch.job import AsrIdentity, BatchJob, Transcribed
    from pipeline.batch.worker import CallqaWorkerPlugin, finish_call
    from pipeline.sources.base import CallRecord

    assert derive_setup.lexicons is not None and derive_setup.scorecard is not None
    store = FolderStore(tmp_path / "store")
    add_review(store, _review("greeting", "not_met"))
    add_review(store, _review("company", "not_applicable", who=PETR))
    job = BatchJob(run_id="run-1", settings=load_settings(), source=str(tmp_path / "calls"),
                   store=str(tmp_path / "store"), asr=AsrIdentity(name="whisper-base", sha256=None),
                   lexicon_version=derive_setup.lexicons.version, scorecard_version=derive_setup.scorecard.version)
    transcribed = Transcribed(record=CallRecord(call_id="dental", uri="dental.mp3"), sha256="0" * 64, size_bytes=1,
                              transcript=_transcript(BY_ID["dental"], "channels"))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.register_plugin(CallqaWorkerPlugin(job, derive_setup), name="callqa-run-1")
        outcome = client.submit(finish_call, transcribed, "callqa-run-1").result()
    assert outcome.status == "processed", outcome.reason
    result = CallResult.from_json(store.read(result_key("dental")))
    assert result.score is not None and result.score.reviewed_by == ["Анна Иванова", "Пётр Петров"]
    assert (_criterion(result, "greeting").verdict, _criterion(result, "company").verdict) == (
        "not_met", "not_applicable")
    assert outcome.score == result.score.total


# --- the deal comment -------------------------------------------------------------------------------------------


def test_a_reviewed_score_updates_the_deal_comment_in_place(tmp_path: Path, derive_setup) -> None:
    portal = seeded_portal()
    row = portal.calls[0]
    call_id = row["CALL_ID"]
    metadata = CallMetadata(started_at=row["CALL_START_DATE"], manager_id=row["PORTAL_USER_ID"],
                            manager_name="Менеджер 1", deal_id=DEALS[0], crm_target=f"deal:{DEALS[0]}")
    transcript = _transcript(BY_ID["dental"], "channels").model_copy(update={"call_id": call_id,
                                                                             "metadata": metadata})
    store = FolderStore(tmp_path / "store")
    store.write(transcript_key(call_id), transcript.to_json().encode())
    store_result(store, transcript, derive_setup)
    settings = load_settings().model_copy(update={"publish": PublishSettings(
        transcripts=False, deal_fields=False, notify_auto_fail=False)})
    with serve(portal) as running:
        client = Bitrix24Client(WebhookAuth(SecretStr(running.webhook_url)), timeout_s=5)
        first = publish_stored(store, [call_id], settings, client=client)
        assert first.count("posted") == 1, first
        [(comment_id, comment)] = portal.comments.items()
        assert "Проверено" not in comment["COMMENT"]

        add_review(store, _review("greeting", "not_met", call_id=call_id, comment="не поздоровался"))
        add_review(store, _review("talk_ratio", "met", call_id=call_id, who=PETR))
        rescore_stored(store, call_id, derive_setup)
        second = publish_stored(store, [call_id], settings, client=client)
        assert second.count("updated") == 1, second
        assert list(portal.comments) == [comment_id]  # the same comment, edited
        text = portal.comments[comment_id]["COMMENT"]
        assert "Проверено: Анна Иванова, Пётр Петров" in text
        missed, met = text.split("[B]Что улучшить:[/B]")[1].split("[B]Выполнено:[/B]")
        assert "✘ Поздоровался в начале разговора — Анна Иванова: не поздоровался" in missed
        assert "✔ Говорил 40-60 % времени" in met and "Говорил 40-60 %" not in missed

        third = publish_stored(store, [call_id], settings, client=client)
        assert third.count("unchanged") == 1


def test_the_comment_names_the_reviewers_only_when_reviews_count(machine, dental, derive_setup) -> None:
    assert "Проверено" not in render_comment(machine)
    text = render_comment(derive(dental, derive_setup, [_review("greeting", "met", who=PETR)]))
    assert "\nПроверено: Пётр Петров\n" in text


# --- calibration, by hand ---------------------------------------------------------------------------------------


def _reviewed_call(base: CallResult, call_id: str, pairs: dict[str, tuple[str, str]]) -> CallResult:
    """`base` as call `call_id` whose criteria were judged (machine's verdict, person's verdict)."""
    criteria = [CriterionResult(id=cid, title=f"Критерий {cid}", passed=True, points=1, max_points=1,
                                review=CriterionReview(verdict=person, automatic=machine,  # type: ignore[arg-type]
                                                       reviewer="ivanova", reviewer_name="Анна Иванова", at=AT))
                for cid, (machine, person) in pairs.items()]
    return base.model_copy(update={"call_id": call_id, "score": Score(total=0, grade=1, passed=False,
                                                                       criteria=criteria)})


def test_calibration_figures_by_hand(machine) -> None:
    # Criterion "a", machine vs person over 10 compared calls:
    #                 person met  person not_met
    #   machine met        4            1
    #   machine not_met    2            3
    # p_o = 7/10 = 0.7; the machine says met in 5/10, the person in 6/10, so by chance
    # p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4; precision 4/5, recall 4/6.
    # Two more calls the machine was uncertain of (people: met once, not applicable once), and one the machine
    # said met where the person said it did not apply: 13 reviewed, 4 disagreements.
    # Criterion "b": both always met: p_e = 1, kappa undefined (None), agreement 1.0, not flagged.
    # Criterion "c": the machine always met, the person 3 met and 1 not: p_o = 0.75, p_e = 1 * 0.75 = 0.75,
    # kappa = 0: flagged.
    table = [("met", "met")] * 4 + [("met", "not_met")] + [("not_met", "met")] * 2 + [("not_met", "not_met")] * 3
    table += [("uncertain", "met"), ("uncertain", "not_applicable"), ("met", "not_applicable")]
    results = [_reviewed_call(machine, f"a{i}", {"a": pair}) for i, pair in enumerate(table)]
    results += [_reviewed_call(machine, f"b{i}", {"b": ("met", "met"), "c": ("met", "met" if i else "not_met")})
                for i in range(4)]
    results.append(machine.model_copy(update={"call_id": "unreviewed"}))
    results.append(machine.model_copy(update={"call_id": "unscored", "score": None}))

    calibration = calibrate(results, kappa_threshold=0.6)
    a, b, c = calibration.criteria
    assert calibration.calls == 17 and [row.criterion for row in calibration.criteria] == ["a", "b", "c"]
    assert (a.reviewed, a.compared, a.both_met, a.machine_met_person_not, a.machine_not_person_met,
            a.both_not_met) == (13, 10, 4, 1, 2, 3)
    assert a.agreement == pytest.approx(0.7) and a.kappa == pytest.approx(0.4)
    assert a.precision == pytest.approx(0.8) and a.recall == pytest.approx(4 / 6)
    assert a.uncertain == {"met": 1, "not_applicable": 1}
    assert a.disagreements == ["a4", "a5", "a6", "a12"] and a.flagged and a.title == "Критерий a"
    assert (b.kappa, b.agreement, b.flagged, b.reviewed) == (None, 1.0, False, 4)
    assert c.kappa == pytest.approx(0.0) and c.agreement == 0.75 and c.flagged and c.disagreements == ["b0"]
    assert c.precision == 0.75 and c.recall == 1.0
    assert [row.criterion for row in calibration.flagged] == ["a", "c"]
    assert [row.criterion for row in calibrate(results, kappa_threshold=0.3).flagged] == ["c"]


def test_calibration_of_nothing_is_empty_not_a_crash(machine) -> None:
    assert calibrate([], kappa_threshold=0.6).criteria == []
    only_uncertain = calibrate([_reviewed_call(machine, "u", {"a": ("uncertain", "met")})], kappa_threshold=0.6)
    [row] = only_uncertain.criteria
    assert (row.compared, row.agreement, row.precision, row.recall, row.kappa, row.flagged) == (
        0, None, None, None, None, False)
    assert cohen_kappa(0, 0, 0, 0) is None and cohen_kappa(0, 0, 0, 5) is None
    assert cohen_kappa(2, 0, 0, 2) == 1.0 and cohen_kappa(0, 2, 2, 0) == -1.0


def test_calibration_reads_what_derive_wrote(dental, derive_setup) -> None:
    reviewed = derive(dental, derive_setup, [_review("greeting", "not_met"), _review("talk_ratio", "not_met")])
    rows = {row.criterion: row for row in calibrate([reviewed], kappa_threshold=0.6).criteria}
    assert rows["greeting"].machine_met_person_not == 1 and rows["greeting"].disagreements == ["dental"]
    assert rows["talk_ratio"].both_not_met == 1 and rows["talk_ratio"].disagreements == []


