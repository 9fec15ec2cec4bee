"""The CRM's side of the report: deals, leads, stage histories and funnels read from the sandbox portal over real
HTTP (checked against what the portal holds), and the phone funnel computed from them (checked by hand)."""

from __future__ import annotations

import tracemalloc
from datetime import date, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from pipeline.bitrix24.client import Bitrix24Client, WebhookAuth
from pipeline.bitrix24.crm import read_crm
from pipeline.bitrix24.settings import Bitrix24Settings
from pipeline.bitrix24.source import Bitrix24Source
from pipeline.report import ReportOptions, build_report, merge_snapshots
from pipeline.report.model import CrmSnapshot, Deal, Funnel, Stage, StageMove
from pipeline.sandbox import MSK, Portal, SandboxOptions, serve
from pipeline.sandbox.records import semantic_of
from pipeline.sources.base import CallRecord, TimeWindow
from tests.conftest import SAMPLE_CALLS
from tests.test_report import CRITERIA, GROUPS, call

DAY = date(2026, 11, 28)
START = datetime.combine(DAY, datetime.min.time(), tzinfo=MSK)
WINDOW = TimeWindow(since=START, until=START + timedelta(days=1))


def test_the_demo_portal_s_crm_is_read_whole_in_few_requests(tmp_path: Path) -> None:
    """Every deal of the portal (the calls' deals and the managers' other deals of the day) arrives with its
    amount, stage, outcome and full stage history; the whole read path stays within 3 requests per call."""
    portal = Portal.from_folder(SAMPLE_CALLS[0].stereo.parent, day=DAY)
    with serve(portal) as running:
        source = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(running.webhook_url)))
        records = source.list_calls(WINDOW)
        listed = source.client.requests
        snapshot = read_crm(source.client, records, WINDOW, run_id="r1", portal=source.portal)
        crm_requests = source.client.requests - listed
        for record in records:  # what the workers do per call: a fresh link, then the download
            source.fetch(record, tmp_path)
    assert len(records) == 9 and crm_requests <= 3
    assert source.client.requests / len(records) <= 3, (listed, crm_requests, source.client.requests)

    assert [(f.id, f.name, f.kind, len(f.stages)) for f in snapshot.funnels] == [
        ("0", "Общая", "deal", 8), ("1", "Повторные продажи", "deal", 5), ("lead", "Лиды", "lead", 5)]
    general = snapshot.funnels[0]
    assert [s.id for s in general.path] == ["NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "FINAL_INVOICE",
                                            "WON"]
    assert {s.id for s in general.stages if s.semantic == "lost"} == {"LOSE", "APOLOGY"}
    deals = {deal.deal_id: deal for deal in snapshot.deals}
    assert set(deals) == set(portal.deals)  # the calls' deals and the three more of each manager
    assert {record.deal_id for record in records} <= set(deals)
    for deal_id, truth in portal.deals.items():
        deal = deals[deal_id]
        history = sorted((e.created, e.stage_id) for e in portal.history if e.entity_type_id == 2
                         and str(e.owner_id) == deal_id)
        assert [(m.at, m.stage_id) for m in deal.moves] == history
        assert (deal.stage_id, deal.amount, deal.manager_id) == (truth.stage_id, truth.opportunity,
                                                                 str(truth.assigned_by_id))
        assert deal.won == {"S": True, "F": False, "P": None}[semantic_of(truth.stage_id)]
        assert deal.won_at == (next(at for at, stage in history if semantic_of(stage) == "S") if deal.won else None)
        assert deal.repeat_customer == truth.is_return_customer and deal.funnel_id == str(truth.category_id)
    assert snapshot.warnings == []
    # stored and read back as it was
    assert CrmSnapshot.model_validate_json(snapshot.model_dump_json(by_alias=True)) == snapshot


def _deal(deal_id: str, manager: str, amount: float, *moves: tuple[str, int], funnel: str = "0") -> Deal:
    """A deal whose history is (stage, day of November 2026 at 09:00) moves."""
    path = [StageMove(stage_id=stage, at=datetime(2026, 11, day, 9, tzinfo=MSK)) for stage, day in moves]
    won = next((m.at for m in path if m.stage_id == "WON"), None)
    last = path[-1].stage_id
    return Deal(deal_id=deal_id, manager_id=manager, amount=amount, currency="RUB", funnel_id=funnel,
                won=True if last == "WON" else False if last == "LOSE" else None, won_at=won, stage_id=last,
                created_at=path[0].at, moves=path)


