"""The Bitrix24 client's safety: a write is never re-sent after an answer that may mean it was applied, the
operating-time limit is kept from the answers (slow down before it, wait out a block and go on), information calls
are not scored, "yesterday" is the portal's, and a missing scope is named in one line.

Decision logic is unit-tested against an httpx.MockTransport with a fake clock; the behaviour that matters end to
end runs against the sandbox over real HTTP on loopback.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from pipeline.bitrix24.client import MAX_BLOCKED_S, Bitrix24Client, WebhookAuth, may_have_been_applied
from pipeline.bitrix24.errors import AmbiguousWrite, MissingScope, RateLimited, TransportError, scope_of
from pipeline.bitrix24.settings import Bitrix24Settings
from pipeline.bitrix24.source import Bitrix24Source
from pipeline.errors import ConfigError
from pipeline.publish.bitrix24 import CommentPublisher
from pipeline.publish.comment import has_marker
from pipeline.sandbox import CallSpec, Portal, SandboxOptions, serve
from pipeline.sources.base import TimeWindow
from pipeline.stores import FolderStore
from tests.conftest import SAMPLE_CALLS

WEBHOOK = "https://portal.example.ru/rest/1/clienttestsecret7/"
START = 1_800_000_000.0  # a Unix time: the fake clock's start
CALLQA = Path(sys.executable).with_name("callqa")


class FakeTime:
    """One clock for the bucket, the deadlines and the portal's reset times; sleeping moves it on at once."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class Script:
    """A portal that answers from a list, one answer per request, and keeps what it was sent."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.path.rsplit("/", 1)[-1].removesuffix(".json"), json.loads(request.content)))
        return self.answers.pop(0)


def ok(result, *, operating: float | None = None, reset_at: float | None = None, **extra) -> httpx.Response:
    timing: dict = {"start": START, "finish": START + 0.2, "duration": 0.2, "processing": 0.2}
    if operating is not None:
        timing |= {"operating": operating, "operating_reset_at": reset_at}
    return httpx.Response(200, json={"result": result, **extra, "time": timing})


def error(status: int, code: str, description: str = "") -> httpx.Response:
    return httpx.Response(status, json={"error": code, "error_description": description})


def client_for(script: Script, clock: FakeTime, **options) -> Bitrix24Client:
    return Bitrix24Client(WebhookAuth(SecretStr(WEBHOOK)), transport=httpx.MockTransport(script),
                          sleep=clock.sleep, clock=clock, wall_clock=clock, **options)


COMMENT = {"fields": {"ENTITY_ID": "4201", "ENTITY_TYPE": "deal", "COMMENT": "Оценка: 82 из 100"}}


# --- writes: never re-sent after an answer that may mean they were applied -------------------------------------

@pytest.mark.parametrize("answer", [
    error(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
    error(500, "ERROR_UNEXPECTED_ANSWER", "Server returned an unexpected response"),
    error(200, "INTERNAL_SERVER_ERROR"),  # portals before 2025 answered system errors with 200
    error(502, "SOME_NEW_CODE"),  # a 5xx that is no known refusal
    httpx.Response(502, text="<html><body>502 Bad Gateway</body></html>"),
], ids=["internal", "unexpected", "internal-200", "unknown-5xx", "html-502"])
def test_a_write_that_may_have_been_applied_is_never_resent(answer: httpx.Response) -> None:
    clock = FakeTime()
    script = Script(answer, ok(101))
    client = client_for(script, clock)
    with pytest.raises(AmbiguousWrite):
        client.call("crm.timeline.comment.add", COMMENT, write=True)
    assert len(script.sent) == 1 and client.requests == 1


@pytest.mark.parametrize("refusal", [
    error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
    error(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."),
])
def test_a_write_refused_unread_is_repeated(refusal: httpx.Response) -> None:
    clock = FakeTime()
    script = Script(refusal, ok(101))
    assert client_for(script, clock).result("crm.timeline.comment.add", COMMENT, write=True) == 101
    assert len(script.sent) == 2


def test_reads_still_retry_internal_errors_and_html_pages() -> None:
    clock = FakeTime()
    script = Script(error(500, "INTERNAL_SERVER_ERROR"), httpx.Response(502, text="<html>nginx</html>"),
                    error(500, "ERROR_UNEXPECTED_ANSWER"), ok([{"ID": "12"}]))
    assert client_for(script, clock).result("user.get", {"FILTER": {"ID": ["12"]}}) == [{"ID": "12"}]
    assert len(script.sent) == 4 and len(clock.slept) == 3


def test_a_read_that_keeps_failing_gives_up_after_its_retries() -> None:
    clock = FakeTime()
    script = Script(*[error(500, "INTERNAL_SERVER_ERROR")] * 4)
    with pytest.raises(TransportError):
        client_for(script, clock, max_retries=3).result("user.get")
    assert len(script.sent) == 4


def test_which_answers_leave_a_write_open() -> None:
    assert may_have_been_applied("INTERNAL_SERVER_ERROR", 500) and may_have_been_applied("ERROR_UNEXPECTED_ANSWER", 200)
    assert may_have_been_applied("", 504)
    for refusal, status in (("QUERY_LIMIT_EXCEEDED", 503), ("OPERATION_TIME_LIMIT", 429), ("expired_token", 401),
                            ("OVERLOAD_LIMIT", 503), ("PORTAL_DELETED", 500), ("insufficient_scope", 403),
                            ("ACCESS_DENIED", 403), ("ERROR_CORE", 400)):
        assert not may_have_been_applied(refusal, status), refusal


# --- the operating-time limit ----------------------------------------------------------------------------------

def test_a_method_near_its_operating_limit_waits_for_the_reset_before_the_portal_blocks_it(caplog) -> None:
    clock = FakeTime()
    script = Script(ok([], operating=390.0, reset_at=START + 90), ok([], operating=200.0, reset_at=START + 150),
                    ok([]), ok([]))
    client = client_for(script, clock)
    with caplog.at_level(logging.WARNING, logger="pipeline.bitrix24.client"):
        client.result("crm.activity.list")  # 390 s of 480: past 80 %
        client.result("user.get")  # another method: its own budget, no wait
        assert clock.slept == []
        client.result("crm.activity.list")
    assert clock.slept == [pytest.approx(91.0)]  # the reset, and a second's margin
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "crm.activity.list is near its operating-time limit" in warnings[0]
    client.result("crm.activity.list")  # 200 s now: no more waiting
    assert len(clock.slept) == 1


def test_the_slowdown_share_and_limit_are_configurable() -> None:
    clock = FakeTime()
    script = Script(ok([], operating=390.0, reset_at=START + 90), ok([]))
    client = client_for(script, clock, operating_limit_s=480.0, operating_slowdown=0.9)  # from 432 s
    client.result("crm.activity.list")
    client.result("crm.activity.list")
    assert clock.slept == []
    settings = Bitrix24Settings(webhook=SecretStr(WEBHOOK), operating_limit_s=420.0, operating_slowdown=0.5)
    from pipeline.bitrix24.settings import make_client

    made = make_client(settings)
    assert made.operating.limit_s == 420.0 and made.operating.threshold_s == 210.0
    made.close()


def test_after_a_block_the_call_waits_until_the_known_reset_and_goes_on() -> None:
    clock = FakeTime()
    blocked = error(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")  # no `time`
    script = Script(ok([], operating=300.0, reset_at=START + 45), blocked, ok([{"ID": "1"}]))
    client = client_for(script, clock)
    client.result("crm.activity.list")
    assert client.result("crm.activity.list") == [{"ID": "1"}]
    assert clock.slept == [pytest.approx(46.0)]


def test_a_block_with_no_known_reset_waits_a_minute_at_a_time_then_gives_up() -> None:
    clock = FakeTime()
    blocked = error(429, "OPERATION_TIME_LIMIT")
    script = Script(*[blocked] * 5, ok([{"ID": "1"}]))
    assert client_for(script, clock).result("crm.activity.list") == [{"ID": "1"}]
    assert clock.slept == [60.0] * 5  # past the old 8 retries' worth of patience is fine: it went on

    forever = Script(*[blocked] * 100)
    with pytest.raises(RateLimited):
        client_for(forever, FakeTime()).result("crm.activity.list")
    assert len(forever.sent) == int(MAX_BLOCKED_S // 60) + 1  # a block lifts within ten minutes: then stop


def test_a_batch_counts_each_sub_call_against_its_own_method() -> None:
    clock = FakeTime()
    timing = {"start": START, "finish": START + 1, "duration": 1.0, "processing": 1.0,
              "operating": 400.0, "operating_reset_at": START + 30}
    first = ok({"result": {"c0": 1}, "result_error": [], "result_total": [], "result_next": [],
                "result_time": {"c0": timing}})
    script = Script(first, ok({"result": {"c0": 2}, "result_error": [], "result_time": []}))
    client = client_for(script, clock)
    client.batch({"c0": ("crm.timeline.comment.add", COMMENT)}, write=True)
    assert clock.slept == []
    client.batch({"c0": ("crm.timeline.comment.add", COMMENT)}, write=True)
    assert clock.slept == [pytest.approx(31.0)]


def test_a_batch_sends_again_only_the_sub_calls_the_limit_refused() -> None:
    clock = FakeTime()
    refused = {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."}
    script = Script(ok({"result": {"c0": 101}, "result_error": {"c1": refused}, "result_time": []}),
                    ok({"result": {"c1": 102}, "result_error": [], "result_time": []}))
    client = client_for(script, clock)
    outcome = client.batch({"c0": ("crm.timeline.comment.add", COMMENT), "c1": ("crm.timeline.comment.add", COMMENT)},
                           write=True)
    assert outcome.results == {"c0": 101, "c1": 102} and outcome.errors == {}
    assert list(script.sent[1][1]["cmd"]) == ["c1"]  # c0 was applied: never sent again
    assert clock.slept == [60.0]


# --- scopes ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "scope"), [
    ("voximplant.statistic.get", "telephony"), ("telephony.externalCall.register", "telephony"),
    ("voximplant.infocall.startwithtext", "call"), ("crm.timeline.comment.add", "crm"),
    ("crm.activity.binding.list", "crm"), ("disk.file.get", "disk"), ("user.get", "user"), ("im.notify", "im"),
    ("batch", None),
])
def test_each_method_prefix_has_its_scope(method: str, scope: str | None) -> None:
    assert scope_of(method) == scope


def test_a_missing_scope_is_named_in_one_line() -> None:
    clock = FakeTime()
    script = Script(error(403, "insufficient_scope",
                          "The request requires higher privileges than provided by the webhook token"))
    with pytest.raises(MissingScope) as raised:
        client_for(script, clock).result("voximplant.statistic.get")
    message = str(raised.value)
    assert message.startswith("Bitrix24 voximplant.statistic.get: the webhook lacks the `telephony` scope; add it "
                              "to the webhook in Bitrix24 (Developer resources)")
    assert "\n" not in message and "clienttestsecret7" not in message
    assert raised.value.exit_code == 3 and len(script.sent) == 1


def test_a_missing_crm_scope_in_a_batch_stops_the_listing() -> None:
    clock = FakeTime()
    call = {"ID": "1", "CALL_ID": "c1", "CALL_TYPE": "1", "CALL_START_DATE": "2026-11-28T10:00:00+03:00",
            "RECORD_FILE_ID": 5, "CRM_ACTIVITY_ID": "77", "PORTAL_USER_ID": "12"}
    denied = {"error": "insufficient_scope", "error_description": ""}
    script = Script(ok([call]), ok({"result": [], "result_error": {"a77": denied}, "result_time": []}))
    source = Bitrix24Source(Bitrix24Settings(), client=client_for(script, clock))
    with pytest.raises(MissingScope, match="lacks the `crm` scope"):
        source.list_calls(None)


# --- the source: information calls, the portal's day -----------------------------------------------------------

def test_yesterday_is_the_portals_day_not_the_hosts() -> None:
    half_past_midnight_in_moscow = datetime(2026, 11, 28, 21, 30, tzinfo=UTC)
    source = Bitrix24Source(Bitrix24Settings(), client=client_for(Script(), FakeTime()),
                            now=lambda: half_past_midnight_in_moscow)
    window = source.window(None)
    moscow = ZoneInfo("Europe/Moscow")
    assert window.since == datetime(2026, 11, 28, tzinfo=moscow) and window.until == datetime(2026, 11, 29,
                                                                                              tzinfo=moscow)
    assert window.since.isoformat() == "2026-11-28T00:00:00+03:00"


def test_yesterday_across_a_clock_change_has_its_true_length() -> None:
    settings = Bitrix24Settings(timezone="Europe/Berlin")
    source = Bitrix24Source(settings, client=client_for(Script(), FakeTime()),
                            now=lambda: datetime(2026, 3, 30, 8, 0, tzinfo=UTC))
    window = source.window(None)
    assert window.since.isoformat() == "2026-03-29T00:00:00+01:00"
    assert window.until.isoformat() == "2026-03-30T00:00:00+02:00"
    # (the same tzinfo on both sides makes Python subtract wall times: compare in UTC)
    assert window.until.astimezone(UTC) - window.since.astimezone(UTC) == timedelta(hours=23)


def test_an_unknown_time_zone_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="bitrix24.timezone: unknown time zone 'Europe/Moskva'"):
        Bitrix24Settings(timezone="Europe/Moskva")


def test_information_calls_are_not_listed() -> None:
    clock = FakeTime()
    rows = [{"ID": str(i), "CALL_ID": f"c{i}", "CALL_TYPE": kind, "CALL_START_DATE": "2026-11-28T10:00:00+03:00",
             "RECORD_FILE_ID": 10 + i, "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": "9"}
            for i, kind in enumerate(["1", "2", "3", "4", "5", 5], start=1)]
    source = Bitrix24Source(Bitrix24Settings(), client=client_for(Script(ok(rows)), clock))
    records = source.list_calls(None)
    assert [r.call_id for r in records] == ["c1", "c2", "c3", "c4"]
    assert [r.direction for r in records] == ["out", "in", "in", "out"] and source.late == []


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch) -> None:
    # The sandbox is on loopback: a proxy set in the environment must not get in the way.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)



# --- against the sandbox (real HTTP on loopback) ---------------------------------------------------------------

MSK = ZoneInfo("Europe/Moscow")
DAY = datetime(2026, 11, 28, tzinfo=MSK)
DEALS = ["4301", "4302", "4303"]


def _portal(**spec) -> Portal:
    portal = Portal()
    for index, call in enumerate(SAMPLE_CALLS[:3]):
        portal.add_call(CallSpec(audio=call.stereo, manager_id=str(30 + index), manager_name=f"Менеджер {index}",
                                 started_at=DAY + timedelta(hours=10 + index), incoming=index % 2 == 0,
                                 deal_ids=[DEALS[index]], duration_s=round(call.duration_s), **spec))
    return portal


def _sandbox_client(running, **options) -> Bitrix24Client:
    """A client whose waits move the portal's clock on instead of sleeping."""
    return Bitrix24Client(WebhookAuth(SecretStr(running.webhook_url)), sleep=running.sandbox.advance,
                          wall_clock=running.sandbox.now, **options)


