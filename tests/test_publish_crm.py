"""What publishing writes into Bitrix24 besides the comment, against the sandbox over real HTTP: the transcript on
the call, the deal's fields, the auto-fail notification; each exactly once, through faults, without an admin,
with a deal deleted meanwhile, and each switchable."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.bitrix24.client import Bitrix24Client, WebhookAuth
from pipeline.publish import PublishReport, PublishSettings, publish_stored
from pipeline.publish.ledgers import TranscriptLedger, read_ledger, transcript_ledger_key
from pipeline.publish.notify import render_notification
from pipeline.publish.transcript import transcript_messages
from pipeline.sandbox import Portal, SandboxOptions, serve
from pipeline.schema import CallMetadata, CallResult, Turn
from pipeline.settings import Settings, load_settings
from pipeline.stores import FolderStore, result_key
from tests.test_bitrix24_e2e import CALLS, DEALS, seeded_portal

SCORE, GRADE, COUNT = "UF_CRM_CALLQA_SCORE", "UF_CRM_CALLQA_GRADE", "UF_CRM_CALLQA_CALLS"
DEAL_URL = "https://portal.example.ru/crm/deal/details/{deal_id}/"


def _stored(portal: Portal, stereo_results: dict[str, CallResult], store: FolderStore) -> list[CallResult]:
    """The sample calls' results as the nightly run stores them for the portal's calls: the first two on the
    first deal (the second one later), the third on its own deal; the first call auto-failed."""
    results = []
    deals = [DEALS[0], DEALS[0], DEALS[2]]
    for index, (call, row) in enumerate(zip(CALLS, portal.calls)):
        result = stereo_results[call.call_id]
        assert result.score is not None and result.quality.passed
        metadata = CallMetadata(started_at=row["CALL_START_DATE"], manager_id=row["PORTAL_USER_ID"],
                                manager_name=f"Менеджер {index + 1}", deal_id=deals[index],
                                crm_target=f"deal:{deals[index]}")
        score = result.score
        if index == 0:
            score = score.model_copy(update={"auto_failed": [score.criteria[0].id], "total": 0.0, "grade": 1})
        result = result.model_copy(update={
            "call_id": row["CALL_ID"], "metadata": metadata, "score": score,
            "source": result.source.model_copy(update={"uri": f"bitrix24://127.0.0.1/call/{row['CALL_ID']}"})})
        store.write(result_key(result.call_id), result.to_json().encode())
        results.append(result)
    return results


def _settings(**publish) -> Settings:
    settings = load_settings()
    return settings.model_copy(update={"publish": PublishSettings(**publish),
                                       "report": settings.report.model_copy(update={"deal_url": DEAL_URL})})


def _publish(running, store: FolderStore, results: list[CallResult], settings: Settings | None = None,
             **options) -> PublishReport:
    client = Bitrix24Client(WebhookAuth(SecretStr(running.webhook_url)), timeout_s=5)
    return publish_stored(store, [r.call_id for r in results], settings or _settings(), client=client, **options)


def _writes(portal: Portal) -> dict[str, int]:
    return {method: portal.requests.get(method, 0) for method in
            ("crm.item.update", "telephony.call.attachtranscription", "im.notify.system.add",
             "crm.timeline.comment.add", "crm.deal.userfield.add")}


def test_each_kind_is_written_once_then_nothing_new(tmp_path: Path, stereo_results) -> None:
    portal = seeded_portal()
    store = FolderStore(tmp_path / "store")
    results = _stored(portal, stereo_results, store)
    with serve(portal) as running:
        first = _publish(running, store, results)
        assert first.failed == 0 and first.count("posted") == 3, first
        assert first.count_writes("transcript", "written") == 3
        assert first.count_writes("deal_fields", "written") == 2
        assert first.count_writes("notification", "written") == 1
        assert {SCORE, GRADE, COUNT} <= set(portal.deal_user_fields)
        assert portal.deal_user_fields[SCORE]["USER_TYPE_ID"] == "double"
        after_first = _writes(portal)

        second = _publish(running, store, results)
        assert second.failed == 0 and second.count("unchanged") == 3
        assert second.count_writes("transcript", "unchanged") == 3
        assert second.count_writes("deal_fields", "unchanged") == 2
        assert second.count_writes("notification", "unchanged") == 1
        assert _writes(portal) == after_first  # nothing written again, the fields not created again

    for result in results:  # the transcript on each call, once, with both sides
        attached = portal.transcripts[result.call_id]
        assert len(attached) == 1
        messages = list(attached[0]["MESSAGES"])
        messages = list(messages.values()) if isinstance(messages, dict) else messages
        assert {m["SIDE"] for m in messages} == {"User", "Client"}
        assert all(int(m["STOP_TIME"]) >= 1 and int(m["START_TIME"]) >= 0 for m in messages)
    # the first deal holds its later call's score and both calls; the third deal its own
    later = results[1].score
    assert later is not None
    first_deal = portal.deals[DEALS[0]].user_fields or {}
    assert float(first_deal[SCORE]) == round(later.total, 1) and int(first_deal[GRADE]) == later.grade
    assert int(first_deal[COUNT]) == 2
    assert int((portal.deals[DEALS[2]].user_fields or {})[COUNT]) == 1
    assert portal.deals[DEALS[1]].user_fields is None
    # one notification, to the auto-failed call's manager, in Russian, with the deal's link
    assert len(portal.notifications) == 1
    notice = portal.notifications[0]
    assert str(notice["USER_ID"]) == results[0].metadata.manager_id
    failed = results[0].score.criteria[0].title if results[0].score else ""
    assert f"«{failed}»" in notice["MESSAGE"] and "Менеджер 1" in notice["MESSAGE"]
    assert DEAL_URL.format(deal_id=DEALS[0]) in notice["MESSAGE"]
    assert "Bitrix24 transcripts: written 3" in first.kind_lines()


def test_answers_lost_after_the_writes_give_no_duplicates(tmp_path: Path, stereo_results) -> None:
    portal = seeded_portal()
    store = FolderStore(tmp_path / "store")
    results = _stored(portal, stereo_results, store)
    # every write request (the fields, comments, transcripts, deal fields, notifications) applied, then 500
    with serve(portal, SandboxOptions(error_after_writes=5)) as running:
        first = _publish(running, store, results)
        second = _publish(running, store, results)
    assert portal.rejected["server_error"] == 5
    assert first.count_writes("transcript", "ambiguous") == 3
    assert first.count_writes("notification", "ambiguous") == 1
    assert first.count_writes("deal_fields", "written") == 2  # read back: they hold the values
    assert all(len(attached) == 1 for attached in portal.transcripts.values())
    assert sorted(portal.transcripts) == sorted(r.call_id for r in results)
    assert len(portal.notifications) == 1
    assert len(portal.comments) == 3
    assert second.count_writes("transcript", "unchanged") == 3 and second.count_writes("deal_fields", "unchanged") == 2
    ledger = read_ledger(store, transcript_ledger_key(results[0].call_id), TranscriptLedger)
    assert ledger is not None and ledger.status == "ambiguous"
    assert "INTERNAL_SERVER_ERROR" in ledger.reason


def test_without_an_admin_one_warning_and_the_rest_goes_on(tmp_path: Path, stereo_results, caplog) -> None:
    portal = seeded_portal()
    store = FolderStore(tmp_path / "store")
    results = _stored(portal, stereo_results, store)
    with serve(portal, SandboxOptions(webhook_admin=False)) as running, caplog.at_level(logging.WARNING):
        report = _publish(running, store, results)
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "administrator's webhook" in warnings[0] and SCORE in warnings[0]
    assert report.warnings == warnings
    assert report.count("posted") == 3 and report.count_writes("transcript", "written") == 3
    assert report.count_writes("notification", "written") == 1
    assert report.count_writes("deal_fields", "skipped") == 2 and report.failed == 0
    assert portal.deal_user_fields == {} and portal.requests.get("crm.item.update", 0) == 0


def test_a_deal_deleted_meanwhile_fails_only_its_calls_writes(tmp_path: Path, stereo_results) -> None:
    portal = seeded_portal()
    store = FolderStore(tmp_path / "store")
    results = _stored(portal, stereo_results, store)
    portal.delete_deal(DEALS[2])
    with serve(portal) as running:
        report = _publish(running, store, results)
    comments = {outcome.call_id: outcome for outcome in report.outcomes}
    assert comments[results[2].call_id].status == "failed" and "OWNER_NOT_FOUND" in comments[results[2].call_id].reason
    assert report.count("posted") == 2
    fields = {write.key: write for write in report.writes if write.kind == "deal_fields"}
    assert fields[f"deal:{DEALS[2]}"].status == "failed" and "NOT_FOUND" in fields[f"deal:{DEALS[2]}"].reason
    assert fields[f"deal:{DEALS[0]}"].status == "written"
    assert report.count_writes("transcript", "written") == 3  # on the call, which is still there
    assert any(line.startswith(f"deal fields deal:{DEALS[2]}: failed") for line in report.kind_lines())


def test_switched_off_kinds_write_nothing_and_a_dry_run_writes_nothing(tmp_path: Path, stereo_results) -> None:
    portal = seeded_portal()
    store = FolderStore(tmp_path / "store")
    results = _stored(portal, stereo_results, store)
    shown: list[tuple[str, str]] = []
    with serve(portal) as running:
        dry = _publish(running, store, results, dry_run=True, show=lambda key, text: shown.append((key, text)))
        assert dry.count_writes("transcript", "dry-run") == 3 and dry.count_writes("notification", "dry-run") == 1
        assert dry.count_writes("deal_fields", "dry-run") == 2
        assert portal.transcripts == {} and portal.notifications == [] and portal.deal_user_fields == {}
        assert list(store.list("bitrix24/")) == []
        texts = "\n".join(text for _, text in shown)
        assert "transcript, " in texts and f"{COUNT}=2" in texts and "notification to user" in texts
        assert "would create the deal field" in texts and _writes(portal)["crm.deal.userfield.add"] == 0
        listed = portal.requests.get("crm.deal.userfield.list", 0)

        off = _publish(running, store, results, _settings(transcripts=False, deal_fields=False,
                                                          notify_auto_fail=False))
    assert off.count("posted") == 3 and off.writes == []
    assert portal.transcripts == {} and portal.notifications == [] and portal.deal_user_fields == {}
    assert portal.requests.get("crm.deal.userfield.list", 0) == listed  # not even looked for


def test_transcript_messages_follow_the_methods_rules() -> None:
    def turn(start: float, end: float, role: str, text: str) -> Turn:
        return Turn(start=start, end=end, speaker=role, role=role, text=text)  # type: ignore[arg-type]

    class _Result:  # only the turns are read
        turns = [turn(0.2, 0.6, "manager", "Добрый день"), turn(1.4, 3.2, "client", "мой номер 8 915 123 45 67"),
                 turn(3.5, 4.0, "unknown", "шум"), turn(4.1, 5.0, "client", "  ")]

    messages = transcript_messages(_Result(), protect_personal_data=True)  # type: ignore[arg-type]
    assert [(m.SIDE, m.START_TIME, m.STOP_TIME) for m in messages] == [("User", 0, 1), ("Client", 1, 4)]
    assert "915" not in messages[1].MESSAGE and "скрыт" in messages[1].MESSAGE


def test_the_notification_names_the_call_the_manager_and_the_criterion(stereo_results) -> None:
    result = next(iter(stereo_results.values()))
    assert result.score is not None
    criterion = result.score.criteria[0]
    failed = result.model_copy(update={
        "score": result.score.model_copy(update={"auto_failed": [criterion.id]}),
        "metadata": CallMetadata(started_at="2026-11-28T10:05:00+03:00", manager_id="20", manager_name="Анна",
                                 deal_id="4201", crm_target="deal:4201")})
    text = render_notification(failed, deal_url=DEAL_URL)
    assert "28.11.2026 10:05" in text and "Анна" in text and f"«{criterion.title}»" in text
    assert "[URL=https://portal.example.ru/crm/deal/details/4201/]4201[/URL]" in text
    assert "[URL" not in render_notification(failed)
    with pytest.raises(ValueError):
        render_notification(result.model_copy(update={"score": result.score.model_copy(update={"auto_failed": []})}))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


class _Overlapping(FolderStore):
    """A folder store that records how many reads and writes are in flight at once; each request waits (up to
    10 s) until another one is in flight too, so requests sent one after another never overlap, and requests sent
    several at a time always do, however the threads are scheduled."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.lock, self.in_flight, self.most = threading.Lock(), 0, 0
        self.overlapped = threading.Event()

    def _request(self, do):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            if self.in_flight >= 2:
                self.overlapped.set()
        try:
            self.overlapped.wait(timeout=10)
            return do()
        finally:
            with self.lock:
                self.in_flight -= 1

    def read(self, key: str) -> bytes | None:
        return self._request(lambda: super(_Overlapping, self).read(key))

    def write(self, key: str, data: bytes, **options) -> bool:
        return self._request(lambda: super(_Overlapping, self).write(key, data, **options))


def test_the_stores_requests_go_several_at_a_time_and_write_the_same(tmp_path: Path, stereo_results) -> None:
    """A night's publishing reads and writes thousands of small objects: one after another, every S3 retry or
    hang holds up all the rest (issue 11's soak)."""
    portal = seeded_portal()
    store = _Overlapping(tmp_path / "store")
    store.overlapped.set()  # storing the results is not what is measured
    results = _stored(portal, stereo_results, store)
    store.overlapped.clear()
    with serve(portal) as running:
        first = _publish(running, store, results)
        assert store.most >= 2  # the results read at once; then the ledgers
        assert first.failed == 0 and first.count("posted") == 3
        assert first.count_writes("transcript", "written") == 3 and first.count_writes("deal_fields", "written") == 2
        assert [outcome.call_id for outcome in first.outcomes] == [result.call_id for result in results]
        second = _publish(running, store, results)
        assert second.count("unchanged") == 3 and second.count_writes("transcript", "unchanged") == 3
    assert len(portal.comments) == 3
    for result in results:
        assert read_ledger(store, transcript_ledger_key(result.call_id), TranscriptLedger).status == "sent"
