"""The supervisor's report: its settings (bands for 1-5 ratings, what counts as a success), deal data, and the
figures it shows. docs/report.md defines each figure."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["FUNNEL_STAGES", "Bands", "Deal", "FunnelStage", "ManagerStats", "ReportOptions", "ReviewCall"]

# The phone funnel of the source article: lead -> qualification -> offer -> after-sale.
FUNNEL_STAGES = ("lead", "qualification", "offer", "aftersale")
FUNNEL_TITLES = {"lead": "Лид", "qualification": "Квалификация", "offer": "Предложение", "aftersale": "Постпродажа"}


class Bands(BaseModel):
    """A 1-5 rating of a raw figure: the lowest value for each of grades 2-5 (below grade 2's: grade 1).

    With `higher_is_better: false` the thresholds are the highest values allowed for each grade instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    thresholds: dict[Literal[2, 3, 4, 5], float]
    higher_is_better: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        values = [self.thresholds[grade] for grade in (2, 3, 4, 5)]
        if values != sorted(values, reverse=not self.higher_is_better):
            raise ValueError("thresholds must improve from grade 2 to grade 5")
        return self

    def grade(self, value: float | None) -> int | None:
        if value is None:
            return None
        for grade in (5, 4, 3, 2):
            limit = self.thresholds[grade]
            if (value >= limit) if self.higher_is_better else (value <= limit):
                return grade
        return 1


def _bands(**thresholds: float) -> Bands:
    return Bands(thresholds={int(k[1:]): v for k, v in thresholds.items()})


class ReportOptions(BaseModel):
    """How raw figures become 1-5 ratings, and what a successful call is. All adjustable in the config file.

    Attributes:
        calls_per_day: calls a manager makes per day of the period.
        duration_min: average call duration in minutes.
        conversion_pct: successful calls as a share of calls.
        successful_per_day: successful calls per day of the period.
        average_check: average amount of a won deal (in the deals' currency).
        repeat_purchases: won deals of returning customers in the period.
        positive_feedback_pct: calls with the client's praise (lexicon feedback/positive) as a share of calls.
        criterion_pass_pct: a scorecard criterion met in this share of the calls where it applies.
        success_criterion: when a call has no deal data, it counts as successful if this scorecard criterion
            passed (default: a next step was agreed).
        review_count: how many calls to list under "listen to first".
        deal_url: the address of a deal, `{deal_id}` replaced (e.g. https://portal.bitrix24.ru/crm/deal/details/{deal_id}/).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    calls_per_day: Bands = _bands(g2=5, g3=10, g4=15, g5=20)
    duration_min: Bands = _bands(g2=1, g3=2, g4=3, g5=4)
    conversion_pct: Bands = _bands(g2=5, g3=10, g4=20, g5=30)
    successful_per_day: Bands = _bands(g2=0.5, g3=1, g4=2, g5=3)
    average_check: Bands = _bands(g2=10_000, g3=30_000, g4=60_000, g5=100_000)
    repeat_purchases: Bands = _bands(g2=1, g3=2, g4=4, g5=6)
    positive_feedback_pct: Bands = _bands(g2=5, g3=10, g4=20, g5=30)
    criterion_pass_pct: Bands = _bands(g2=40, g3=60, g4=75, g5=90)
    success_criterion: str = "next_step"
    review_count: int = Field(10, ge=1)
    deal_url: str | None = None


class Deal(BaseModel):
    """A deal as the report needs it (from Bitrix24, or a deals.csv): amount, outcome, funnel stage times."""

    model_config = ConfigDict(frozen=True)

    deal_id: str
    manager_id: str | None = None
    amount: float | None = None
    currency: str | None = None
    won: bool | None = None  # None: still open
    repeat_customer: bool = False
    stage_entered: dict[str, datetime] = Field({}, description="funnel stage -> when the deal entered it")


class FunnelStage(BaseModel):
    stage: str
    title: str
    deals: int
    conversion_from_previous: float | None
    median_days_in_stage: float | None
    calls: int


class ManagerStats(BaseModel):
    manager_id: str
    name: str
    calls: int
    total_duration_min: float
    average_duration_min: float | None
    successful_calls: int
    conversion_pct: float | None
    average_check: float | None
    repeat_purchases: int
    positive_feedback: int
    average_score: float | None
    group_totals: dict[str, float | None]  # scorecard group id -> mean of the calls' group totals
    talk_ratio: float | None
    longest_monologue_s: float | None
    interruptions: float | None
    questions: float | None
    criterion_pass_pct: dict[str, float | None]
    # Verdicts "не удалось надёжно распознать" over the period's calls: neither met nor failed, counted apart.
    uncertain_verdicts: int = 0
    ratings: dict[str, int | None]
    daily_scores: dict[str, float]  # ISO date -> mean score that day


class ReviewCall(BaseModel):
    call_id: str
    started_at: str | None
    manager: str
    score: float
    grade: int
    auto_failed: list[str]
    failed: list[str]
    deal_id: str | None
    deal_url: str | None
