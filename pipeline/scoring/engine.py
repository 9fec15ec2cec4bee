"""Scoring one call against a scorecard: every criterion with its evidence, the total, the 1-5 grade.

Everything here reads the call's hits, turns and metrics, never the audio, so a QA lead's edit re-scores the
stored history in seconds. Texts a manager reads (expectations, notes) are Russian.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import DefinitionError
from pipeline.lexicon.loader import LexiconSet, content_version
from pipeline.schema import CriterionResult, CriterionReview, Evidence, GroupScore, Hit, Metrics, Score, Turn
from pipeline.scoring.model import (
    Criterion,
    ForbiddenCriterion,
    MetricCriterion,
    RequiredCriterion,
    ScorecardFile,
    Selector,
)
from pipeline.support.russian import ROLE_RU, call_time
from pipeline.support.yamlfile import Problem, YamlDocument, load_yaml, validate

if TYPE_CHECKING:
    from pipeline.reviews import Review

__all__ = ["CallFacts", "Scorecard", "load_scorecard"]

MAX_EVIDENCE = 5


@dataclass(frozen=True)
class CallFacts:
    """What scoring reads of a call."""

    hits: Sequence[Hit]
    turns: Sequence[Turn]
    metrics: Metrics
    duration_s: float
    direction: str | None
    # A selector -> what nearly matched it among the words it looks at (Matcher.near_misses); None: no uncertain
    # verdicts.
    near_misses: Callable[[Selector], list[Hit]] | None = None

    @functools.cached_property
    def hits_by_lexicon(self) -> dict[str, list[Hit]]:
        index: dict[str, list[Hit]] = {}
        for hit in self.hits:
            index.setdefault(hit.lexicon, []).append(hit)
        return index

    @functools.cached_property
    def metric_values(self) -> dict:
        """The metrics as nested dicts, dumped once for all of a scorecard's metric criteria."""
        return self.metrics.model_dump()


def _evidence(hits: Sequence[Hit]) -> list[Evidence]:
    return [Evidence(start=h.start, end=h.end, role=h.role, text=h.text) for h in hits[:MAX_EVIDENCE]]


