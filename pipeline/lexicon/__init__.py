"""Lexicons QA leads edit: the file format (`model`), loading a folder (`loader`), matching calls (`matcher`),
editing them from the workbench (`edit`: try a phrase, preview an edit on stored calls, save it with history).

    lexicons = load_lexicons("lexicons")          # refuses a broken folder with file:line for each problem
    hits = lexicons.matcher.find_hits(result.words, result.turns, result.duration_s)
"""

from pathlib import Path

from pipeline.lexicon.loader import ExampleOutcome, LexiconSet, content_version, load_lexicons, run_examples
from pipeline.lexicon.matcher import Matcher
from pipeline.lexicon.model import LexiconFile, Term, Window

__all__ = ["DEFAULT_LEXICONS", "ExampleOutcome", "LexiconFile", "LexiconSet", "Matcher", "Term", "Window",
           "content_version", "load_lexicons", "run_examples"]

DEFAULT_LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"  # the shipped lexicons
