"""The sandbox behaves like a portal as two third-party clients see it (the official b24pysdk, which speaks only
https, and fast_bitrix24), and as the docs describe it (../shared/reference/bitrix24-rest.md, sections 0, 5-7, 10):
paging, `batch` references, statuses, CRM records with stage histories, faults, the seeded phone funnel."""

from __future__ import annotations

import ssl
import tracemalloc
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pipeline.sandbox import MSK, CallSpec, Portal, SandboxOptions, serve
from tests.conftest import SAMPLE_CALLS

DAY = date(2026, 11, 28)
SECRET = "sandboxsecret0001"


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The sandbox is on loopback: a proxy set in the environment must not get in the way.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    yield


def _deals(count: int = 121) -> Portal:
    portal = Portal()
    portal.seed_deals(count, day=DAY)
    return portal


def _sdk(running, monkeypatch: pytest.MonkeyPatch):
    from b24pysdk import BitrixWebhook

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_path))  # requests trusts the sandbox's certificate
    return BitrixWebhook(domain=running.base_url.removeprefix("https://"), webhook_token=f"1/{SECRET}")


def _trust_for_aiohttp(running, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp builds its verifying context once, at import; each sandbox makes its own certificate."""
    import ssl

    import aiohttp.connector

    monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED",
                        ssl.create_default_context(cafile=str(running.ca_path)))


def _fast(running, monkeypatch: pytest.MonkeyPatch, **options):
    from fast_bitrix24 import Bitrix

    _trust_for_aiohttp(running, monkeypatch)
    return Bitrix(running.webhook_url, verbose=False, **options)


def _post(running, method: str, params: dict | None = None) -> httpx.Response:
    trust = ssl.create_default_context(cafile=str(running.ca_path)) if running.ca_path else True
    return httpx.post(running.webhook_url + method, json=params or {}, verify=trust, trust_env=False, timeout=10)


# --- b24pysdk -----------------------------------------------------------------------------------------------

def test_b24pysdk_lists_every_deal_once_over_pages_and_chained_batches(monkeypatch) -> None:
    portal = _deals(121)
    with serve(portal, tls=True) as running:
        token = _sdk(running, monkeypatch)
        fast = [row["id"] for row in token.call_list_fast("crm.item.list", {"entityTypeId": 2})["result"]]
        classic = [row["ID"] for row in token.call_list("crm.deal.list", {"select": ["ID"]})["result"]]
        mixed = token.call_method("crm.deal.Get", {"id": fast[0]})  # the portal lower-cases method names
    assert sorted(fast) == sorted(int(i) for i in portal.deals) and len(fast) == 121
    assert sorted(classic, key=int) == sorted(portal.deals, key=int)
    assert mixed["result"]["ID"] == str(fast[0])
    assert portal.requests["crm.item.list"] == 1 + 50  # one discovery call, then one batch of chained commands


def test_b24pysdk_retries_503s_and_reads_stage_history(monkeypatch) -> None:
    portal = _deals(12)
    options = SandboxOptions(fail_every=3)
    with serve(portal, options, tls=True) as running:
        token = _sdk(running, monkeypatch)
        monkeypatch.setattr("time.sleep", lambda seconds: None)
        for deal_id in sorted(portal.deals):  # each one answered, whatever the 503s before it
            assert token.call_method("crm.deal.get", {"id": deal_id})["result"]["ID"] == deal_id
        history = list(token.call_list("crm.stagehistory.list", {"entityTypeId": 2, "order": {"ID": "ASC"}})
                       ["result"])
        items = token.call_method("crm.item.list", {"entityTypeId": 2, "select": ["id", "stageId"]})
    assert portal.rejected["injected_503"] >= 1
    by_deal: dict[int, list[dict]] = {}
    for row in history:
        by_deal.setdefault(row["OWNER_ID"], []).append(row)
    for item in items["result"]["items"]:
        rows = by_deal[item["id"]]
        assert rows[0]["TYPE_ID"] == 1 and rows[0]["STAGE_ID"].endswith("NEW")  # created at NEW
        assert rows[-1]["STAGE_ID"] == item["stageId"]  # the last move is where the deal stands
        assert [r["CREATED_TIME"] for r in rows] == sorted(r["CREATED_TIME"] for r in rows)


def test_b24pysdk_refreshes_an_expired_oauth_token_and_goes_on(monkeypatch) -> None:
    """The official SDK's own refresh: `expired_token` -> GET /oauth/token/ with the refresh token -> the call again.
    The SDK hard-codes Bitrix24's OAuth host, so the test points that one constant at the sandbox."""
    from b24pysdk import BitrixApp, BitrixToken
    from b24pysdk.api.requesters.bitrix_oauth_requester import BitrixOAuthRequester

    portal = _deals(5)
    options = SandboxOptions(token_ttl_requests=2)  # each access token serves two requests
    with serve(portal, options, tls=True) as running:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_path))
        monkeypatch.setattr(BitrixOAuthRequester, "_OAUTH_TOKEN_URL", f"{running.base_url}/oauth/token/")
        access, refresh = running.sandbox.issue_tokens()
        token = BitrixToken(domain=running.base_url.removeprefix("https://"), auth_token=access,
                            refresh_token=refresh, bitrix_app=BitrixApp(client_id=options.client_id,
                                                                        client_secret=options.client_secret))
        answered = [token.call_method("crm.deal.get", {"id": deal_id})["result"]["ID"]
                    for deal_id in sorted(portal.deals)]
        issued = len(running.sandbox.tokens)
    assert answered == sorted(portal.deals)
    assert token.auth_token != access and issued >= 3  # the first pair, then at least two refreshes for 5 calls


