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
from dataclasses import dataclass, field
from typing import NamedTuple

import jiwer

from pipeline.lexicon.text import lemmas, normalise_words
from pipeline.schema import CallResult, CriterionResult, Word

__all__ = ["TruthUtterance", "VerdictComparison", "diarization_error_rate", "lemma_wer", "lemmas", "normalise_words",
           "normalised_wer", "role_errors", "verdict_of"]

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


def verdict_of(criterion: CriterionResult) -> str:
    """What a manager reads for a criterion: met, not_met, uncertain or not_applicable."""
    if getattr(criterion, "verdict", None):
        return str(criterion.verdict)
    if not criterion.applicable:
        return "not_applicable"
    return "met" if criterion.passed else "not_met"


@dataclass
class VerdictComparison:
    """The scorecard's lexicon-based verdicts of calls from the audio against those from their scripts.

    Only required and forbidden criteria are compared: a metric criterion (talk ratio, monologue) is about
    timing, not recognition. A false ✘ is a criterion met in the script and not met from the audio; a false ✔
    the reverse; their shares are of the criteria that apply in the script.
    """

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # (call, criterion, script, audio)
    score_errors: list[float] = field(default_factory=list)

    def add(self, call_id: str, script: CallResult, audio: CallResult) -> None:
        """One call's verdicts; a call the audio gives no score (roles unknown) disagrees on every criterion."""
        assert script.score is not None, call_id
        heard = {criterion.id: verdict_of(criterion) for criterion in (audio.score.criteria if audio.score else ())}
        for criterion in script.score.criteria:
            if criterion.kind in ("required", "forbidden"):
                self.rows.append((call_id, criterion.id, verdict_of(criterion), heard.get(criterion.id, "no_score")))
        self.score_errors.append(abs(script.score.total - (audio.score.total if audio.score else 0.0)))

    def _share(self, rows: list[tuple[str, str, str, str]], test) -> float:
        return sum(1 for row in rows if test(row)) / len(rows) if rows else 0.0

    @property
    def agreement(self) -> float:
        return self._share(self.rows, lambda row: row[2] == row[3])

    @property
    def applicable(self) -> list[tuple[str, str, str, str]]:
        return [row for row in self.rows if row[2] != "not_applicable"]

    @property
    def false_fail(self) -> float:
        return self._share(self.applicable, lambda row: row[2] == "met" and row[3] == "not_met")

    @property
    def false_pass(self) -> float:
        return self._share(self.applicable, lambda row: row[2] == "not_met" and row[3] == "met")

    @property
    def score_mae(self) -> float:
        return sum(self.score_errors) / len(self.score_errors) if self.score_errors else 0.0

    def disagreements(self) -> list[tuple[str, str, str, str]]:
        return [row for row in self.rows if row[2] != row[3]]

    def per_criterion(self) -> dict[str, dict[str, float]]:
        """criterion -> agreement, false ✘ and false ✔ counts, and how many calls it applies to in the script."""
        table: dict[str, dict[str, float]] = {}
        for criterion in dict.fromkeys(row[1] for row in self.rows):
            rows = [row for row in self.rows if row[1] == criterion]
            table[criterion] = {
                "agreement": self._share(rows, lambda row: row[2] == row[3]),
                "false_fail": sum(1 for row in rows if row[2] == "met" and row[3] == "not_met"),
                "false_pass": sum(1 for row in rows if row[2] == "not_met" and row[3] == "met"),
                "applicable": sum(1 for row in rows if row[2] != "not_applicable")}
        return table

    def lines(self) -> list[str]:
        lines = [f"{'criterion':20} agreement  false ✘  false ✔  applies"]
        for criterion, figures in self.per_criterion().items():
            lines.append(f"{criterion:20} {figures['agreement']:9.2f}  {figures['false_fail']:7.0f}  "
                         f"{figures['false_pass']:7.0f}  {figures['applicable']:7.0f}")
        lines.append(f"all: agreement {self.agreement:.3f}, false ✘ {self.false_fail:.3f} and false ✔ "
                     f"{self.false_pass:.3f} of {len(self.applicable)} applicable verdicts; score MAE "
                     f"{self.score_mae:.1f} points over {len(self.score_errors)} calls")
        return lines
