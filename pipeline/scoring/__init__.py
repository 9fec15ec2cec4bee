"""Scorecards: the file format (`model`) and scoring a call with evidence (`engine`).

    scorecard = load_scorecard("lexicons/scorecards/sales.yaml")
    score = scorecard.score(CallFacts(hits, turns, metrics, duration_s, direction), lexicons)
"""

from pipeline.lexicon import DEFAULT_LEXICONS
from pipeline.scoring.engine import CallFacts, Scorecard, load_scorecard
from pipeline.scoring.model import ScorecardFile

__all__ = ["DEFAULT_SCORECARD", "CallFacts", "Scorecard", "ScorecardFile", "load_scorecard"]

DEFAULT_SCORECARD = DEFAULT_LEXICONS / "scorecards" / "sales.yaml"  # the shipped scorecard