# --- fast_bitrix24 ------------------------------------------------------------------------------------------

def test_fast_bitrix24_pages_batches_and_retries(monkeypatch) -> None:
    portal = _deals(121)
    with serve(portal, SandboxOptions(fail_every=2), tls=True) as running:
        bitrix = _fast(running, monkeypatch)
        deals = bitrix.get_all("crm.deal.list", {"select": ["ID", "STAGE_ID"]})
        items = bitrix.get_all("crm.item.list", {"entityTypeId": 2})
        chained = bitrix.call_batch({"halt": 0, "cmd": {
            "first": "crm.deal.list?filter[>ID]=100100&order[ID]=ASC&start=-1",
            "next": "crm.deal.get?id=$result[first][0][ID]"}})
    assert sorted(d["ID"] for d in deals) == sorted(portal.deals) and len(items) == 121
    assert chained["next"]["ID"] == "100101" and chained["first"][0]["ID"] == "100101"
    assert portal.rejected["injected_503"] >= 1


def test_fast_bitrix24_rides_out_503s_from_the_leaky_bucket(monkeypatch) -> None:
    """The portal's own limiter, not an injected fault: fast_bitrix24 sends its three batches at once into a
    bucket that holds one request and drains two a second, gets 503 QUERY_LIMIT_EXCEEDED, backs off, and still
    reads every deal exactly once."""
    portal = _deals(150)
    with serve(portal, SandboxOptions(bucket_capacity=1, drain_per_s=2), tls=True) as running:
        bitrix = _fast(running, monkeypatch)
        rows = bitrix.get_by_ID("crm.deal.get", sorted(portal.deals))
    assert portal.rejected["limit"] >= 1 and portal.rejected["injected_503"] == 0
    assert sorted(rows) == sorted(portal.deals)  # {deal id: the deal}, one per id
    assert all(rows[deal_id]["ID"] == deal_id for deal_id in rows)


def test_fast_bitrix24_timeline_comments(monkeypatch) -> None:
    portal = _deals(3)
    with serve(portal, tls=True) as running:
        bitrix = _fast(running, monkeypatch)
        comment_id = bitrix.call("crm.timeline.comment.add", {"fields": {
            "ENTITY_ID": 100001, "ENTITY_TYPE": "deal", "COMMENT": "Оценка: 80"}})
        bitrix.call("crm.timeline.comment.update", {"id": comment_id, "fields": {"COMMENT": "Оценка: 90"}})
        listed = bitrix.get_all("crm.timeline.comment.list", {"filter": {"ENTITY_ID": 100001,
                                                                         "ENTITY_TYPE": "deal"}})
    assert [c["COMMENT"] for c in listed] == ["Оценка: 90"] and str(comment_id) in portal.comments


def test_fast_bitrix24_refreshes_oauth_tokens_at_the_token_endpoint(monkeypatch) -> None:
    portal = _deals(3)
    options = SandboxOptions(token_ttl_requests=1)  # each access token serves one request
    refreshes: list[str] = []
    with serve(portal, options, tls=True) as running:
        _, refresh = running.sandbox.issue_tokens()
        state = {"refresh": refresh}

        async def token_func() -> str:
            answer = httpx.get(f"{running.base_url}/oauth/token/", params={
                "grant_type": "refresh_token", "client_id": options.client_id,
                "client_secret": options.client_secret, "refresh_token": state["refresh"]},
                verify=ssl.create_default_context(cafile=str(running.ca_path)), trust_env=False).json()
            state["refresh"] = answer["refresh_token"]
            refreshes.append(answer["access_token"])
            return answer["access_token"]

        _trust_for_aiohttp(running, monkeypatch)
        from fast_bitrix24 import Bitrix

        bitrix = Bitrix(f"{running.base_url}/rest/", token_func=token_func, verbose=False)
        for deal_id in ("100000", "100001", "100002"):
            assert bitrix.call("crm.deal.get", {"id": deal_id}, raw=True)["result"]["ID"] == deal_id
    assert len(refreshes) >= 3 and len(set(refreshes)) == len(refreshes)


