"""Measuring a result against ground truth: word error rates and role attribution.

Used by the tests and benchmarks, and for checking a new model or setting on calls with known transcripts.

Two error rates:
- `normalised_wer`: words compared after lower-casing, ё -> е, punctuation removed and numbers written out in
  words ("180" -> "сто восемьдесят"), so formatting choices are not counted as errors.
- `lemma_wer`: the same, then every word reduced to its dictionary form (pymorphy3), so "двадцати кубов" and
  "двадцать кубов" match: what the lexicons see, since they match on lemmas too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jiwer

from pipeline.schema import Word
from pipeline.text import lemmas, normalise_words

__all__ = ["TruthUtterance", "lemma_wer", "lemmas", "normalise_words", "normalised_wer", "role_errors"]

def _wer(reference: list[str], hypothesis: list[str]) -> float:
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return float(jiwer.wer(" ".join(reference), " ".join(hypothesis) if hypothesis else ""))


def normalised_wer(reference: str, hypothesis: str) -> float:
    return _wer(normalise_words(reference), normalise_words(hypothesis))


def lemma_wer(reference: str, hypothesis: str) -> float:
    return _wer(lemmas(reference), lemmas(hypothesis))


class TruthUtterance(NamedTuple):
    """One scripted utterance: who said what, when (seconds)."""

    role: str
    start: float
    end: float
    text: str


def _roles_over(word: Word, truth: Sequence[TruthUtterance], widen_s: float) -> set[str]:
    return {u.role for u in truth if u.start - widen_s < word.end and word.start < u.end + widen_s}


def role_errors(words: Sequence[Word], truth: Sequence[TruthUtterance], *, tolerance_s: float = 0.3) -> list[Word]:
    """Words whose role disagrees with the truth.

    A word's true role is that of the utterances its span overlaps; where utterances of both roles overlap it
    (an interruption) either role is right. Only a word that overlaps no utterance (Whisper's word times are off
    by a few hundred ms at times) is judged by the utterances within `tolerance_s`, then by the nearest one.
    """
    wrong = []
    for word in words:
        roles = _roles_over(word, truth, 0.0) or _roles_over(word, truth, tolerance_s)
        if not roles and truth:
            nearest = min(truth, key=lambda u: min(abs(u.start - word.end), abs(word.start - u.end)))
            roles = {nearest.role}
        if word.role not in roles:
            wrong.append(word)
    return wrong
