"""The report's figures from stored results and deals: pure functions, so they are checked by hand in tests."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from pipeline.calibration import Calibration, calibrate
from pipeline.report.model import (
    CSV_FUNNEL,
    Deal,
    Funnel,
    FunnelStage,
    FunnelView,
    ManagerFunnel,
    ManagerStats,
    ReportOptions,
    ReviewCall,
)
from pipeline.schema import CallResult

__all__ = ["Report", "build_report", "call_time", "deal_of", "manager_of"]

UNKNOWN_MANAGER = ("unknown", "Не указан")


class Report(BaseModel):
    since: datetime
    until: datetime
    previous_since: datetime
    generated_at: datetime
    managers: list[ManagerStats]
    previous: dict[str, ManagerStats]
    funnels: list[FunnelView]
    review: list[ReviewCall]
    criteria: list[tuple[str, str]]  # (id, title) in scorecard order
    groups: list[tuple[str, str]]
    calls: int
    deal_source: str | None  # where the deals came from ("Bitrix24 ...", "deals.csv"); None: no deal data
    feedback_measured: bool = True  # a feedback lexicon was there to hear praise
    calibration: Calibration | None = None  # the period's reviewed criteria; None: nobody reviewed a call

    @property
    def has_deals(self) -> bool:
        return self.deal_source is not None


def call_time(result: CallResult) -> datetime:
    """When the call started (from its source), else when it was analysed; always timezone-aware."""
    moment = datetime.fromisoformat(result.metadata.started_at or result.analyzed_at)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def manager_of(result: CallResult) -> tuple[str, str]:
    manager_id, manager_name = result.metadata.manager_id, result.metadata.manager_name
    if manager_id:
        return manager_id, manager_name or f"ID {manager_id}"
    if manager_name:
        return manager_name, manager_name
    return UNKNOWN_MANAGER


def _mean(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.fmean(present), 4) if present else None


def deal_of(result: CallResult, deals: dict[str, Deal]) -> Deal | None:
    """The call's deal, or its lead when it has no deal."""
    target = result.metadata.crm_target or ""
    return deals.get(result.metadata.deal_id or "") or (deals.get(target) if target.startswith("lead:") else None)


def _successful(result: CallResult, deals: dict[str, Deal], options: ReportOptions) -> bool:
    deal = deal_of(result, deals)
    if deal is not None:
        if deal.won_at is None:  # a deals CSV says won or not, but not when
            return bool(deal.won)
        moment = call_time(result)
        return moment <= deal.won_at <= moment + timedelta(days=options.won_within_days)
    if result.score is None:
        return False
    return any(c.id == options.success_criterion and c.applicable and c.passed for c in result.score.criteria)


def _positive(result: CallResult) -> bool:
    return any(hit.lexicon == "feedback" and hit.term == "positive" and hit.role == "client" for hit in result.hits)


def _manager_stats(manager_id: str, name: str, calls: list[CallResult], deals: dict[str, Deal], days: float,
                   options: ReportOptions, feedback_measured: bool) -> ManagerStats:
    count = len(calls)
    total_min = sum(result.duration_s for result in calls) / 60
    successful = sum(_successful(result, deals, options) for result in calls)
    won = {deal.deal_id: deal for deal in (deal_of(r, deals) for r in calls) if deal is not None and deal.won}
    scored = [(result, result.score) for result in calls if result.score is not None]
    groups: dict[str, list[float]] = defaultdict(list)
    applies: dict[str, list[bool]] = defaultdict(list)
    daily: dict[str, list[float]] = defaultdict(list)
    uncertain = 0
    for result, score in scored:
        for group in score.groups:
            if group.total is not None:
                groups[group.id].append(group.total)
        for criterion in score.criteria:
            if criterion.verdict == "uncertain":
                uncertain += 1
            elif criterion.applicable:
                applies[criterion.id].append(criterion.passed)
        daily[call_time(result).date().isoformat()].append(score.total)
    metrics = [result.metrics for result in calls]
    stats = ManagerStats(
        manager_id=manager_id,
        name=name,
        calls=count,
        total_duration_min=round(total_min, 2),
        average_duration_min=round(total_min / count, 2) if count else None,
        successful_calls=successful,
        conversion_pct=round(100 * successful / count, 1) if count else None,
        average_check=_mean(deal.amount for deal in won.values()),
        repeat_purchases=sum(deal.repeat_customer for deal in won.values()) if deals else None,
        positive_feedback=sum(_positive(result) for result in calls) if feedback_measured else None,
        uncertain_verdicts=uncertain,
        average_score=_mean(score.total for _, score in scored),
        group_totals={group: _mean(values) for group, values in groups.items()},
        talk_ratio=_mean(m.talk_ratio_manager for m in metrics),
        longest_monologue_s=_mean(m.longest_monologue_s.manager for m in metrics),
        interruptions=_mean(m.interruptions.manager for m in metrics),
        questions=_mean(m.questions.manager for m in metrics),
        criterion_pass_pct={cid: round(100 * sum(v) / len(v), 1) for cid, v in applies.items()},
        ratings={},
        daily_scores={day: round(statistics.fmean(v), 1) for day, v in sorted(daily.items())},
    )
    ratings = {
        "calls": options.calls_per_day.grade(count / days),
        "duration": options.duration_min.grade(stats.average_duration_min),
        "successful": options.successful_per_day.grade(successful / days),
        "conversion": options.conversion_pct.grade(stats.conversion_pct),
        "average_check": options.average_check.grade(stats.average_check),
        "repeat_purchases": options.repeat_purchases.grade(stats.repeat_purchases),
        "positive_feedback": options.positive_feedback_pct.grade(100 * stats.positive_feedback / count
                                                                 if count and stats.positive_feedback is not None
                                                                 else None),
    }
    ratings.update({f"group:{group}": options.criterion_pass_pct.grade(total)
                    for group, total in stats.group_totals.items()})
    ratings.update({f"criterion:{cid}": options.criterion_pass_pct.grade(pct)
                    for cid, pct in stats.criterion_pass_pct.items()})
    return stats.model_copy(update={"ratings": ratings})


