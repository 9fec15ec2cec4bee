"""The scorecard file format (docs/scorecards.md), as pydantic models.

A scorecard is a list of weighted criteria of three kinds: `required` (a lexicon term said, by a role, maybe in
a time window, after another event, or in answer to one), `forbidden` (a term said more than allowed) and
`metric` (a conversation metric in a range). Their weighted share is the call's total (0-100) and its 1-5
grade, the scale of the managers' evaluation table.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.lexicon.model import ID_PATTERN, Window

__all__ = ["METRIC_PATHS", "Criterion", "ForbiddenCriterion", "MetricCriterion", "RequiredCriterion",
           "ScorecardFile", "Selector"]

METRIC_PATHS = (
    "talk_ratio_manager", "manager_talk_s", "client_talk_s", "total_talk_s", "silence_s", "long_silences",
    "overlap_s", "longest_monologue_s.manager", "longest_monologue_s.client", "interruptions.manager",
    "interruptions.client", "speech_rate_wpm.manager", "speech_rate_wpm.client", "questions.manager",
    "questions.client",
)
MetricPath = Literal[METRIC_PATHS]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Selector(_Strict):
    """Which hits count: a lexicon, optionally one of its terms, said by a role, optionally in a time window."""

    lexicon: str = Field(pattern=ID_PATTERN)
    term: str | None = Field(None, pattern=ID_PATTERN, description="default: any term of the lexicon")
    role: Literal["manager", "client", "any"] = "any"
    within: Window | None = None


# What a criterion holds besides its rule: what people read, and what its verdict is worth in the total.
_NOT_THE_RULE = {"title", "description", "expected", "group", "weight", "auto_fail"}


class _CriterionBase(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(description="what the manager reads (Russian)")
    description: str | None = None
    group: str | None = Field(None, description="a key of the scorecard's `groups`")
    weight: float = Field(gt=0, description="points when passed")
    auto_fail: bool = Field(False, description="failing it sets the call's total to 0")
    direction: Literal["in", "out"] | None = Field(
        None, description="applies only to incoming or outgoing calls (not when the direction is unknown)")
    expected: str | None = Field(None, description="what to tell the manager when it fails (Russian)")

    def fingerprint(self) -> str:
        """A short stable fingerprint of the criterion's rule: what decides its verdict (12 hex digits).

        The first 12 hex digits of the SHA-256 of its canonical JSON (sorted keys, values left at their defaults
        omitted), without the texts people read and the scoring around the verdict (`_NOT_THE_RULE`): a review
        stores it, and a later edit of the rule (another lexicon term, a time window, a bound) shows as a
        different fingerprint, while a retitled or reweighted criterion keeps its reviews unflagged.

            criterion.fingerprint()  # "3f9a0c1b2d4e"
        """
        rule = self.model_dump(mode="json", exclude_defaults=True, exclude=_NOT_THE_RULE)
        canonical = json.dumps(rule, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class RequiredCriterion(_CriterionBase):
    kind: Literal["required"]
    require: Selector
    min_count: int = Field(1, ge=1)
    after: Selector | None = Field(None, description="the first required hit must come after the first of these")
    when: Selector | None = Field(None, description="applies only when this happens; then each must be answered")
    within_turns: int | None = Field(None, ge=1, description="with `when`: answered within the next N turns of "
                                                             "the required role")

    @model_validator(mode="after")
    def _turns_need_when(self) -> RequiredCriterion:
        if self.within_turns is not None and self.when is None:
            raise ValueError("within_turns needs `when` (the event to answer)")
        return self


class ForbiddenCriterion(_CriterionBase):
    kind: Literal["forbidden"]
    forbid: Selector
    max_count: int = Field(0, ge=0, description="hits allowed before the criterion fails")


class MetricCriterion(_CriterionBase):
    kind: Literal["metric"]
    metric: MetricPath
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> MetricCriterion:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


Criterion = Annotated[RequiredCriterion | ForbiddenCriterion | MetricCriterion, Field(discriminator="kind")]

DEFAULT_GRADES: dict[Literal[2, 3, 4, 5], float] = {5: 90.0, 4: 75.0, 3: 60.0, 2: 40.0}


class ScorecardFile(_Strict):
    scorecard: str = Field(pattern=ID_PATTERN)
    title: str
    description: str | None = None
    pass_score: float = Field(60.0, ge=0, le=100, description="the lowest total that passes")
    grades: dict[Literal[2, 3, 4, 5], float] = Field(
        DEFAULT_GRADES, description="the lowest total for each grade; below grade 2's is grade 1")
    groups: dict[str, str] = Field({}, description="group id -> title (Russian), e.g. the rows of the managers' "
                                                   "evaluation table")
    criteria: list[Criterion] = Field(min_length=1)
    uncertain_counts_as_not_met: bool = Field(
        False, description="an uncertain verdict (what the criterion needs was nearly heard, not recognised "
                           "reliably) counts as not met in the total; default false: it is left out, like a "
                           "criterion that does not apply")

    @model_validator(mode="after")
    def _consistent(self) -> ScorecardFile:
        ids = [criterion.id for criterion in self.criteria]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate criterion ids: {', '.join(duplicates)}")
        unknown = sorted({c.group for c in self.criteria if c.group and c.group not in self.groups})
        if unknown:
            raise ValueError(f"groups used but not defined in `groups`: {', '.join(unknown)}")
        thresholds = [self.grades.get(grade, DEFAULT_GRADES[grade]) for grade in (2, 3, 4, 5)]
        if thresholds != sorted(thresholds):
            raise ValueError("grade thresholds must rise from grade 2 to grade 5")
        return self

    def grade_of(self, total: float) -> int:
        for grade in (5, 4, 3, 2):
            if total >= self.grades.get(grade, DEFAULT_GRADES[grade]):
                return grade
        return 1

    def selectors(self) -> list[Selector]:
        found = []
        for criterion in self.criteria:
            for name in ("require", "after", "when", "forbid"):
                selector = getattr(criterion, name, None)
                if selector is not None:
                    found.append(selector)
        return found