@pytest.mark.parametrize("fault", ["error_after_writes", "unexpected_answer_writes"])
def test_a_batch_of_comments_answered_with_a_server_error_after_it_was_applied_is_not_posted_twice(
        tmp_path: Path, stereo_results, fault: str, caplog) -> None:
    portal = _portal()
    results = [stereo_results[call.call_id].model_copy(update={"metadata": stereo_results[call.call_id].metadata
                                                                .model_copy(update={"crm_target": f"deal:{deal}"})})
               for call, deal in zip(SAMPLE_CALLS[:3], DEALS)]
    with serve(portal, SandboxOptions(**{fault: 1})) as running:
        client = _sandbox_client(running)
        with caplog.at_level(logging.WARNING):
            outcomes = CommentPublisher(client, FolderStore(tmp_path / "store")).publish(results)
    assert [outcome.status for outcome in outcomes] == ["posted"] * 3, outcomes
    by_deal: dict[str, list[dict]] = {}
    for comment in portal.comments.values():
        by_deal.setdefault(str(comment["ENTITY_ID"]), []).append(comment)
    assert sorted(by_deal) == DEALS and all(len(found) == 1 for found in by_deal.values())  # 0 duplicates
    for result, deal in zip(results, DEALS):
        assert has_marker(by_deal[deal][0]["COMMENT"], result.call_id)
    # The batch was applied once and never re-sent: the marker look-up found every comment.
    assert portal.requests["crm.timeline.comment.add"] == 3
    assert any("checking what reached the portal" in record.getMessage() for record in caplog.records)


