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

from pipeline.lexicon.text import lemmas, normalise_words
from pipeline.schema import Word

__all__ = ["TruthUtterance", "diarization_error_rate", "lemma_wer", "lemmas", "normalise_words", "normalised_wer",
           "role_errors"]

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


def diarization_error_rate(reference: Sequence[tuple[str, float, float]],
                           hypothesis: Sequence[tuple[str, float, float]], *, collar_s: float = 0.25,
                           frame_s: float = 0.01) -> float:
    """DER = (missed + false alarm + confusion) / reference speech, on 10 ms frames, with the hypothesis's
    speakers mapped to the reference's in the best way, and `collar_s` around reference boundaries not scored
    (the usual practice: boundaries are uncertain even for people).

    Args:
        reference, hypothesis: (speaker, start, end) stretches of speech; one speaker per stretch, overlaps
            allowed.
    """
    import itertools

    import numpy as np

    end = max([e for _, _, e in [*reference, *hypothesis]] + [0.0])
    frames = int(np.ceil(end / frame_s)) + 1
    ref_speakers = sorted({s for s, _, _ in reference})
    hyp_speakers = sorted({s for s, _, _ in hypothesis})
    ref = np.zeros((len(ref_speakers), frames), bool)
    hyp = np.zeros((len(hyp_speakers), frames), bool)
    scored = np.ones(frames, bool)
    for speaker, start, stop in reference:
        ref[ref_speakers.index(speaker), int(start / frame_s): int(stop / frame_s)] = True
        for boundary in (start, stop):
            scored[max(0, int((boundary - collar_s) / frame_s)): int((boundary + collar_s) / frame_s)] = False
    for speaker, start, stop in hypothesis:
        hyp[hyp_speakers.index(speaker), int(start / frame_s): int(stop / frame_s)] = True
    ref, hyp = ref[:, scored], hyp[:, scored]
    total = ref.any(axis=0).sum()
    if total == 0:
        return 0.0
    best = None
    padded = hyp_speakers + [None] * max(0, len(ref_speakers) - len(hyp_speakers))
    for mapping in itertools.permutations(range(len(padded)), len(ref_speakers)):
        mapped = np.zeros_like(ref)
        for ref_index, hyp_index in enumerate(mapping):
            if hyp_index < len(hyp_speakers):
                mapped[ref_index] = hyp[hyp_index]
        ref_any, hyp_any = ref.any(axis=0), hyp.any(axis=0)
        missed = (ref_any & ~hyp_any).sum()
        false_alarm = (hyp_any & ~ref_any).sum()
        both = ref_any & hyp_any
        confusion = (both & ~(ref & mapped).any(axis=0)).sum()
        error = (missed + false_alarm + confusion) / total
        best = error if best is None else min(best, error)
    return float(best)
