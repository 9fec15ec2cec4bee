"""The Bitrix24 client, source and comment publisher against the sandbox (real HTTP on loopback), and the pure
parts (request encoding, PII redaction, the comment) against the reference document's examples."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.bitrix24.client import Bitrix24Client, OAuthAuth, WebhookAuth
from pipeline.bitrix24.encoding import parse_php_query, php_query
from pipeline.bitrix24.errors import AccessDenied, AuthError, NotFound
from pipeline.bitrix24.settings import Bitrix24Settings
from pipeline.bitrix24.source import Bitrix24Source, looks_like_audio
from pipeline.errors import CallError, ConfigError
from pipeline.publish.comment import has_marker, render_comment
from pipeline.publish.pii import redact
from pipeline.sandbox import CallSpec, Portal, SandboxOptions, serve
from pipeline.sources.base import TimeWindow
from tests.conftest import SAMPLE_CALLS

MSK = timezone(timedelta(hours=3))
DAY = datetime(2026, 11, 28, tzinfo=MSK)
WINDOW = TimeWindow(since=DAY, until=DAY + timedelta(days=1))


# --- request encoding: the reference's examples -------------------------------------------------------------

def test_php_query_as_in_the_reference() -> None:
    assert php_query({"filter": {">=CALL_START_DATE": "2025-01-01T00:00:00+03:00"}}) == \
        "filter[%3E%3DCALL_START_DATE]=2025-01-01T00%3A00%3A00%2B03%3A00"
    assert php_query({"FILTER": {"ID": [1, 7]}, "SORT": "ID", "ORDER": "ASC"}) == \
        "FILTER[ID][0]=1&FILTER[ID][1]=7&SORT=ID&ORDER=ASC"
    assert php_query({"halt": True, "skip": None, "name": "Мария"}) == "halt=1&name=%D0%9C%D0%B0%D1%80%D0%B8%D1%8F"


@pytest.mark.parametrize("params", [
    {"fields": {"ENTITY_ID": "10", "ENTITY_TYPE": "deal", "COMMENT": "Оценка: 82 из 100\n[B]жирно[/B] & «цитата»"}},
    {"FILTER": {">=CALL_START_DATE": "2026-11-28T00:00:00+03:00", "ID": ["1", "7"]}, "start": "-1"},
    {"cmd": {"c0": "user.current", "c1": "department.get?ID=$result[c0][UF_DEPARTMENT][0]"}},
])
def test_php_query_round_trips(params: dict) -> None:
    assert parse_php_query(php_query(params)) == params


def test_batch_answer_with_empty_maps_as_lists(tmp_path: Path) -> None:
    portal = _portal(tmp_path, calls=1)
    with serve(portal) as running:
        client = _client(running)
        outcome = client.batch({"bad": ("crm.timeline.comment.get", {"id": 1}),
                                "good": ("user.get", {"FILTER": {"ID": ["12"]}})})
    assert outcome.results["good"][0]["NAME"] == "Алексей"
    assert isinstance(outcome.errors["bad"], NotFound) and outcome.totals == {"good": 1}


# --- the PII redactor -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("said", "shown"), [
    ("Мой телефон +7 (915) 123-45-67, перезвоните", "Мой телефон [телефон скрыт], перезвоните"),
    ("запишите восемь девятьсот пятнадцать сто двадцать три сорок пять шестьдесят семь",
     "запишите [номер скрыт]"),
    ("номер карты 4276 1600 1234 5678", "номер карты [номер карты скрыт]"),
    ("паспорт 45 12 345678 выдан", "паспорт [номер документа скрыт] выдан"),
    ("СНИЛС 123-456-789 01", "СНИЛС [СНИЛС скрыт]"),
    ("ИНН 7707083893, КПП", "ИНН [ИНН скрыт], КПП"),
    ("пишите на ivan.petrov@mail.ru", "пишите на [e-mail скрыт]"),
    ("мой номер 9 1 5 1 2 3 4 5 6 7", "мой номер [номер скрыт]"),
    # amounts, dates and short numbers stay
    ("Доставка 20 кубов обойдётся в 180 тысяч рублей", "Доставка 20 кубов обойдётся в 180 тысяч рублей"),
    ("бюджет 1 500 000 рублей", "бюджет 1 500 000 рублей"),
    ("сто восемьдесят пять тысяч двести рублей", "сто восемьдесят пять тысяч двести рублей"),
    ("Киа Рио две тысячи семнадцатого года, заказ 12345", "Киа Рио две тысячи семнадцатого года, заказ 12345"),
])
def test_personal_data_is_redacted(said: str, shown: str) -> None:
    assert redact(said) == shown


def test_the_comment_reads_well_and_carries_its_marker(stereo_results) -> None:
    result = stereo_results["conditioners"]
    words = [w.model_copy(update={"text": "+79151234567"}) if i == 3 else w for i, w in enumerate(result.words)]
    evidence_result = result.model_copy(update={"words": words})
    text = render_comment(evidence_result)
    assert text.startswith("[B]Оценка звонка: 0 из 100 — 1 из 5 (нарушение стандарта)[/B]")
    assert "✘ Без грубости" in text and "менеджер: «" in text
    assert "[B]Разговор:[/B] менеджер говорил" in text
    assert has_marker(text, "conditioners") and not has_marker(text, "condition")
    good = render_comment(stereo_results["windows"])
    assert "✔ Попрощался — " in good and "Оценка звонка: 95 из 100 — 5 из 5" in good


# --- the client against the sandbox -------------------------------------------------------------------------

def _portal(tmp_path: Path, *, calls: int = 3, extra: list[CallSpec] | None = None) -> Portal:
    portal = Portal()
    for index, call in enumerate(SAMPLE_CALLS[:calls]):
        portal.add_call(CallSpec(audio=call.stereo, manager_id=["12", "15", "17"][index % 3],
                                 manager_name=["Алексей Смирнов", "Мария Кузнецова", "Дмитрий Орлов"][index % 3],
                                 started_at=DAY + timedelta(hours=9 + index), incoming=index % 2 == 0,
                                 deal_ids=[str(4101 + index)], duration_s=round(call.duration_s),
                                 manager_right=call.manager_channel == "right"))
    for spec in extra or []:
        portal.add_call(spec)
    return portal


def _client(running, **options) -> Bitrix24Client:
    return Bitrix24Client(WebhookAuth(SecretStr(running.webhook_url)), **options)


def test_paging_by_id_returns_every_row_once(tmp_path: Path) -> None:
    audio = SAMPLE_CALLS[0].stereo
    extra = [CallSpec(audio=audio, manager_id="12", manager_name="Алексей Смирнов",
                      started_at=DAY + timedelta(minutes=i), incoming=True, deal_ids=[], duration_s=60)
             for i in range(130)]
    portal = _portal(tmp_path, calls=0, extra=extra)
    with serve(portal) as running:
        client = _client(running)
        rows = list(client.list_by_id("voximplant.statistic.get", {"FILTER": {"CALL_FAILED_CODE": "200"}},
                                      upper=True))
    assert [row["ID"] for row in rows] == [str(i) for i in range(1, 131)]
    assert client.requests == 3  # 50 + 50 + 30


def test_the_client_stays_inside_the_portals_rate_limit(tmp_path: Path) -> None:
    portal = _portal(tmp_path, calls=1)
    fast = SandboxOptions(bucket_capacity=10, drain_per_s=20.0)
    with serve(portal, fast) as running:
        client = _client(running, rate_per_s=20.0, burst=10)
        for _ in range(40):
            client.result("user.get", {"FILTER": {"ID": ["12"]}})
    assert portal.rejected["limit"] == 0 and portal.requests["user.get"] == 40


def test_retries_through_503s_and_html_pages(tmp_path: Path) -> None:
    portal = _portal(tmp_path, calls=1)
    flaky = SandboxOptions(fail_rate=0.3, html_error_rate=0.1, seed=3)
    with serve(portal, flaky) as running:
        client = _client(running, sleep=lambda s: None)
        for _ in range(30):
            assert client.result("user.get", {"FILTER": {"ID": ["12"]}})[0]["ID"] == "12"
    assert portal.rejected["injected_503"] >= 5 and portal.rejected["html"] >= 1


def test_a_method_blocked_for_its_operating_time_waits_until_the_reset(tmp_path: Path) -> None:
    portal = _portal(tmp_path, calls=1)
    # 100 s a call against a 250 s limit: the third call crosses it and completes, the fourth is refused.
    options = SandboxOptions(operating_cost_s={"user.get": 100.0}, operating_limit_s=250.0)
    waits: list[float] = []
    with serve(portal, options) as running:
        def sleep(seconds: float) -> None:  # the portal's clock moves on by what the client waits
            waits.append(seconds)
            running.sandbox.advance(seconds)

        client = _client(running, sleep=sleep)
        for _ in range(4):
            assert client.result("user.get", {"FILTER": {"ID": ["12"]}})[0]["ID"] == "12"
    assert portal.rejected["operation_time_limit"] == 1
    # until the last successful answer's operating_reset_at (ten minutes after the first call), not a blind back-off
    assert len(waits) == 1 and 590 < waits[0] <= 600


def _oauth(running, options: SandboxOptions, access: str, refresh: str, on_refresh=None) -> OAuthAuth:
    """OAuth against the sandbox with the given token pair."""
    return OAuthAuth(portal=running.base_url, client_id=options.client_id,
                     client_secret=SecretStr(options.client_secret), access_token=SecretStr(access),
                     refresh_token=SecretStr(refresh), token_url=f"{running.base_url}/oauth/token/",
                     on_refresh=on_refresh)


def test_oauth_refreshes_expired_tokens_and_persists_the_new_pair(tmp_path: Path) -> None:
    portal = _portal(tmp_path, calls=1)
    options = SandboxOptions(token_ttl_requests=0)  # every token is already dead when first used
    saved: list[tuple[str, str]] = []
    with serve(portal, options) as running:
        access, refresh = running.sandbox.issue_tokens()
        auth = _oauth(running, options, access, refresh, on_refresh=lambda a, r: saved.append((a, r)))
        running.sandbox.options.token_ttl_requests = None  # the refreshed token lives
        client = Bitrix24Client(auth)
        assert client.result("user.get", {"FILTER": {"ID": ["12"]}})[0]["ID"] == "12"
        assert len(saved) == 1 and saved[0][1] != refresh  # a new refresh token, handed over to be stored
        stale = _oauth(running, options, access, refresh)
        with pytest.raises(AuthError, match="refresh token was refused"):
            Bitrix24Client(stale).result("user.get")  # the old refresh token was used up


def test_a_token_that_expires_again_is_refreshed_again_within_bounds(tmp_path: Path) -> None:
    """A call that waits out retries can outlive a fresh token: it refreshes again, at most three times (a portal
    that keeps handing out dead tokens gets an error, not a loop)."""
    portal = _portal(tmp_path, calls=1)
    options = SandboxOptions(token_ttl_requests=0)  # every token, refreshed ones too, is dead when used
    saved: list[tuple[str, str]] = []
    with serve(portal, options) as running:
        access, refresh = running.sandbox.issue_tokens()
        auth = _oauth(running, options, access, refresh, on_refresh=lambda a, r: saved.append((a, r)))
        with pytest.raises(AuthError, match="expired_token"):
            Bitrix24Client(auth).result("user.get")
    assert len(saved) == 3 and len({pair[1] for pair in saved}) == 3


def test_errors_name_the_method_not_the_secret(tmp_path: Path, caplog) -> None:
    portal = _portal(tmp_path, calls=1)
    with serve(portal) as running, caplog.at_level(logging.DEBUG):
        wrong = Bitrix24Client(WebhookAuth(SecretStr(running.webhook_url.replace("sandboxsecret0001", "nope1"))))
        with pytest.raises(AuthError) as error:
            wrong.result("user.get")
        assert str(error.value) == "Bitrix24 user.get: NO_AUTH_FOUND (Wrong authorization data)"
        running.sandbox.options.locked_deals.add("4101")
        with pytest.raises(AccessDenied):
            _client(running).result("crm.timeline.comment.add", {"fields": {
                "ENTITY_ID": "4101", "ENTITY_TYPE": "deal", "COMMENT": "x"}}, write=True)
    assert "sandboxsecret0001" not in caplog.text and "nope1" not in caplog.text


def test_plain_http_only_on_loopback() -> None:
    with pytest.raises(ConfigError, match="must use https"):
        WebhookAuth(SecretStr("http://portal.bitrix24.ru/rest/1/secret/"))
    with pytest.raises(ConfigError, match="must look like"):
        WebhookAuth(SecretStr("https://portal.bitrix24.ru/api/"))
    assert WebhookAuth(SecretStr("https://portal.bitrix24.ru/rest/1/secret/")).portal == "https://portal.bitrix24.ru"


# --- the source's rules -------------------------------------------------------------------------------------

def test_source_lists_answered_calls_with_their_deal_and_manager(tmp_path: Path) -> None:
    audio = SAMPLE_CALLS[0].stereo
    extra = [
        CallSpec(audio=audio, manager_id="12", manager_name="Алексей Смирнов", started_at=DAY + timedelta(hours=15),
                 incoming=False, deal_ids=["5001", "5002"], duration_s=60),  # two deals: the first one
        CallSpec(audio=audio, manager_id="15", manager_name="Мария Кузнецова", started_at=DAY + timedelta(hours=16),
                 incoming=True, deal_ids=[], duration_s=60),  # no deal: its contact
        CallSpec(audio=audio, manager_id="15", manager_name="Мария Кузнецова", started_at=DAY + timedelta(hours=17),
                 incoming=True, deal_ids=["5003"], duration_s=5),  # too short
        CallSpec(audio=audio, manager_id="15", manager_name="Мария Кузнецова", started_at=DAY + timedelta(hours=18),
                 incoming=True, deal_ids=[], duration_s=0, answered=False),  # missed
        CallSpec(audio=audio, manager_id="17", manager_name="Дмитрий Орлов",
                 started_at=DAY + timedelta(days=1, hours=1), incoming=True, deal_ids=["5004"],
                 duration_s=60),  # the next day
    ]
    portal = _portal(tmp_path, calls=3, extra=extra)
    late = portal.calls[1]["CALL_ID"]
    with serve(portal, SandboxOptions(late_records={late})) as running:
        source = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(running.webhook_url)))
        first = source.list_calls(WINDOW)
        assert late not in {r.call_id for r in first} and source.late == [late]  # no recording yet
        records = {r.call_id: r for r in source.list_calls(WINDOW)}  # the next run finds it
        assert late in records and len(records) == 5
        by_time = sorted(records.values(), key=lambda r: r.started_at)
        assert [r.crm_target for r in by_time] == ["deal:4101", "deal:4102", "deal:4103", "deal:5001",
                                                    f"contact:{portal.calls[4]['CRM_ENTITY_ID']}"]
        assert [r.direction for r in by_time[:3]] == ["in", "out", "in"]
        assert by_time[0].manager_name == "Алексей Смирнов" and by_time[0].manager == "12"
        assert all(r.uri.startswith("bitrix24://127.0.0.1/call/externalCall.") for r in by_time)
        skip = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(running.webhook_url), no_deal="skip"))
        assert sorted(r.crm_target or "-" for r in skip.list_calls(WINDOW))[0] == "-"
        path = source.fetch(by_time[0], tmp_path)
        assert path.read_bytes() == portal.files[by_time[0].source_ref] and path.stat().st_size > 100_000


def test_a_download_that_is_not_audio_fails_the_call(tmp_path: Path) -> None:
    assert looks_like_audio(b"ID3\x04\x00", "audio/mpeg") and not looks_like_audio(b"<html><body>", "text/html")
    portal = _portal(tmp_path, calls=1)
    with serve(portal) as running:
        source = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(running.webhook_url)))
        record = source.list_calls(WINDOW)[0]
        portal.files[record.source_ref] = b"<!DOCTYPE html><html><body>Authorization required</body></html>"
        with pytest.raises(CallError, match="instead of a recording"):
            source.fetch(record, tmp_path)
        missing = record.model_copy(update={"source_ref": "999999"})
        with pytest.raises(CallError, match="cannot download the recording: Bitrix24 disk.file.get: ERROR_NOT_FOUND"):
            source.fetch(missing, tmp_path)


def test_reference_json_examples_parse(tmp_path: Path) -> None:
    """The sandbox's statistics rows carry the documented fields and types."""
    portal = _portal(tmp_path, calls=1)
    with serve(portal) as running:
        body = _client(running).call("voximplant.statistic.get", {"FILTER": {"CALL_FAILED_CODE": "200"}})
    row = body["result"][0]
    assert isinstance(row["RECORD_FILE_ID"], int) and isinstance(row["CALL_DURATION"], str)
    assert row["CALL_START_DATE"].endswith("+03:00") and body["total"] == 1
    assert {"start", "finish", "duration", "operating_reset_at"} <= set(body["time"])
    json.dumps(body)