def test_the_client_slows_down_before_the_portal_blocks_a_method(tmp_path: Path, caplog) -> None:
    portal = _portal()
    options = SandboxOptions(operating_cost_s={"user.get": 100.0}, operating_limit_s=480.0)
    with serve(portal, options) as running:
        client = _sandbox_client(running)
        waits: list[float] = []
        advance = running.sandbox.advance
        client.sleep = lambda seconds: (waits.append(seconds), advance(seconds))[1]
        with caplog.at_level(logging.WARNING, logger="pipeline.bitrix24.client"):
            for _ in range(10):
                assert client.result("user.get", {"FILTER": {"ID": ["30"]}})[0]["ID"] == "30"
    assert portal.rejected["operation_time_limit"] == 0  # never refused: the client waited first
    assert waits and all(wait <= 601 for wait in waits)
    assert any("user.get is near its operating-time limit" in record.getMessage() for record in caplog.records)


def test_after_a_block_the_client_waits_for_the_reset_it_knows_and_goes_on(tmp_path: Path) -> None:
    portal = _portal()
    options = SandboxOptions(operating_cost_s={"user.get": 100.0}, operating_limit_s=480.0)
    with serve(portal, options) as running:
        late = _sandbox_client(running)  # another process on the same webhook: it knows one answer's reset
        waits: list[float] = []
        late.sleep = lambda seconds: (waits.append(seconds), running.sandbox.advance(seconds))[1]
        late.result("user.get", {"FILTER": {"ID": ["30"]}})
        busy = _sandbox_client(running, operating_slowdown=1.0)
        for _ in range(4):  # 500 s of 480: the portal blocks the next call of user.get
            busy.result("user.get", {"FILTER": {"ID": ["30"]}})
        assert late.result("user.get", {"FILTER": {"ID": ["30"]}})[0]["ID"] == "30"
    assert portal.rejected["operation_time_limit"] == 1
    assert len(waits) == 1 and 590 <= waits[0] <= 601  # until the oldest minute drops out, then on


