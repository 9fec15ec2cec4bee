"""Lexicon hits and the score for one analysed call: the stage after metrics, and all that re-scoring redoes.

`ScoringSetup.load` reads and checks the lexicons and the scorecard once, before any call is touched;
`apply_scoring` then fills a result's `hits`, `score` and versions from its words, turns and metrics alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.lexicon import LexiconSet, load_lexicons
from pipeline.metrics import MetricsOptions
from pipeline.roles import RoleOptions, redetect_roles
from pipeline.schema import CallResult
from pipeline.scoring.engine import CallFacts, Scorecard, load_scorecard

if TYPE_CHECKING:
    from pipeline.settings import Settings

__all__ = ["DEFAULT_LEXICONS", "DEFAULT_SCORECARD", "SCORE_WARNING", "ScoringSetup", "apply_scoring"]

DEFAULT_LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"
DEFAULT_SCORECARD = DEFAULT_LEXICONS / "scorecards" / "sales.yaml"
# Every warning scoring adds starts so, and re-scoring drops the old ones before adding its own.
SCORE_WARNING = "score not computed: "


@dataclass(frozen=True)
class ScoringSetup:
    """What scoring a call needs; `roles`, `metrics` and `turn_max_pause_s` serve re-detecting a stored mono
    call's roles when the lexicons' cues changed (roles.redetect_roles)."""

    lexicons: LexiconSet | None
    scorecard: Scorecard | None
    missing: tuple[str, ...] = ()  # what the scorecard needs that the lexicons lack (score null, with a warning)
    roles: RoleOptions = field(default_factory=RoleOptions)
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    turn_max_pause_s: float = 2.0

    @classmethod
    def load(cls, lexicons: str | Path | None = None, scorecard: str | Path | None = None, *,
             score: bool = True, settings: Settings | None = None) -> ScoringSetup:
        """Load the lexicon folder and the scorecard (defaults: the shipped ones).

        A scorecard named explicitly must find every lexicon it uses (else DefinitionError, before any call);
        the default scorecard with a folder that lacks some only leaves `score` null with a warning, so a QA
        lead's own folder still yields its hits.

        Raises:
            DefinitionError: a lexicon file or the scorecard is invalid (every problem with file and line).
        """
        lexicon_set = load_lexicons(lexicons or DEFAULT_LEXICONS)
        context = {} if settings is None else {"roles": settings.roles, "metrics": settings.metrics,
                                               "turn_max_pause_s": settings.turn_max_pause_s}
        if not score:
            return cls(lexicons=lexicon_set, scorecard=None, **context)
        loaded = load_scorecard(scorecard or DEFAULT_SCORECARD)
        if scorecard is not None:
            loaded.check_against(lexicon_set)
        return cls(lexicons=lexicon_set, scorecard=loaded, missing=tuple(loaded.missing_from(lexicon_set)),
                   **context)


def apply_scoring(result: CallResult, setup: ScoringSetup) -> CallResult:
    """The same result with `hits`, `score`, `lexicon_version` and `scorecard_version` (re)computed; a diarized
    mono call's roles are found again first, from the lexicons' role cues."""
    if setup.lexicons is not None:
        result = redetect_roles(result, setup.lexicons, options=setup.roles, metrics=setup.metrics,
                                turn_max_pause_s=setup.turn_max_pause_s)
    warnings = [warning for warning in result.warnings if not warning.startswith(SCORE_WARNING)]
    hits = []
    if setup.lexicons is not None:
        hits = setup.lexicons.matcher.find_hits(result.words, result.turns, result.duration_s)
    score = None
    scorecard = setup.scorecard
    if scorecard is not None:
        roles_known = bool(result.words) and all(word.role != "unknown" for word in result.words)
        if setup.missing:
            warnings.append(f"{SCORE_WARNING}scorecard {scorecard.id!r} needs lexicons missing from "
                            f"{setup.lexicons.folder}: {', '.join(setup.missing)}")
        elif not result.words:
            warnings.append(f"{SCORE_WARNING}no speech")
        elif not roles_known:
            warnings.append(f"{SCORE_WARNING}manager and client are not known in this call")
        else:
            facts = CallFacts(hits=hits, turns=result.turns, metrics=result.metrics, duration_s=result.duration_s,
                              direction=result.direction)
            score = scorecard.score(facts, setup.lexicons)
    return result.model_copy(update={
        "hits": hits,
        "score": score,
        "lexicon_version": setup.lexicons.version if setup.lexicons else None,
        "scorecard_version": scorecard.version if scorecard and score is not None else None,
        "warnings": warnings,
    })