FUNNEL = Funnel(id="0", name="Общая", stages=[Stage(id="NEW", name="Новая", sort=10),
                                             Stage(id="PREP", name="Подготовка", sort=20),
                                             Stage(id="WON", name="Успешна", sort=30, semantic="won"),
                                             Stage(id="LOSE", name="Провалена", sort=40, semantic="lost")])


def test_the_funnel_and_successful_calls_by_hand() -> None:
    deals = {deal.deal_id: deal for deal in [
        _deal("A", "12", 100_000, ("NEW", 20), ("PREP", 21), ("WON", 26)),  # call a1 on the 25th, won a day later
        _deal("B", "12", 40_000, ("NEW", 22), ("PREP", 23), ("LOSE", 27)),  # call a2 on the 26th, lost
        _deal("C", "15", 10_000, ("NEW", 24), ("WON", 28)),  # no call: opened in the period by a manager of it
        _deal("D", "12", 20_000, ("NEW", 25), ("ODD", 26)),  # a stage the funnel does not know
        _deal("E", "12", 70_000, ("NEW", 1), ("PREP", 2), ("WON", 29)),  # call a3 on the 27th: won in 2 days...
        _deal("F", "15", 5_000, ("NEW", 1)),  # opened before the period, no call: not in the funnel
    ]}
    results = [call("a1", manager=("12", "Алексей"), day=25, duration_s=60, score=80, deal="A"),
               call("a2", manager=("12", "Алексей"), day=26, duration_s=60, score=70, deal="B"),
               call("a3", manager=("12", "Алексей"), day=27, duration_s=60, score=60, deal="E"),
               call("m1", manager=("15", "Мария"), day=25, duration_s=60, score=90, next_step=True)]
    since, until = datetime(2026, 11, 23, tzinfo=MSK), datetime(2026, 11, 30, tzinfo=MSK)
    report = build_report(results, deals, since=since, until=until, options=ReportOptions(won_within_days=30),
                          criteria=CRITERIA, groups=GROUPS, funnels=[FUNNEL], deal_source="Bitrix24 test")
    [view] = report.funnels
    rows = {stage.stage: stage for stage in view.stages}
    # A, B, C, D, E are in the funnel (F neither called nor opened in the period); furthest stage on the path:
    # A WON, B PREP, C WON (skipped PREP), D NEW (ODD is off the path), E WON
    assert [(s.stage, s.deals) for s in view.stages] == [("NEW", 5), ("PREP", 4), ("WON", 3), ("LOSE", 1),
                                                         ("ODD", 1)]
    assert [rows[s].conversion_from_previous for s in ("NEW", "PREP", "WON")] == [None, 80.0, 75.0]
    # days in NEW: A 1, B 1, C 4, D 1, E 1 -> median 1; in PREP: A 5, B 4, E 27 -> 5
    assert (rows["NEW"].median_days_in_stage, rows["PREP"].median_days_in_stage) == (1.0, 5.0)
    assert rows["WON"].average_amount == 60_000.0  # (100 000 + 10 000 + 70 000) / 3
    assert (rows["PREP"].calls, rows["NEW"].calls) == (3, 0)  # a1, a2 and a3 were made while their deals were there
    assert rows["ODD"].semantic == "unknown" and "ODD" in rows["ODD"].title
    assert [(m.manager, m.reached, m.won_pct) for m in view.managers] == [
        ("Алексей", [4, 3, 2], 50.0), ("Мария", [1, 1, 1], 100.0)]  # C skipped PREP: it got past it
    alexey = next(m for m in report.managers if m.manager_id == "12")
    assert (alexey.successful_calls, alexey.conversion_pct) == (2, 66.7)  # a1 and a3: won within 30 days
    assert (alexey.average_check, alexey.repeat_purchases) == (85_000.0, 0)
    maria = next(m for m in report.managers if m.manager_id == "15")
    assert maria.successful_calls == 1  # no deal: the next-step criterion, as without a CRM

    strict = build_report(results, deals, since=since, until=until, options=ReportOptions(won_within_days=1.5),
                          criteria=CRITERIA, groups=GROUPS, funnels=[FUNNEL])
    assert next(m for m in strict.managers if m.manager_id == "12").successful_calls == 1  # E took 2 days