@dataclass(frozen=True)
class Scorecard:
    """A loaded scorecard: its definition, where it came from, and its content hash."""

    definition: ScorecardFile
    path: Path
    version: str
    document: YamlDocument

    @property
    def id(self) -> str:
        return self.definition.scorecard

    def missing_from(self, lexicons: LexiconSet) -> list[str]:
        """The lexicons (or lexicon/term) this scorecard needs that the set lacks."""
        missing = []
        for selector in self.definition.selectors():
            lexicon = lexicons.lexicons.get(selector.lexicon)
            if lexicon is None:
                missing.append(selector.lexicon)
            elif selector.term and selector.term not in {term.id for term in lexicon.terms}:
                missing.append(f"{selector.lexicon}/{selector.term}")
        return sorted(set(missing))

    def check_against(self, lexicons: LexiconSet) -> None:
        """Raise DefinitionError naming the scorecard's lines that use lexicons or terms the set lacks."""
        problems = []
        for index, criterion in enumerate(self.definition.criteria):
            for name in ("require", "after", "when", "forbid"):
                selector = getattr(criterion, name, None)
                if selector is None:
                    continue
                lexicon = lexicons.lexicons.get(selector.lexicon)
                where = self.document.line_of(("criteria", index, name))
                if lexicon is None:
                    problems.append(Problem(self.path, where, f"criteria[{index}].{name}: lexicon "
                                            f"{selector.lexicon!r} is not in {lexicons.folder}"))
                elif selector.term and selector.term not in {term.id for term in lexicon.terms}:
                    problems.append(Problem(self.path, where, f"criteria[{index}].{name}: lexicon "
                                            f"{selector.lexicon!r} has no term {selector.term!r}"))
        if problems:
            raise DefinitionError(problems)

    def _describe(self, selector: Selector, lexicons: LexiconSet | None) -> str:
        name = selector.lexicon
        if lexicons and selector.lexicon in lexicons.lexicons:
            lexicon = lexicons.lexicons[selector.lexicon]
            name = lexicon.title
            if selector.term:
                term = next((t for t in lexicon.terms if t.id == selector.term), None)
                name = f"{lexicon.title}: {term.title or term.id}" if term else name
        window = f" {selector.within.describe()}" if selector.within else ""
        return f"{ROLE_RU[selector.role]}: «{name}»{window}"

    def score(self, facts: CallFacts, lexicons: LexiconSet | None = None) -> Score:
        """Score one call. Criteria that do not apply (no event to answer, unknown direction, a null metric)
        carry no points either way."""
        return self.total_of([self._criterion(criterion, facts, lexicons) for criterion in self.definition.criteria])

    def total_of(self, results: Sequence[CriterionResult]) -> Score:
        """The score made of these criterion results (in the scorecard's order): the total and its grade, the
        groups, the auto-fails, and who reviewed which. The one place a total is computed, from the machine's
        verdicts (`score`) as from people's (`reviewed`)."""
        applicable = [r for r in results if r.applicable]
        maximum = sum(r.max_points for r in applicable)
        total = round(100.0 * sum(r.points for r in applicable) / maximum, 1) if maximum else 0.0
        auto_fail = {criterion.id for criterion in self.definition.criteria if criterion.auto_fail}
        auto_failed = [r.id for r in results if r.id in auto_fail and r.verdict == "not_met"]
        if auto_failed:
            total = 0.0
        groups = []
        for group_id, title in self.definition.groups.items():
            members = [r for r in applicable if r.group == group_id]
            group_max = sum(r.max_points for r in members)
            group_total = round(100.0 * sum(r.points for r in members) / group_max, 1) if group_max else None
            groups.append(GroupScore(id=group_id, title=title, total=group_total,
                                     grade=None if group_total is None else self.definition.grade_of(group_total)))
        return Score(total=total, grade=self.definition.grade_of(total),
                     passed=not auto_failed and total >= self.definition.pass_score, criteria=list(results),
                     scorecard=self.id, title=self.definition.title, groups=groups, auto_failed=auto_failed,
                     reviewed_by=list(dict.fromkeys(r.review.reviewer_name for r in results if r.review)))

    def reviewed(self, score: Score, reviews: Sequence[Review]) -> Score:
        """`score` (this scorecard's) with people's verdicts in place of the machine's, and its total made again.

        The last review of a criterion in `reviews` counts; reviews of criteria this scorecard no longer has are
        left out. A reviewed criterion keeps its evidence and carries the review (`CriterionResult.review`),
        flagged `rule_changed` when the criterion's rule fingerprint is no longer the one reviewed.
        """
        latest = {review.criterion: review for review in reviews}
        by_id = {criterion.id: criterion for criterion in self.definition.criteria}
        if not latest.keys() & by_id.keys():
            return score
        return self.total_of([_reviewed(result, by_id[result.id], latest[result.id])
                              if result.id in latest and result.id in by_id else result
                              for result in score.criteria])

    def _criterion(self, criterion: Criterion, facts: CallFacts, lexicons: LexiconSet | None) -> CriterionResult:
        common = {"id": criterion.id, "title": criterion.title, "kind": criterion.kind, "group": criterion.group}
        if criterion.direction and criterion.direction != facts.direction:
            note = ("направление звонка неизвестно" if facts.direction is None
                    else f"только для {'входящих' if criterion.direction == 'in' else 'исходящих'} звонков")
            return CriterionResult(**common, passed=True, points=0, max_points=0, applicable=False, note=note,
                                   verdict="not_applicable")
        if isinstance(criterion, MetricCriterion):
            return self._metric(criterion, facts, common)
        if isinstance(criterion, ForbiddenCriterion):
            found = _select(facts, criterion.forbid)
            passed = len(found) <= criterion.max_count
            return CriterionResult(
                **common, passed=passed, points=criterion.weight if passed else 0, max_points=criterion.weight,
                evidence=_evidence(found), value=len(found),
                expected=None if passed else (criterion.expected or
                                              f"не более {criterion.max_count}: "
                                              f"{self._describe(criterion.forbid, lexicons)}"))
        return self._required(criterion, facts, lexicons, common)

    def _metric(self, criterion: MetricCriterion, facts: CallFacts, common: dict) -> CriterionResult:
        node: object = facts.metric_values
        for part in criterion.metric.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return CriterionResult(**common, passed=True, points=0, max_points=0, applicable=False,
                                   note=f"нет значения {criterion.metric}")
        if not isinstance(node, int | float):  # METRIC_PATHS name numeric leaves only; a group cannot be compared
            raise TypeError(f"metric {criterion.metric} is not a number: {node!r}")
        value = node
        passed = (criterion.min is None or value >= criterion.min) and (criterion.max is None or value <= criterion.max)
        bounds = " и ".join(part for part in (f"не меньше {criterion.min:g}" if criterion.min is not None else "",
                                              f"не больше {criterion.max:g}" if criterion.max is not None else "")
                            if part)
        return CriterionResult(**common, passed=passed, points=criterion.weight if passed else 0,
                               max_points=criterion.weight, value=float(value),
                               expected=None if passed else (criterion.expected or f"{criterion.metric}: {bounds}"))

    def _required(self, criterion: RequiredCriterion, facts: CallFacts, lexicons: LexiconSet | None,
                  common: dict) -> CriterionResult:
        expected = criterion.expected or self._describe(criterion.require, lexicons)
        found = _select(facts, criterion.require)
        weight = criterion.weight
        if criterion.when is not None:
            triggers = _select(facts, criterion.when)
            if not triggers:
                return CriterionResult(**common, passed=True, points=0, max_points=0, applicable=False,
                                       note=f"не было события: {self._describe(criterion.when, lexicons)}")
            evidence: list[Hit] = []
            unanswered = []
            for trigger in triggers:
                answer = _answer(trigger, found, facts.turns, criterion.require.role, criterion.within_turns)
                evidence += [trigger] + ([answer] if answer else [])
                if answer is None:
                    unanswered.append(trigger)
            passed = not unanswered
            note = None if passed else "без ответа: " + "; ".join(
                f"{call_time(t.start)} «{t.text}»" for t in unanswered)
            return CriterionResult(**common, passed=passed, points=weight if passed else 0, max_points=weight,
                                   evidence=_evidence(evidence), note=note,
                                   expected=None if passed else expected)
        passed = len(found) >= criterion.min_count
        if not passed and (doubts := self._doubts(criterion.require, facts)):
            return self._uncertain(criterion, doubts, expected, common)
        evidence = list(found)
        note = None
        if passed and criterion.after is not None:
            anchors = _select(facts, criterion.after)
            if not anchors or anchors[0].start > found[0].start:
                passed = False
                note = (f"{call_time(found[0].start)} «{found[0].text}» прозвучало раньше, чем "
                        f"{self._describe(criterion.after, lexicons)}")
            evidence = anchors[:1] + evidence
        return CriterionResult(**common, passed=passed, points=weight if passed else 0, max_points=weight,
                               evidence=_evidence(evidence), note=note, expected=None if passed else expected)

    @staticmethod
    def _doubts(selector: Selector, facts: CallFacts) -> list[tuple[Evidence, str]]:
        """Where a required phrase may have been said and not recognised (Matcher.near_misses), each with why."""
        if facts.near_misses is None:
            return []
        return [(Evidence(start=hit.start, end=hit.end, role=hit.role, text=hit.text), f"похоже на «{hit.phrase}»")
                for hit in _selected(facts.near_misses(selector), selector, facts.duration_s)]

    def _uncertain(self, criterion: RequiredCriterion, doubts: list[tuple[Evidence, str]], expected: str,
                   common: dict) -> CriterionResult:
        """A required criterion not met where its words may have been said and not recognised: "не удалось
        надёжно распознать", left out of the total unless the scorecard counts it as not met."""
        counted = self.definition.uncertain_counts_as_not_met
        note = "не удалось надёжно распознать: " + "; ".join(
            f"{call_time(evidence.start)} «{evidence.text}» ({reason})" for evidence, reason in doubts[:2])
        return CriterionResult(**common, passed=False, points=0, max_points=criterion.weight if counted else 0,
                               applicable=counted, evidence=[evidence for evidence, _ in doubts[:MAX_EVIDENCE]],
                               note=note, expected=expected, verdict="uncertain")


