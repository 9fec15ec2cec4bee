"""The supervisor's report: its settings (bands for 1-5 ratings, what counts as a success), deal data, and the
figures it shows. docs/report.md defines each figure."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CSV_FUNNEL", "FUNNEL_STAGES", "Bands", "CrmSnapshot", "Deal", "Funnel", "FunnelStage", "FunnelView",
           "ManagerFunnel", "ManagerStats", "ReportOptions", "ReviewCall", "Stage", "StageMove"]

# The phone funnel of the source article: lead -> qualification -> offer -> after-sale (a deals CSV's stages).
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
        won_within_days: with CRM data, a call is successful when its deal (or lead) was won within this many
            days after the call.
        review_count: how many calls to list under "listen to first".
        deal_url: the address of a deal, `{deal_id}` replaced (e.g. https://portal.bitrix24.ru/crm/deal/details/{deal_id}/).
        kappa_threshold: a criterion whose automatic verdicts agree with people's reviews with a Cohen's kappa
            below this is flagged (pipeline/calibration.py).
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
    won_within_days: float = Field(30, gt=0)
    review_count: int = Field(10, ge=1)
    deal_url: str | None = None
    kappa_threshold: float = Field(0.6, ge=-1, le=1)


StageSemantic = Literal["process", "won", "lost"]


class Stage(BaseModel):
    """A stage of a funnel (a deal stage or a lead status), with its place and meaning."""

    model_config = ConfigDict(frozen=True)

    id: str  # the CRM's own id: "NEW", "C1:WON", "CONVERTED"
    name: str
    sort: int = 0
    semantic: StageSemantic = "process"


class Funnel(BaseModel):
    """A deal funnel (Bitrix24 calls it a category; "0" is the default one) or the lead statuses."""

    model_config = ConfigDict(frozen=True)

    id: str  # "0", "1", ... for deals; "lead" for leads; "phone" for a deals CSV
    name: str
    kind: Literal["deal", "lead"] = "deal"
    stages: list[Stage]

    @property
    def path(self) -> list[Stage]:
        """The stages a deal walks through to a win, in order (lost stages are off the path)."""
        return sorted((s for s in self.stages if s.semantic != "lost"), key=lambda s: (s.semantic == "won", s.sort))


# A deals CSV has no funnel of its own: its four columns are the source article's phone funnel.
CSV_FUNNEL = Funnel(id="phone", name="Телефонная воронка",
                    stages=[Stage(id=stage, name=FUNNEL_TITLES[stage], sort=index)
                            for index, stage in enumerate(FUNNEL_STAGES)])


class StageMove(BaseModel):
    """The deal entered `stage_id` at `at` (a row of the CRM's stage history)."""

    model_config = ConfigDict(frozen=True)

    stage_id: str
    at: datetime


class Deal(BaseModel):
    """A deal or a lead as the report needs it (from Bitrix24, or a deals.csv): amount, outcome, stage history."""

    model_config = ConfigDict(frozen=True)

    deal_id: str  # a lead's is "lead:<id>", so deals and leads share one table
    kind: Literal["deal", "lead"] = "deal"
    manager_id: str | None = None
    amount: float | None = None
    currency: str | None = None
    won: bool | None = None  # None: still open
    won_at: datetime | None = Field(None, description="when it entered a won stage (None: not won, or not known)")
    repeat_customer: bool = False
    funnel_id: str | None = None  # None: the deals CSV's phone funnel
    stage_id: str | None = None  # where it stands now
    created_at: datetime | None = None
    contact_id: str | None = None
    company_id: str | None = None
    moves: list[StageMove] = Field([], description="the stages it entered, oldest first")

    @property
    def stage_entered(self) -> dict[str, datetime]:
        """Each stage it entered -> when it first did."""
        entered: dict[str, datetime] = {}
        for move in self.moves:
            entered.setdefault(move.stage_id, move.at)
        return entered

    def stage_at(self, moment: datetime) -> str | None:
        """The stage it stood in at `moment` (None: not created yet, or no history)."""
        current = None
        for move in self.moves:
            if move.at > moment:
                break
            current = move.stage_id
        return current


class CrmSnapshot(BaseModel):
    """What a run read from the CRM (`crm/<run_id>.json` in the artifact store): the funnels with their stages,
    the deals and leads of the run's calls and the managers' deals of the period, with their stage histories."""

    model_config = ConfigDict(populate_by_name=True)

    schema_id: Literal["callqa.crm/1"] = Field("callqa.crm/1", alias="schema")
    portal: str
    run_id: str
    read_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    funnels: list[Funnel]
    deals: list[Deal]
    warnings: list[str] = []


class FunnelStage(BaseModel):
    stage: str
    title: str
    deals: int
    conversion_from_previous: float | None
    median_days_in_stage: float | None
    calls: int
    average_amount: float | None = None
    semantic: StageSemantic | Literal["unknown"] = "process"


class ManagerFunnel(BaseModel):
    """One manager's deals in one funnel: how many reached each stage of its path, and the share won."""

    manager: str
    reached: list[int]
    won_pct: float | None


class FunnelView(BaseModel):
    funnel_id: str
    name: str
    stages: list[FunnelStage]  # the path in order, then lost stages, then stages the funnel does not know
    managers: list[ManagerFunnel]


class ManagerStats(BaseModel):
    manager_id: str
    name: str
    calls: int
    total_duration_min: float
    average_duration_min: float | None
    successful_calls: int
    conversion_pct: float | None
    average_check: float | None
    repeat_purchases: int | None  # None: no deal data
    positive_feedback: int | None  # None: no feedback lexicon heard it
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