def test_stored_transcripts_can_be_redacted_word_by_word() -> None:
    from pipeline.publish.pii import redact_words
    from pipeline.schema import Word

    said = ["Запишите", "мой", "номер:", "+7", "915", "123-45-67,", "и", "почту", "ivan@mail.ru.", "Стоимость",
            "180", "тысяч", "рублей."]
    words = [Word(start=i, end=i + 0.5, text=t, speaker="right", role="client", prob=0.9) for i, t in enumerate(said)]
    cleaned = [w.text for w in redact_words(words)]
    assert cleaned == ["Запишите", "мой", "номер:", "[скрыто]", "[скрыто]", "[скрыто]", "и", "почту", "[скрыто]",
                       "Стоимость", "180", "тысяч", "рублей."]


def test_a_call_with_only_a_record_url_is_downloaded_from_it(tmp_path: Path) -> None:
    portal = _portal(tmp_path, calls=1)
    with serve(portal) as running:
        row = portal.calls[0]
        file_id = str(row["RECORD_FILE_ID"])
        row["RECORD_FILE_ID"] = None  # a PBX that only gave a link
        row["CALL_RECORD_URL"] = (f"{running.base_url}/rest/download.json?auth=x&"
                                  f"token={running.sandbox.download_token(file_id)}")
        source = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(running.webhook_url)))
        record = source.list_calls(WINDOW)[0]
        assert record.source_ref.startswith("url:") and source.late == []
        assert source.fetch(record, tmp_path).read_bytes() == portal.files[file_id]