def _per_manager(calls: Sequence[CallResult], deals: dict[str, Deal], days: float, options: ReportOptions,
                 known: dict[str, str], feedback_measured: bool) -> dict[str, ManagerStats]:
    grouped: dict[str, list[CallResult]] = defaultdict(list)
    names = dict(known)
    for result in calls:
        manager_id, name = manager_of(result)
        grouped[manager_id].append(result)
        names.setdefault(manager_id, name)
    # A manager known from another period appears with no calls (zeros), not silently missing.
    return {manager_id: _manager_stats(manager_id, names[manager_id], grouped.get(manager_id, []), deals, days,
                                       options, feedback_measured)
            for manager_id in sorted(names, key=lambda m: names[m])}


def _days(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 86400


def _funnel_view(funnel: Funnel, deals: list[Deal], calls: Sequence[CallResult], all_deals: dict[str, Deal],
                 names: dict[str, str]) -> FunnelView:
    """How far the funnel's deals got: for each stage of its path, the deals that reached it (entered it or a
    later stage: a deal may skip stages), the conversion from the previous stage, the median days from entering
    the stage to the next move, the average amount, and the calls made while deals stood there; then the lost
    stages, and stages the funnel does not know (kept and shown, never dropped)."""
    path = funnel.path
    place = {stage.id: index for index, stage in enumerate(path)}
    known = {stage.id for stage in funnel.stages}

    def furthest(deal: Deal) -> int:
        return max((place[move.stage_id] for move in deal.moves if move.stage_id in place), default=-1)

    def row(stage_id: str, title: str, reached: list[Deal], semantic, previous: int | None) -> FunnelStage:
        durations = []
        for deal in reached:
            for move, following in zip(deal.moves, deal.moves[1:]):
                if move.stage_id == stage_id:
                    durations.append(_days(move.at, following.at))
        in_stage_calls = 0
        ids = {deal.deal_id for deal in reached}
        for result in calls:
            called = deal_of(result, all_deals)
            if called is not None and called.deal_id in ids and called.stage_at(call_time(result)) == stage_id:
                in_stage_calls += 1
        amounts = [deal.amount for deal in reached if deal.amount is not None]
        return FunnelStage(
            stage=stage_id, title=title, deals=len(reached), semantic=semantic,
            conversion_from_previous=round(100 * len(reached) / previous, 1) if previous else None,
            median_days_in_stage=round(statistics.median(durations), 2) if durations else None,
            calls=in_stage_calls, average_amount=round(statistics.fmean(amounts), 2) if amounts else None)

    stages, previous = [], None
    for index, stage in enumerate(path):
        reached = [deal for deal in deals if furthest(deal) >= index]
        stages.append(row(stage.id, stage.name, reached, stage.semantic, previous))
        previous = len(reached)
    for stage in funnel.stages:
        if stage.semantic == "lost":
            stages.append(row(stage.id, stage.name, [d for d in deals if d.stage_id == stage.id], "lost", None))
    for unknown in sorted({d.stage_id for d in deals if d.stage_id and d.stage_id not in known}
                          if funnel.id != CSV_FUNNEL.id else set()):
        stages.append(row(unknown, f"{unknown} (этап не найден в воронке)",
                          [d for d in deals if d.stage_id == unknown], "unknown", None))
    managers = []
    by_manager: dict[str, list[Deal]] = defaultdict(list)
    for deal in deals:
        by_manager[deal.manager_id or UNKNOWN_MANAGER[0]].append(deal)
    for manager_id, owned in sorted(by_manager.items(), key=lambda item: names.get(item[0], item[0])):
        reached_counts = [sum(furthest(deal) >= index for deal in owned) for index in range(len(path))]
        closed = [deal for deal in owned if deal.won is not None]
        managers.append(ManagerFunnel(manager=names.get(manager_id, f"ID {manager_id}"), reached=reached_counts,
                                      won_pct=round(100 * sum(bool(d.won) for d in closed) / len(owned), 1)
                                      if owned else None))
    return FunnelView(funnel_id=funnel.id, name=funnel.name, stages=stages, managers=managers)


def _funnels(calls: Sequence[CallResult], deals: dict[str, Deal], funnels: Sequence[Funnel], since: datetime,
             until: datetime, managers: dict[str, str]) -> list[FunnelView]:
    """The deals with calls in the period and the deals the period's managers opened in it, funnel by funnel."""
    involved = {deal.deal_id: deal for deal in (deal_of(result, deals) for result in calls) if deal is not None}
    for deal in deals.values():
        if deal.created_at and since <= deal.created_at < until and (deal.manager_id in managers):
            involved.setdefault(deal.deal_id, deal)
    views = []
    for funnel in [*funnels, CSV_FUNNEL]:
        members = [deal for deal in involved.values() if (deal.funnel_id or CSV_FUNNEL.id) == funnel.id]
        if members:
            views.append(_funnel_view(funnel, members, calls, deals, managers))
    known = {funnel.id for funnel in funnels} | {CSV_FUNNEL.id}
    for funnel_id in sorted({deal.funnel_id for deal in involved.values()
                             if deal.funnel_id is not None and deal.funnel_id not in known}):
        # A funnel the snapshot has no stages for: its deals still count, under the stage ids they carry.
        members = [deal for deal in involved.values() if deal.funnel_id == funnel_id]
        views.append(_funnel_view(Funnel(id=str(funnel_id), name=f"Воронка {funnel_id}", stages=[]), members,
                                  calls, deals, managers))
    return views


def _review(calls: Sequence[CallResult], options: ReportOptions) -> list[ReviewCall]:
    scored = [(result, result.score) for result in calls if result.score is not None]
    scored.sort(key=lambda pair: (not pair[1].auto_failed, pair[1].total, pair[0].call_id))
    review = []
    for result, score in scored[: options.review_count]:
        deal_id = result.metadata.deal_id
        review.append(ReviewCall(
            call_id=result.call_id, started_at=call_time(result).isoformat(timespec="minutes"),
            manager=manager_of(result)[1], score=score.total, grade=score.grade,
            auto_failed=list(score.auto_failed),
            failed=[c.title for c in score.criteria if c.verdict == "not_met"],
            deal_id=deal_id,
            deal_url=options.deal_url.format(deal_id=deal_id) if options.deal_url and deal_id else None))
    return review


def _calibration(calls: Sequence[CallResult], options: ReportOptions,
                 criteria: list[tuple[str, str]]) -> Calibration | None:
    """Agreement of the automatic verdicts with people's reviews of the period's calls, in the scorecard's order."""
    calibration = calibrate(calls, kappa_threshold=options.kappa_threshold)
    if not calibration.criteria:
        return None
    order = {criterion_id: index for index, (criterion_id, _) in enumerate(criteria)}
    return calibration.model_copy(update={"criteria": sorted(calibration.criteria,
                                                             key=lambda row: order.get(row.criterion, len(order)))})


def build_report(results: Sequence[CallResult], deals: dict[str, Deal], *, since: datetime, until: datetime,
                 options: ReportOptions, criteria: list[tuple[str, str]], groups: list[tuple[str, str]],
                 funnels: Sequence[Funnel] = (), deal_source: str | None = None, feedback_measured: bool = True,
                 now: datetime | None = None) -> Report:
    """The report for calls that started in [since, until), with the previous period of the same length.

    Args:
        results: stored results (any period; filtered here).
        deals: deals and leads by id ("lead:<id>" for leads), empty without a CRM.
        funnels: the CRM's funnels with their stages (a deals CSV's deals use the phone funnel).
        deal_source: where the deals came from, shown in the report (default: "deals.csv" when there are deals).
        feedback_measured: a feedback lexicon was there to hear the client's praise (else: no data, not 0).
        criteria, groups: (id, title) of the scorecard's criteria and groups, in its order.
    """
    length = until - since
    previous_since = since - length
    days = max(length / timedelta(days=1), 1.0)
    current = [r for r in results if since <= call_time(r) < until]
    earlier = [r for r in results if previous_since <= call_time(r) < since]
    known = {manager_of(r)[0]: manager_of(r)[1] for r in [*current, *earlier]}
    return Report(
        since=since, until=until, previous_since=previous_since, generated_at=now or datetime.now(UTC),
        managers=list(_per_manager(current, deals, days, options, known, feedback_measured).values()),
        previous=_per_manager(earlier, deals, days, options, known, feedback_measured),
        funnels=_funnels(current, deals, funnels, since, until, {m: n for m, n in known.items()}),
        review=_review(current, options),
        criteria=criteria, groups=groups, calls=len(current),
        deal_source=(deal_source or "deals.csv") if deals else None, feedback_measured=feedback_measured,
        calibration=_calibration(current, options, criteria))
