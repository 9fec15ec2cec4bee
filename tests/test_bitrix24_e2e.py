"""The whole loop against the sandbox: `callqa run --source bitrix24` fetches the day's calls, analyses them and
writes one score comment per call into its deal; later runs post nothing new; a re-score updates in place; with
injected 503s, HTML pages, expiring OAuth tokens and a write left unanswered, still exactly one comment per call;
no secret in any output; a deal the webhook may not edit fails that call alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.lexicon import DEFAULT_LEXICONS
from pipeline.publish.bitrix24 import CommentPublisher, ledger_key
from pipeline.publish.comment import has_marker
from pipeline.sandbox import CallSpec, Portal, SandboxOptions, serve
from pipeline.schema import CallResult, Quality, QualityGate
from pipeline.stores import FolderStore
from tests.conftest import SAMPLE_CALLS

CALLQA = Path(sys.executable).with_name("callqa")
MSK = timezone(timedelta(hours=3))
DAY = datetime(2026, 11, 28, tzinfo=MSK)
CALLS = sorted(SAMPLE_CALLS, key=lambda call: call.duration_s)[:3]
DEALS = ["4201", "4202", "4203"]


def seeded_portal() -> Portal:
    portal = Portal()
    for index, call in enumerate(CALLS):
        portal.add_call(CallSpec(audio=call.stereo, manager_id=str(20 + index), manager_name=f"Менеджер {index + 1}",
                                 started_at=DAY + timedelta(hours=10 + index), incoming=call.direction == "in",
                                 deal_ids=[DEALS[index]], duration_s=round(call.duration_s),
                                 manager_right=call.manager_channel == "right"))
    return portal


def run(store: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    # These tests are about fetching, posting and faults, not which words are heard: stereo calls are transcribed
    # the cheaper way (the plain mix; the default strategy's words are tested in test_stereo_calls.py).
    return subprocess.run([str(CALLQA), "run", "--source", "bitrix24", "--date", "2026-11-28", "--store", str(store),
                           *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "CALLQA_DEVICE": "cpu", "CALLQA_STEREO_STRATEGY": "mix", **env})


def comments(portal: Portal) -> dict[str, list[dict]]:
    by_deal: dict[str, list[dict]] = {}
    for comment in portal.comments.values():
        by_deal.setdefault(comment["ENTITY_ID"], []).append(comment)
    return by_deal


def call_ids(portal: Portal) -> list[str]:
    return [row["CALL_ID"] for row in portal.calls]


def test_one_comment_per_call_then_nothing_new_then_updated_in_place(tmp_path: Path) -> None:
    portal = seeded_portal()
    store = tmp_path / "store"
    with serve(portal) as sandbox:
        webhook = {"CALLQA_BITRIX24_WEBHOOK": sandbox.webhook_url}
        first = run(store, **webhook)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Bitrix24 comments: posted 3" in first.stdout
        assert "Bitrix24 CRM: 3 deals and leads in 3 funnels read for the report" in first.stdout, first.stdout
        [snapshot] = (store / "crm").glob("*.json")  # the run's deals, for `callqa report`
        assert sorted(d["deal_id"] for d in json.loads(snapshot.read_text(encoding="utf-8"))["deals"]) == DEALS
        posted = comments(portal)
        assert sorted(posted) == DEALS and all(len(found) == 1 for found in posted.values())
        for deal, call_id in zip(DEALS, call_ids(portal)):  # each on the deal of its own call
            text = posted[deal][0]["COMMENT"]
            assert has_marker(text, call_id) and text.startswith("[B]Оценка звонка: ")
        before = {deal: found[0]["COMMENT"] for deal, found in posted.items()}

        for _ in range(2):  # the second and third runs post nothing
            again = run(store, **webhook)
            assert again.returncode == 0 and "Bitrix24 comments: unchanged 3" in again.stdout, again.stdout
        assert len(portal.comments) == 3

        lexicons = tmp_path / "lexicons"
        shutil.copytree(DEFAULT_LEXICONS, lexicons, ignore=shutil.ignore_patterns("scorecards", "schema"))
        politeness = lexicons / "politeness.yaml"
        politeness.write_text(politeness.read_text(encoding="utf-8").replace('"спасибо",', ""), encoding="utf-8")
        rescored = run(store, "--rescore", "--lexicons", str(lexicons), **webhook)
        assert rescored.returncode == 0, rescored.stdout + rescored.stderr
        assert "updated" in rescored.stdout
        after = comments(portal)
        assert len(portal.comments) == 3 and any(after[d][0]["COMMENT"] != before[d] for d in DEALS)
        ledger = json.loads((store / ledger_key(call_ids(portal)[0])).read_text(encoding="utf-8"))
        assert ledger["target"] == f"deal:{DEALS[0]}" and str(ledger["comment_id"]) in portal.comments

    secret = "sandboxsecret0001"
    everything = first.stdout + first.stderr + rescored.stdout + rescored.stderr
    everything += "".join(path.read_text(encoding="utf-8") for path in store.rglob("*.json"))
    assert secret not in everything
    result = CallResult.from_json((store / "calls" / call_ids(portal)[0] / "result.json").read_text())
    assert result.source.uri.startswith("bitrix24://127.0.0.1/call/") and result.metadata.crm_target == "deal:4201"
    assert result.metadata.manager_name == "Менеджер 1"
    report = subprocess.run([str(CALLQA), "report", "--store", str(store), "--since", "2026-11-28", "--until",
                             "2026-11-28", "--out", str(tmp_path / "report")], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "Сделки: Bitrix24 http://127.0.0.1:" in html and "Нет данных о сделках" not in html
    funnel = (tmp_path / "report" / "funnel.csv").read_text(encoding="utf-8-sig").splitlines()
    assert any(line.startswith("Подготовка документов;3;") and ";Общая;PREPARATION" in line for line in funnel)


def test_faults_still_give_exactly_one_comment_per_call(tmp_path: Path) -> None:
    portal = seeded_portal()
    # Faults that do not depend on the machine's speed: tokens die after 7 requests, the unanswered write hangs
    # until the sandbox stops (the client's 1.5 s timeout gives up on it first).
    options = SandboxOptions(fail_rate=0.3, html_error_rate=0.05, token_ttl_requests=7, unanswered_writes=1,
                             seed=11)
    store, tokens = tmp_path / "store", tmp_path / "tokens.json"
    with serve(portal, options) as sandbox:
        access, refresh = sandbox.sandbox.issue_tokens()
        tokens.write_text(json.dumps({"access_token": access, "refresh_token": refresh}), encoding="utf-8")
        done = run(store, "-v", CALLQA_BITRIX24__OAUTH__PORTAL=sandbox.base_url,
                   CALLQA_BITRIX24__OAUTH__CLIENT_ID=options.client_id,
                   CALLQA_BITRIX24__OAUTH__CLIENT_SECRET=options.client_secret,
                   CALLQA_BITRIX24__OAUTH__TOKEN_FILE=str(tokens),
                   CALLQA_BITRIX24__OAUTH__TOKEN_URL=f"{sandbox.base_url}/oauth/token/",
                   CALLQA_BITRIX24__TIMEOUT_S="1.5")
        assert done.returncode == 0, done.stdout + done.stderr
    assert portal.rejected["injected_503"] > 0 and portal.rejected["unanswered"] == 1
    posted = comments(portal)
    assert sorted(posted) == DEALS and all(len(found) == 1 for found in posted.values())  # exactly once
    renewed = json.loads(tokens.read_text(encoding="utf-8"))
    assert renewed["refresh_token"] != refresh  # tokens expired on the way and were refreshed and kept
    output = done.stdout + done.stderr
    for secret in (options.client_secret, access, refresh, renewed["access_token"], renewed["refresh_token"]):
        assert secret not in output


def test_a_deal_the_webhook_may_not_edit_fails_that_call_only(tmp_path: Path) -> None:
    portal = seeded_portal()
    with serve(portal, SandboxOptions(locked_deals={DEALS[1]})) as sandbox:
        done = run(tmp_path / "store", CALLQA_BITRIX24_WEBHOOK=sandbox.webhook_url)
    assert done.returncode == 1
    assert f"comment {call_ids(portal)[1]}: failed: Bitrix24 crm.timeline.comment.add: ACCESS_DENIED" in done.stdout
    assert sorted(comments(portal)) == [DEALS[0], DEALS[2]]


def test_a_recording_served_as_a_web_page_or_stalling_fails_that_call_only(tmp_path: Path) -> None:
    portal = seeded_portal()
    html, stalled, fine = portal.calls
    options = SandboxOptions(html_recordings={str(html["RECORD_FILE_ID"])},
                             stalled_recordings={str(stalled["RECORD_FILE_ID"])})
    store = tmp_path / "store"
    with serve(portal, options) as sandbox:
        done = run(store, CALLQA_BITRIX24_WEBHOOK=sandbox.webhook_url, CALLQA_BITRIX24__TIMEOUT_S="2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert portal.rejected["stalled"] == 1
    summaries = [json.loads(path.read_text(encoding="utf-8")) for path in (store / "runs").glob("*.json")]
    summary = next(summary for summary in summaries if summary.get("calls"))
    outcomes = {call["call_id"]: call for call in summary["calls"]}
    assert outcomes[html["CALL_ID"]]["status"] == "failed"
    assert "served text/html" in outcomes[html["CALL_ID"]]["reason"]
    assert outcomes[stalled["CALL_ID"]]["status"] == "failed"
    assert "cannot download the recording" in outcomes[stalled["CALL_ID"]]["reason"]
    assert outcomes[fine["CALL_ID"]]["status"] == "processed"
    assert sorted(comments(portal)) == [DEALS[2]]  # the batch went on past both


def test_dry_run_and_quality_gates(tmp_path: Path, stereo_results) -> None:
    portal = seeded_portal()
    store = FolderStore(tmp_path / "store")
    good = stereo_results[CALLS[0].call_id].model_copy(update={"metadata": stereo_results[CALLS[0].call_id]
                                                              .metadata.model_copy(update={"crm_target": "deal:4201"})})
    failed_gate = Quality(passed=False, gates=[QualityGate(id="language", passed=False, value="en 0.92")])
    foreign = good.model_copy(update={"call_id": "foreign", "quality": failed_gate})
    nowhere = good.model_copy(update={"call_id": "nowhere", "metadata": good.metadata.model_copy(
        update={"crm_target": None})})
    shown: list[str] = []
    with serve(portal) as sandbox:
        from pydantic import SecretStr

        from pipeline.bitrix24.client import Bitrix24Client, WebhookAuth

        client = Bitrix24Client(WebhookAuth(SecretStr(sandbox.webhook_url)))
        dry = CommentPublisher(client, store, dry_run=True, show=lambda call_id, text: shown.append(text))
        outcomes = {o.call_id: o for o in dry.publish([good, foreign, nowhere])}
    assert outcomes[good.call_id].status == "dry-run" and shown and shown[0].startswith("[B]Оценка звонка")
    assert outcomes["foreign"].status == "skipped" and "quality gates failed: language" in outcomes["foreign"].reason
    assert outcomes["nowhere"].status == "skipped" and portal.comments == {}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch) -> None:
    # The sandbox is on loopback: a proxy set in the environment must not get in the way.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
