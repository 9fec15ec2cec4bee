"""The report's figures from stored results and deals: pure functions, so they are checked by hand in tests."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from pipeline.report.model import (
    FUNNEL_STAGES,
    FUNNEL_TITLES,
    Deal,
    FunnelStage,
    ManagerStats,
    ReportOptions,
    ReviewCall,
)
from pipeline.schema import CallResult

__all__ = ["Report", "build_report", "call_time", "manager_of"]

UNKNOWN_MANAGER = ("unknown", "Не указан")


class Report(BaseModel):
    since: datetime
    until: datetime
    previous_since: datetime
    generated_at: datetime
    managers: list[ManagerStats]
    previous: dict[str, ManagerStats]
    funnel: list[FunnelStage]
    review: list[ReviewCall]
    criteria: list[tuple[str, str]]  # (id, title) in scorecard order
    groups: list[tuple[str, str]]
    calls: int
    has_deals: bool


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


def _successful(result: CallResult, deals: dict[str, Deal], options: ReportOptions) -> bool:
    deal = deals.get(result.metadata.deal_id or "")
    if deal is not None:
        return bool(deal.won)
    if result.score is None:
        return False
    return any(c.id == options.success_criterion and c.applicable and c.passed for c in result.score.criteria)


def _positive(result: CallResult) -> bool:
    return any(hit.lexicon == "feedback" and hit.term == "positive" and hit.role == "client" for hit in result.hits)


def _manager_stats(manager_id: str, name: str, calls: list[CallResult], deals: dict[str, Deal], days: float,
                   options: ReportOptions) -> ManagerStats:
    count = len(calls)
    total_min = sum(result.duration_s for result in calls) / 60
    successful = sum(_successful(result, deals, options) for result in calls)
    won = {deal.deal_id: deal for deal in (deals.get(r.metadata.deal_id or "") for r in calls)
           if deal is not None and deal.won}
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
        repeat_purchases=sum(deal.repeat_customer for deal in won.values()),
        positive_feedback=sum(_positive(result) for result in calls),
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
        "repeat_purchases": options.repeat_purchases.grade(stats.repeat_purchases) if won else None,
        "positive_feedback": options.positive_feedback_pct.grade(100 * stats.positive_feedback / count
                                                                 if count else None),
    }
    ratings.update({f"group:{group}": options.criterion_pass_pct.grade(total)
                    for group, total in stats.group_totals.items()})
    ratings.update({f"criterion:{cid}": options.criterion_pass_pct.grade(pct)
                    for cid, pct in stats.criterion_pass_pct.items()})
    return stats.model_copy(update={"ratings": ratings})


def _per_manager(calls: Sequence[CallResult], deals: dict[str, Deal], days: float, options: ReportOptions,
                 known: dict[str, str]) -> dict[str, ManagerStats]:
    grouped: dict[str, list[CallResult]] = defaultdict(list)
    names = dict(known)
    for result in calls:
        manager_id, name = manager_of(result)
        grouped[manager_id].append(result)
        names.setdefault(manager_id, name)
    # A manager known from another period appears with no calls (zeros), not silently missing.
    return {manager_id: _manager_stats(manager_id, names[manager_id], grouped.get(manager_id, []), deals, days,
                                       options)
            for manager_id in sorted(names, key=lambda m: names[m])}


def _funnel(calls: Sequence[CallResult], deals: dict[str, Deal]) -> list[FunnelStage]:
    involved = [deals[d] for d in {r.metadata.deal_id for r in calls if r.metadata.deal_id} if d in deals]
    stages = []
    previous_count = None
    for index, stage in enumerate(FUNNEL_STAGES):
        reached = [deal for deal in involved if stage in deal.stage_entered]
        following = FUNNEL_STAGES[index + 1] if index + 1 < len(FUNNEL_STAGES) else None
        durations = [(deal.stage_entered[following] - deal.stage_entered[stage]).total_seconds() / 86400
                     for deal in reached if following and following in deal.stage_entered]
        in_stage_calls = 0
        for result in calls:
            deal = deals.get(result.metadata.deal_id or "")
            if deal is None or stage not in deal.stage_entered:
                continue
            moment = call_time(result)
            ends = deal.stage_entered.get(following) if following else None
            if deal.stage_entered[stage] <= moment and (ends is None or moment < ends):
                in_stage_calls += 1
        stages.append(FunnelStage(
            stage=stage, title=FUNNEL_TITLES[stage], deals=len(reached),
            conversion_from_previous=(round(100 * len(reached) / previous_count, 1)
                                      if previous_count else None),
            median_days_in_stage=round(statistics.median(durations), 2) if durations else None,
            calls=in_stage_calls))
        previous_count = len(reached)
    return stages


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


def build_report(results: Sequence[CallResult], deals: dict[str, Deal], *, since: datetime, until: datetime,
                 options: ReportOptions, criteria: list[tuple[str, str]], groups: list[tuple[str, str]],
                 now: datetime | None = None) -> Report:
    """The report for calls that started in [since, until), with the previous period of the same length.

    Args:
        results: stored results (any period; filtered here).
        deals: deal data by deal id (empty without a CRM).
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
        managers=list(_per_manager(current, deals, days, options, known).values()),
        previous=_per_manager(earlier, deals, days, options, known),
        funnel=_funnel(current, deals),
        review=_review(current, options),
        criteria=criteria, groups=groups, calls=len(current), has_deals=bool(deals))
