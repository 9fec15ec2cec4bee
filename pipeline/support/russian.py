"""How callqa speaks to its Russian readers (deal comments, scorecard notes, the QA lead's commands, reports):
role names, times in the call, and numbers with the right word form. One home, so every page says it alike.
Also the one fact of Russian that both halves of the analysis need: which words negate."""

from __future__ import annotations

__all__ = ["NEGATIONS", "ROLE_RU", "VERDICT_RU", "call_time", "call_time_tenths", "plural", "times"]

# Words that turn what follows into its opposite: never absorbed or skipped by tolerant matching, never lost when
# a client's turn is heard again.
NEGATIONS = frozenset({"не", "ни", "нет", "без"})

ROLE_RU = {"manager": "менеджер", "client": "клиент", "any": "любая сторона", "unknown": "не определено"}
VERDICT_RU = {"met": "выполнен", "not_met": "не выполнен", "uncertain": "не удалось надёжно распознать",
              "not_applicable": "не применим"}


def call_time(seconds: float) -> str:
    """A moment of the call as MM:SS (whole seconds), as a manager looks it up in the recording."""
    minutes, rest = divmod(int(max(seconds, 0.0)), 60)
    return f"{minutes:02d}:{rest:02d}"


def call_time_tenths(seconds: float) -> str:
    """A moment of the call as MM:SS.s, where tenths matter (a QA lead checking a hit or a turn)."""
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def plural(count: int, one: str, few: str, many: str) -> str:
    """The word form that goes with `count`: plural(1, "звонок", "звонка", "звонков") -> "звонок"."""
    if count % 10 == 1 and count % 100 != 11:
        return one
    if count % 10 in (2, 3, 4) and count % 100 not in (12, 13, 14):
        return few
    return many


def times(count: int | None) -> str:
    """"3 раза", "5 раз"; a dash where the count is unknown."""
    if count is None:
        return "—"
    return f"{count} {plural(count, 'раз', 'раза', 'раз')}"
