"""The score comment a manager reads in the deal's timeline: Russian BB-code, quotes with times, the metrics in
plain words, and a machine-readable marker (call id, scorecard version) that finds the comment again. A score
that follows people's reviews says whose («Проверено: ...») and shows their verdicts."""

from __future__ import annotations

import re
from datetime import datetime

from pipeline.publish.pii import redact
from pipeline.schema import CallResult
from pipeline.support.russian import ROLE_RU, call_time, times

__all__ = ["MARKER", "comment_marker", "has_marker", "render_comment"]

MARKER = "callqa call:"
MAX_EVIDENCE = 2


def comment_marker(call_id: str, scorecard_version: str | None) -> str:
    return f"[I][COLOR=#9ca3af]{MARKER}{call_id} card:{scorecard_version or '-'}[/COLOR][/I]"


def has_marker(text: str, call_id: str) -> bool:
    return re.search(re.escape(MARKER + call_id) + r"(?=\s|\[|$)", text) is not None


def _quote(start: float, role: str, text: str, protect: bool) -> str:
    said = redact(text) if protect else text
    return f"{call_time(start)} {ROLE_RU.get(role, role)}: «{said}»"


def render_comment(result: CallResult, *, protect_personal_data: bool = True) -> str:
    """The comment for one scored call (raises ValueError for a call without a score)."""
    score = result.score
    if score is None:
        raise ValueError(f"{result.call_id} has no score to comment on")
    total = f"{score.total:g}".replace(".", ",")
    lines = [f"[B]Оценка звонка: {total} из 100 — {score.grade} из 5"
             f"{' (нарушение стандарта)' if score.auto_failed else ''}[/B]"]
    facts = []
    if result.metadata.started_at:
        facts.append(datetime.fromisoformat(result.metadata.started_at).strftime("%d.%m.%Y %H:%M"))
    if result.direction:
        facts.append("входящий" if result.direction == "in" else "исходящий")
    minutes, seconds = divmod(round(result.duration_s), 60)
    facts.append(f"{minutes} мин {seconds:02d} с" if minutes else f"{seconds} с")
    if result.metadata.manager_name:
        facts.append(f"менеджер {result.metadata.manager_name}")
    lines.append("Звонок " + ", ".join(facts) + f". Оценочный лист: «{score.title or score.scorecard}».")
    if score.reviewed_by:  # the score follows people's verdicts on some criteria: say whose
        lines.append("Проверено: " + ", ".join(score.reviewed_by))
    for group in score.groups:
        if group.grade is not None:
            lines.append(f"{group.title}: {group.grade} из 5")
    met = [c for c in score.criteria if c.verdict == "met"]
    missed = [c for c in score.criteria if c.verdict == "not_met"]
    uncertain = [c for c in score.criteria if c.verdict == "uncertain"]
    if missed:
        lines += ["", "[B]Что улучшить:[/B]"]
        for criterion in missed:
            detail = criterion.note or (f"ожидалось: {criterion.expected}" if criterion.expected else "")
            if criterion.evidence and criterion.kind == "forbidden":
                detail = "; ".join(_quote(e.start, e.role, e.text, protect_personal_data)
                                   for e in criterion.evidence[:MAX_EVIDENCE])
            if criterion.review and criterion.review.comment:  # the reviewer's word over the machine's
                detail = f"{criterion.review.reviewer_name}: {criterion.review.comment}"
            lines.append(f"✘ {criterion.title}" + (f" — {redact(detail) if protect_personal_data else detail}"
                                                   if detail else ""))
    if uncertain:
        # Not a ✘: the words were nearly heard; a person should listen before anyone is told off.
        lines += ["", "[B]Не удалось надёжно распознать (проверьте по записи):[/B]"]
        for criterion in uncertain:
            quotes = "; ".join(_quote(e.start, e.role, e.text, protect_personal_data)
                               for e in criterion.evidence[:MAX_EVIDENCE])
            lines.append(f"? {criterion.title}" + (f" — похоже: {quotes}" if quotes else ""))
    if met:
        lines += ["", "[B]Выполнено:[/B]"]
        for criterion in met:
            quotes = "; ".join(_quote(e.start, e.role, e.text, protect_personal_data)
                               for e in criterion.evidence[-MAX_EVIDENCE:])
            lines.append(f"✔ {criterion.title}" + (f" — {quotes}" if quotes and criterion.kind == "required" else ""))
    metrics = result.metrics
    if metrics.talk_ratio_manager is not None:
        lines += ["", "[B]Разговор:[/B] "
                  f"менеджер говорил {round(100 * metrics.talk_ratio_manager)} % времени (хорошо — 40–60 %), "
                  f"самый длинный монолог — {metrics.longest_monologue_s.manager or 0:.0f} с, "
                  f"перебивал клиента {times(metrics.interruptions.manager)}, "
                  f"вопросов задал: {metrics.questions.manager}, клиент — {metrics.questions.client}; "
                  f"тишина — {metrics.silence_s:.0f} с."]
    lines += ["", comment_marker(result.call_id, result.scorecard_version)]
    return "\n".join(lines)