# --- the wire format, straight ------------------------------------------------------------------------------

def test_batch_runs_fifty_commands_and_refuses_each_one_beyond() -> None:
    portal = _deals(3)
    with serve(portal) as running:
        commands = {f"c{i}": "crm.deal.get?id=100001" for i in range(52)}
        body = _post(running, "batch", {"cmd": commands}).json()["result"]
    assert len(body["result"]) == 50
    assert body["result_error"] == {key: {"error": "ERROR_BATCH_LENGTH_EXCEEDED",
                                          "error_description": "Max batch length exceeded"} for key in ("c50", "c51")}


def test_operating_time_blocks_a_method_until_its_reset() -> None:
    portal = _deals(3)
    options = SandboxOptions(operating_cost_s={"crm.deal.get": 200.0})
    with serve(portal, options) as running:
        answers = [_post(running, "crm.deal.get", {"id": 100001}) for _ in range(4)]
        other = _post(running, "crm.deal.list")
        running.sandbox.advance(answers[2].json()["time"]["operating_reset_at"] - running.sandbox.now())
        after = _post(running, "crm.deal.get", {"id": 100001})
    assert [a.json()["time"]["operating"] for a in answers[:3]] == [200.0, 400.0, 600.0]
    assert answers[3].status_code == 429 and answers[3].json() == {
        "error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."}
    assert other.status_code == 200 and after.status_code == 200 and after.json()["time"]["operating"] == 200.0


@pytest.mark.parametrize(("option", "code"), [("error_after_writes", "INTERNAL_SERVER_ERROR"),
                                              ("unexpected_answer_writes", "ERROR_UNEXPECTED_ANSWER")])
def test_a_write_is_applied_then_answered_500(option: str, code: str) -> None:
    portal = _deals(2)
    with serve(portal, SandboxOptions(**{option: 1})) as running:
        fields = {"ENTITY_ID": 100001, "ENTITY_TYPE": "deal", "COMMENT": "x"}
        first = _post(running, "crm.timeline.comment.add", {"fields": fields})
        read = _post(running, "crm.deal.get", {"id": 100001})
        second = _post(running, "crm.timeline.comment.add", {"fields": fields})
    assert first.status_code == 500 and first.json()["error"] == code
    assert read.status_code == 200 and second.status_code == 200 and len(portal.comments) == 2


def test_documented_statuses_scopes_and_admin_rights() -> None:
    portal = _deals(2)
    options = SandboxOptions(scopes=frozenset({"crm"}), webhook_admin=False, locked_deals={"100001"})
    with serve(portal, options) as running:
        scope = _post(running, "voximplant.statistic.get")
        denied = _post(running, "crm.timeline.comment.add", {"fields": {
            "ENTITY_ID": 100001, "ENTITY_TYPE": "deal", "COMMENT": "x"}})
        userfield = _post(running, "crm.deal.userfield.add", {"fields": {"FIELD_NAME": "X", "USER_TYPE_ID": "string"}})
        unknown = _post(running, "crm.nothing.here")
        profile = _post(running, "profile").json()["result"]
    assert (scope.status_code, scope.json()["error"]) == (403, "insufficient_scope")
    assert (denied.status_code, denied.json()["error"]) == (400, "ACCESS_DENIED")
    assert userfield.status_code == 400 and portal.deal_user_fields == {}
    assert (unknown.status_code, unknown.json()["error"]) == (404, "ERROR_METHOD_NOT_FOUND")
    assert profile["ID"] == "1" and profile["ADMIN"] is False


def test_crm_items_user_fields_and_a_deleted_deal() -> None:
    portal = _deals(3)
    with serve(portal) as running:
        added = _post(running, "crm.deal.userfield.add", {"fields": {"FIELD_NAME": "CALLQA_SCORE",
                                                                     "USER_TYPE_ID": "double"}}).json()
        listed = _post(running, "crm.deal.userfield.list").json()["result"]
        _post(running, "crm.item.update", {"entityTypeId": 2, "id": 100001, "fields": {"ufCrmCallqaScore": 82.5}})
        classic = _post(running, "crm.deal.get", {"id": 100001}).json()["result"]
        filtered = _post(running, "crm.item.list", {"entityTypeId": 2, "filter": {"@id": [100000, 100002],
                                                    ">=opportunity": 0}, "order": {"id": "DESC"}}).json()
        portal.delete_deal(100002)
        gone = _post(running, "crm.item.get", {"entityTypeId": 2, "id": 100002})
        gone_classic = _post(running, "crm.deal.update", {"id": 100002, "fields": {"TITLE": "x"}})
        bad_filter = _post(running, "crm.item.list", {"entityTypeId": 2, "filter": {"NOPE": 1}})
    assert isinstance(added["result"], int) and listed[0]["FIELD_NAME"] == "UF_CRM_CALLQA_SCORE"
    assert classic["UF_CRM_CALLQA_SCORE"] == 82.5
    assert [item["id"] for item in filtered["result"]["items"]] == [100002, 100000] and filtered["total"] == 2
    assert (gone.status_code, gone.json()["error"]) == (400, "NOT_FOUND")
    assert gone_classic.status_code == 400 and gone_classic.json() == {"error": "", "error_description": "Not found"}
    assert bad_filter.json()["error"] == "INVALID_ARG_VALUE"