@pytest.mark.parametrize(("scopes", "missing"), [({"crm", "disk", "user"}, "telephony"),
                                                 ({"telephony", "disk", "user"}, "crm")])
def test_a_webhook_without_a_needed_scope_fails_with_one_line_naming_it(scopes: set[str], missing: str) -> None:
    portal = _portal()
    with serve(portal, SandboxOptions(scopes=frozenset(scopes))) as running:
        source = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(running.webhook_url)))
        with pytest.raises(MissingScope) as raised:
            source.list_calls(TimeWindow(since=DAY, until=DAY + timedelta(days=1)))
    message = str(raised.value)
    assert f"the webhook lacks the `{missing}` scope; add it to the webhook in Bitrix24" in message
    assert "\n" not in message and "sandboxsecret0001" not in message


def test_the_cli_prints_a_missing_scope_as_one_line(tmp_path: Path) -> None:
    portal = _portal()
    with serve(portal, SandboxOptions(scopes=frozenset({"crm", "disk", "user"}))) as running:
        done = subprocess.run([str(CALLQA), "run", "--source", "bitrix24", "--date", "2026-11-28", "--store",
                               str(tmp_path / "store")], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "CALLQA_DEVICE": "cpu",
                                   "CALLQA_BITRIX24_WEBHOOK": running.webhook_url})
    assert done.returncode == 3, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("callqa: error:")]
    assert errors == ["callqa: error: Bitrix24 voximplant.statistic.get: the webhook lacks the `telephony` scope; "
                      "add it to the webhook in Bitrix24 (Developer resources) or to the app's scopes"], done.stderr
    assert "Traceback" not in done.stderr and "sandboxsecret0001" not in done.stdout + done.stderr


def test_information_calls_on_the_portal_are_not_scored(tmp_path: Path) -> None:
    portal = _portal()
    portal.add_call(CallSpec(audio=SAMPLE_CALLS[0].stereo, manager_id="30", manager_name="Менеджер 0",
                             started_at=DAY + timedelta(hours=15), incoming=False, deal_ids=["4309"],
                             duration_s=40, call_type="5"))
    with serve(portal) as running:
        source = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(running.webhook_url)))
        records = source.list_calls(TimeWindow(since=DAY, until=DAY + timedelta(days=1)))
    assert len(portal.calls) == 4 and len(records) == 3
    assert "4309" not in {record.deal_id for record in records}