def test_without_sources_figures_say_no_data_and_a_measured_zero_stays_zero() -> None:
    results = [call("a1", manager=("12", "Алексей"), day=25, duration_s=60, score=80)]
    since, until = datetime(2026, 11, 23, tzinfo=MSK), datetime(2026, 11, 30, tzinfo=MSK)
    bare = build_report(results, {}, since=since, until=until, options=ReportOptions(), criteria=CRITERIA,
                        groups=GROUPS, feedback_measured=False)
    [alexey] = bare.managers
    assert (alexey.average_check, alexey.repeat_purchases, alexey.positive_feedback) == (None, None, None)
    assert [alexey.ratings[k] for k in ("average_check", "repeat_purchases", "positive_feedback")] == [None] * 3
    assert bare.funnels == [] and not bare.has_deals
    heard = build_report(results, {}, since=since, until=until, options=ReportOptions(), criteria=CRITERIA,
                         groups=GROUPS, feedback_measured=True)
    assert heard.managers[0].positive_feedback == 0 and heard.managers[0].ratings["positive_feedback"] == 1


def test_later_snapshots_replace_what_earlier_runs_read() -> None:
    early = CrmSnapshot(portal="p", run_id="1", read_at=datetime(2026, 11, 25, tzinfo=MSK), funnels=[FUNNEL],
                        deals=[_deal("A", "12", 1, ("NEW", 20), ("PREP", 21))])
    late = CrmSnapshot(portal="p", run_id="2", read_at=datetime(2026, 11, 27, tzinfo=MSK), funnels=[],
                       deals=[_deal("A", "12", 1, ("NEW", 20), ("PREP", 21), ("WON", 26))])
    merged = merge_snapshots([late, early])
    assert merged.deals["A"].won and merged.funnels == [FUNNEL] and merged.source == "Bitrix24 p"


def test_ten_thousand_deals_are_read_in_bounded_memory() -> None:
    """The managers' deals of a busy period: 10 000 deals with their histories, a few dozen requests, and memory
    that grows with the deals kept (a few KB each), not with the pages the portal sent."""
    portal = Portal()
    portal.seed_deals(10_000, day=DAY)
    records = [CallRecord(call_id=f"c{m}", uri=f"c{m}.mp3", manager=m) for m in ("12", "15", "17")]
    with serve(portal, SandboxOptions(bucket_capacity=1000, drain_per_s=100)) as running:
        client = Bitrix24Client(WebhookAuth(SecretStr(running.webhook_url)), rate_per_s=100, burst=1000,
                                timeout_s=300)
        tracemalloc.start()
        try:
            snapshot = read_crm(client, records, WINDOW, run_id="r", portal="p")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(snapshot.deals) == 10_000 and all(deal.moves for deal in snapshot.deals)
    assert client.requests <= 30  # 200 pages of deals and ~800 of history, 50 to a batch
    # traced in this process: the client's snapshot and, on its thread, the sandbox's own answers
    assert peak / 10_000 < 10 * 1024, peak


def test_the_nightly_run_reads_only_recent_snapshots(tmp_path: Path) -> None:
    from pipeline.report import load_snapshots
    from pipeline.stores import FolderStore, crm_key

    store = FolderStore(tmp_path)
    for run_id, read_at in (("20260101T020000-aaaaaa", datetime(2026, 1, 1, 2, tzinfo=MSK)),
                            ("20261127T020000-bbbbbb", datetime(2026, 11, 27, 2, tzinfo=MSK))):
        snapshot = CrmSnapshot(portal="p", run_id=run_id, read_at=read_at, funnels=[FUNNEL], deals=[])
        store.write(crm_key(run_id), snapshot.model_dump_json(by_alias=True).encode())
    store.write("crm/broken.json", b"{not json")
    recent, broken = load_snapshots(store, read_since=datetime(2026, 11, 1, tzinfo=MSK))
    assert [s.run_id for s in recent] == ["20261127T020000-bbbbbb"] and broken == ["crm/broken.json"]
    everything, _ = load_snapshots(store)
    assert [s.run_id for s in everything] == ["20260101T020000-aaaaaa", "20261127T020000-bbbbbb"]
