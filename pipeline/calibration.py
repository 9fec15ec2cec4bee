"""How far the automatic verdicts agree with people's: per criterion, over the calls whose verdict on it a person
gave (`CriterionResult.review`, pipeline/reviews.py). Pure: results in, figures out.

For each criterion, the pairs (the machine's verdict now, the person's) of its reviewed calls:

    agreement   share of the pairs where both said met or not_met in which they said the same
    precision   of the calls the machine says met (and the person met or not_met): the share people say met
    recall      of the calls people say met (and the machine met or not_met): the share the machine says met
    kappa       Cohen's kappa of the machine's met/not_met against people's, over the same pairs:
                (p_o - p_e) / (1 - p_e), p_o the agreement, p_e the agreement by chance from each side's shares
    uncertain   how people judged the machine's "uncertain" verdicts (counts of met / not_met / not_applicable),
                apart from the figures above: the machine did not commit
    flagged     kappa below the threshold (`report.kappa_threshold`, default 0.6): the criterion's rule needs work

Kappa is None when no pair has both verdicts met or not_met, and when both sides gave one and the same verdict
in every pair (p_e = 1: perfect agreement, nothing to correct for); neither is flagged, since neither is
disagreement. The machine's verdict is the one the stored result holds now, so a corrected rule (lexicon or
scorecard, after a re-score) is judged against the same reviews again; reviews made of an earlier version of
the criterion's rule are counted in (`rule_changed` says how many).

    calibration = calibrate(load_results(store)[0], kappa_threshold=0.6)
    for row in calibration.flagged: print(row.title, row.kappa)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from pipeline.schema import CallResult

__all__ = ["Calibration", "CriterionCalibration", "calibrate", "cohen_kappa"]

_JUDGED = ("met", "not_met", "not_applicable")  # what a person may say, in the order figures show it


class CriterionCalibration(BaseModel):
    """One criterion's agreement between the machine and people (module docstring: how each figure is made).

    Attributes:
        reviewed: calls with a person's verdict on the criterion (the review that counts, one per call).
        compared: those where both said met or not_met: what agreement, precision, recall and kappa are over.
        both_met, machine_met_person_not, machine_not_person_met, both_not_met: the 2x2 table of those.
        uncertain: person's verdict -> how many of the machine's "uncertain" verdicts people judged so (only
            verdicts people gave, in the order met, not_met, not_applicable).
        disagreements: ids of the calls where the person's verdict is not the machine's (the machine's
            "uncertain" left out), in the order of the results.
        rule_changed: reviews made of an earlier version of the criterion's rule (counted in).
    """

    model_config = ConfigDict(frozen=True)

    criterion: str
    title: str
    reviewed: int
    compared: int
    both_met: int
    machine_met_person_not: int
    machine_not_person_met: int
    both_not_met: int
    agreement: float | None
    precision: float | None
    recall: float | None
    kappa: float | None
    uncertain: dict[str, int]
    disagreements: list[str]
    rule_changed: int
    flagged: bool


class Calibration(BaseModel):
    """The criteria with reviews, in the order the results list them, and the threshold they were held to."""

    model_config = ConfigDict(frozen=True)

    kappa_threshold: float
    calls: int  # reviewed calls
    criteria: list[CriterionCalibration]

    @property
    def flagged(self) -> list[CriterionCalibration]:
        return [row for row in self.criteria if row.flagged]


def cohen_kappa(both_met: int, machine_only: int, person_only: int, both_not: int) -> float | None:
    """Cohen's kappa of a 2x2 table of two raters' met / not_met (None: no pairs, or p_e = 1)."""
    n = both_met + machine_only + person_only + both_not
    if n == 0:
        return None
    observed = (both_met + both_not) / n
    machine_met, person_met = (both_met + machine_only) / n, (both_met + person_only) / n
    chance = machine_met * person_met + (1 - machine_met) * (1 - person_met)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


@dataclass
class _Tally:
    title: str
    reviewed: int = 0
    table: dict[tuple[str, str], int] = field(default_factory=dict)  # (machine, person) -> count
    uncertain: dict[str, int] = field(default_factory=dict)
    disagreements: list[str] = field(default_factory=list)
    rule_changed: int = 0


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def calibrate(results: Iterable[CallResult], *, kappa_threshold: float) -> Calibration:
    """The agreement of the automatic verdicts with people's, per criterion, over the reviewed calls among
    `results` (the rest are passed over).

    Args:
        results: stored results (`CriterionResult.review` holds the person's verdict and the machine's).
        kappa_threshold: a criterion whose kappa is below it is flagged.
    """
    tallies: dict[str, _Tally] = {}
    calls = 0
    for result in results:
        reviewed = [c for c in result.score.criteria if c.review is not None] if result.score else []
        calls += bool(reviewed)
        for criterion in reviewed:
            review = criterion.review
            assert review is not None  # only reviewed criteria are here
            tally = tallies.setdefault(criterion.id, _Tally(title=criterion.title))
            tally.reviewed += 1
            tally.rule_changed += review.rule_changed
            machine, person = review.automatic, review.verdict
            if machine == "uncertain":
                tally.uncertain[person] = tally.uncertain.get(person, 0) + 1
                continue
            if machine != person:
                tally.disagreements.append(result.call_id)
            if machine in ("met", "not_met") and person in ("met", "not_met"):
                tally.table[(machine, person)] = tally.table.get((machine, person), 0) + 1
    rows = []
    for criterion_id, tally in tallies.items():
        both_met, both_not = tally.table.get(("met", "met"), 0), tally.table.get(("not_met", "not_met"), 0)
        machine_only, person_only = tally.table.get(("met", "not_met"), 0), tally.table.get(("not_met", "met"), 0)
        compared = both_met + both_not + machine_only + person_only
        kappa = cohen_kappa(both_met, machine_only, person_only, both_not)
        rows.append(CriterionCalibration(
            criterion=criterion_id, title=tally.title, reviewed=tally.reviewed, compared=compared,
            both_met=both_met, machine_met_person_not=machine_only, machine_not_person_met=person_only,
            both_not_met=both_not, agreement=_share(both_met + both_not, compared),
            precision=_share(both_met, both_met + machine_only), recall=_share(both_met, both_met + person_only),
            kappa=kappa, uncertain={verdict: tally.uncertain[verdict] for verdict in _JUDGED
                                    if verdict in tally.uncertain},
            disagreements=tally.disagreements, rule_changed=tally.rule_changed,
            flagged=kappa is not None and kappa < kappa_threshold))
    return Calibration(kappa_threshold=kappa_threshold, calls=calls, criteria=rows)