def test_transcripts_notifications_and_the_webhook_user() -> None:
    portal = Portal()
    call = SAMPLE_CALLS[0]
    started = datetime.combine(DAY, datetime.min.time(), tzinfo=MSK) + timedelta(hours=10)
    row = portal.add_call(CallSpec(audio=call.stereo, manager_id="12", manager_name="Алексей Смирнов",
                                   started_at=started, incoming=False, deal_ids=["4101"], duration_s=60,
                                   call_type="5"))
    message = {"SIDE": "User", "START_TIME": 0, "STOP_TIME": 2.5, "MESSAGE": "Здравствуйте"}
    with serve(portal) as running:
        attached = [_post(running, "telephony.call.attachTranscription",
                          {"CALL_ID": row["CALL_ID"], "MESSAGES": [message]}).json() for _ in range(2)]
        missing = _post(running, "telephony.call.attachTranscription", {"CALL_ID": "nope", "MESSAGES": [message]})
        bad_side = _post(running, "telephony.call.attachTranscription",
                         {"CALL_ID": row["CALL_ID"], "MESSAGES": [{**message, "SIDE": "Bot"}]})
        notified = _post(running, "im.notify.system.add", {"USER_ID": 12, "MESSAGE": "Отчёт готов"}).json()
        no_user = _post(running, "im.notify.system.add", {"MESSAGE": "x"})
        current = _post(running, "user.current").json()["result"]
        users = _post(running, "user.get").json()["result"]
    assert row["CALL_TYPE"] == "5"
    assert len(portal.transcripts[row["CALL_ID"]]) == 2 and "TRANSCRIPT_ID" in attached[1]["result"]
    assert missing.status_code == 400
    assert missing.json()["error_description"] == "Call nope is not found. Is it finished?"
    assert bad_side.json()["error_description"] == "MESSAGES[0][SIDE] should be either Client or User"
    assert isinstance(notified["result"], int) and portal.notifications[0]["USER_ID"] == 12
    assert no_user.json()["error"] == "USER_ID_EMPTY"
    assert current["ID"] == "1" and {"1", "12"} <= {user["ID"] for user in users}


# --- the seeded phone funnel --------------------------------------------------------------------------------

def test_the_folder_portal_seeds_a_phone_funnel() -> None:
    folder = Path("tests/data/calls")
    portal = Portal.from_folder(folder, day=DAY)
    with serve(portal) as running:
        stages = _post(running, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}}).json()["result"]
        categories = _post(running, "crm.category.list", {"entityTypeId": 2}).json()["result"]["categories"]
        leads = _post(running, "crm.stagehistory.list", {"entityTypeId": 1}).json()["result"]["items"]
    assert sum(c["CALL_FAILED_CODE"] == "200" for c in portal.calls) == 9 and len(portal.calls) == 10
    assert [s["STATUS_ID"] for s in stages] == ["NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING",
                                                "FINAL_INVOICE", "WON", "LOSE", "APOLOGY"]
    assert [(c["id"], c["name"]) for c in categories] == [(0, "Общая"), (1, "Повторные продажи")]
    called = {str(b["entityId"]) for bindings in portal.bindings.values() for b in bindings if b["entityTypeId"] == 2}
    outcomes = [portal.deals[d].semantic for d in called]
    assert outcomes.count("S") >= 3 and outcomes.count("F") >= 1 and "P" in outcomes
    end_of_day = datetime.combine(DAY, datetime.min.time(), tzinfo=MSK) + timedelta(days=1)
    for deal_id in called:
        deal = portal.deals[deal_id]
        assert deal.opportunity > 0 and deal.currency_id == "RUB" and deal.contact_id is not None
        if deal.semantic == "S":
            assert deal.moved < end_of_day
    assert any(portal.deals[d].category_id == 1 and portal.deals[d].is_return_customer for d in called)
    assert len(portal.deals) > len(called) and leads and leads[0]["STATUS_ID"] == "NEW"


def test_ten_thousand_deals_stay_small() -> None:
    tracemalloc.start()
    portal = Portal()
    portal.seed_deals(10_000, day=DAY)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(portal.deals) == 10_000 and size / 10_000 < 2_500  # bytes per deal, its history included