def _reviewed(result: CriterionResult, criterion: Criterion, review: Review) -> CriterionResult:
    """The criterion's result as the reviewer judged it: points as the engine gives them for that verdict (a
    criterion that does not apply carries none), the machine's note only where the reviewer agreed with it."""
    automatic = result.verdict
    assert automatic is not None  # CriterionResult fills it in when it is built
    fingerprint = criterion.fingerprint()
    stamp = CriterionReview(verdict=review.verdict, automatic=automatic, reviewer=review.reviewer,
                            reviewer_name=review.reviewer_name, at=review.at, comment=review.comment,
                            rule=review.rule, rule_changed=review.rule is not None and review.rule != fingerprint)
    note = result.note if review.verdict == automatic else None
    if review.verdict == "not_applicable":
        update: dict = {"passed": True, "points": 0.0, "max_points": 0.0, "applicable": False, "expected": None}
    else:
        met = review.verdict == "met"
        update = {"passed": met, "points": float(criterion.weight) if met else 0.0,
                  "max_points": float(criterion.weight), "applicable": True,
                  "expected": None if met else result.expected or criterion.expected}
    return result.model_copy(update={**update, "note": note, "verdict": review.verdict, "review": stamp})


def _selected(hits: Sequence[Hit], selector: Selector, duration_s: float) -> list[Hit]:
    return [hit for hit in hits
            if (selector.term is None or hit.term == selector.term)
            and (selector.role == "any" or hit.role == selector.role)
            and (selector.within is None or selector.within.contains(hit.start, hit.end, duration_s))]


def _select(facts: CallFacts, selector: Selector) -> list[Hit]:
    return _selected(facts.hits_by_lexicon.get(selector.lexicon, ()), selector, facts.duration_s)


def _answer(trigger: Hit, answers: list[Hit], turns: Sequence[Turn], role: str, within_turns: int | None) -> Hit | None:
    """The first answer after `trigger` within the next `within_turns` turns of `role` (any later one if None)."""
    if trigger.turn is None:
        later = [a for a in answers if a.start >= trigger.start]
        return later[0] if later else None
    allowed_turns = [index for index in range(trigger.turn + 1, len(turns))
                     if role == "any" or turns[index].role == role]
    if within_turns is not None:
        allowed_turns = allowed_turns[:within_turns]
    allowed = set(allowed_turns)
    # The answer may also come later in the very turn that raised the event, when one party does both.
    return next((a for a in answers if a.turn in allowed or (a.turn == trigger.turn and a.start > trigger.end)),
                None)


def load_scorecard(path: str | Path) -> Scorecard:
    """Load and check a scorecard file.

    Raises:
        DefinitionError: with every problem (file, line, what is wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise DefinitionError([Problem(path, 1, "scorecard file not found")])
    document = load_yaml(path)
    definition = validate(document, ScorecardFile)
    return Scorecard(definition=definition, path=path, version=content_version([path]), document=document)
