"""Writing the report: one self-contained `report.html` (Russian labels, inline SVG charts, sortable tables) and
CSV files of the same tables beside it (UTF-8 with a BOM and ";" between fields, as Excel opens them in Russia)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import jinja2

from pipeline.report.charts import bar_chart, line_chart
from pipeline.report.compute import Report
from pipeline.report.model import ManagerStats
from pipeline.support.fileio import write_text_atomic

__all__ = ["NOTES", "render_report_html", "write_report"]


@dataclass(frozen=True)
class Column:
    key: str  # a ManagerStats attribute, or "group:<id>"
    title: str
    rating: str | None  # key in ManagerStats.ratings
    digits: int
    unit: str = ""
    scale: float = 1.0
    higher_is_better: bool = True
    note: str = ""


def _columns(report: Report) -> list[Column]:
    columns = [
        Column("calls", "Количество звонков", "calls", 0, note="звонков за период; оценка по звонкам в день"),
        Column("average_duration_min", "Продолжительность звонков", "duration", 1, " мин", note="средняя"),
        Column("successful_calls", "Количество успешных звонков", "successful", 0),
        Column("conversion_pct", "Конверсия звонков", "conversion", 1, " %"),
        Column("average_check", "Средний чек", "average_check", 0, " ₽"),
        Column("repeat_purchases", "Повторные покупки", "repeat_purchases", 0),
        Column("positive_feedback", "Положительные отзывы", "positive_feedback", 0),
    ]
    columns += [Column(f"group:{group_id}", title, f"group:{group_id}", 1, " %") for group_id, title in report.groups]
    columns += [
        Column("average_score", "Средняя оценка звонка", None, 1),
        Column("talk_ratio", "Доля речи менеджера", None, 0, " %", 100.0, note="рекомендуется 40–60 %"),
        Column("longest_monologue_s", "Самый длинный монолог", None, 0, " с", higher_is_better=False,
               note="в среднем на звонок"),
        Column("interruptions", "Перебивания", None, 1, higher_is_better=False, note="в среднем на звонок"),
        Column("questions", "Вопросы", None, 1, note="в среднем на звонок"),
        Column("uncertain_verdicts", "Не распознано надёжно", None, 0, higher_is_better=False,
               note="критериев за период: не выполнено и не нарушено, проверьте по записи"),
    ]
    return columns


NO_DATA = "нет данных"  # a figure whose source is missing: never shown as a 0 or a worst grade


def fmt(value: float | None, digits: int = 1) -> str:
    """Russian number format: a decimal comma and thin spaces between thousands; "—" for no value."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}".replace(",", "\u2009").replace(".", ",")
    return text


def _value(stats: ManagerStats | None, column: Column) -> float | None:
    if stats is None:
        return None
    if column.key.startswith("group:"):
        return stats.group_totals.get(column.key.split(":", 1)[1])
    value = getattr(stats, column.key)
    return None if value is None else value * column.scale


# Figures that need a source beyond the calls (the CRM, a feedback lexicon): without it they have no data.
_NEEDS_SOURCE = {"average_check", "repeat_purchases", "positive_feedback"}


def _rows(report: Report, columns: list[Column]) -> list[dict]:
    rows = []
    for stats in report.managers:
        previous = report.previous.get(stats.manager_id)
        cells = []
        for column in columns:
            value, before = _value(stats, column), _value(previous, column)
            change, change_class = "", ""
            if value is not None and before is not None and round(value - before, column.digits) != 0:
                delta = value - before
                better = (delta > 0) == column.higher_is_better
                change = ("▲ +" if delta > 0 else "▼ −") + fmt(abs(delta), column.digits)
                change_class = "up" if better else "down"
            text = fmt(value, column.digits) + column.unit if value is not None else (
                NO_DATA if column.key in _NEEDS_SOURCE else "—")
            cells.append({"text": text,
                          "sort": -1e18 if value is None else value,
                          "grade": stats.ratings.get(column.rating) if column.rating else None,
                          "change": change, "change_class": change_class})
        rows.append({"name": stats.name, "manager_id": stats.manager_id, "cells": cells})
    return rows


NOTES = [
    "Звонки относятся к периоду по времени начала (из АТС или Битрикс24); звонки без времени — по времени анализа.",
    "Количество звонков и их продолжительность — по записям, прошедшим анализ; продолжительность — длина записи.",
    "Успешный звонок: сделка (или лид) звонка выиграна в течение заданного числа дней после звонка (по умолчанию "
    "30, настраивается: report.won_within_days); если данных о сделке нет — в звонке выполнен критерий скрипта "
    "«следующий шаг» (report.success_criterion). Конверсия — доля успешных звонков.",
    "Средний чек — средняя сумма выигранных сделок, по которым были звонки менеджера за период; повторные "
    "покупки — сколько из этих сделок с повторными клиентами.",
    "Положительные отзывы — звонки, где клиент похвалил (словарь feedback, термин positive).",
    "Качество общения и соблюдение стандартов — средняя доля баллов группы критериев оценочного листа по звонкам "
    "менеджера. Оценка звонка 0–100 — по оценочному листу с весами критериев (docs/scorecards.md).",
    "Оценки 1–5 по сырым показателям — по настраиваемым порогам (docs/report.md): звонков в день 5/10/15/20, "
    "средняя длительность 1/2/3/4 мин, успешных звонков в день 0,5/1/2/3, конверсия 5/10/20/30 %, средний чек "
    "10/30/60/100 тыс., повторных покупок 1/2/4/6, положительных отзывов 5/10/20/30 % звонков; доли и критерии — "
    "40/60/75/90 % для оценок 2/3/4/5.",
    "Доля речи менеджера — его время речи к сумме времени речи сторон, в среднем по звонкам; монолог — самый "
    "длинный отрезок речи менеджера без слов клиента; перебивания — сколько раз менеджер начал говорить, пока "
    "говорил клиент (docs/metrics.md).",
    "Изменение — разница с предыдущим периодом той же длины; зелёным — к лучшему.",
    "Воронка — по каждой воронке CRM (или лид → квалификация → предложение → постпродажа из файла сделок): сделки "
    "со звонками за период и сделки, открытые менеджерами за период; сделка дошла до этапа, если вошла в него или "
    "в более поздний; конверсия — доля дошедших до этапа от дошедших до предыдущего; время на этапе — медиана от "
    "входа на этап до следующего перехода; звонки на этапе — сделанные, пока сделка была на нём; проигранные и "
    "неизвестные воронке этапы — отдельными строками.",
    "Прослушать в первую очередь: звонки с нарушением (грубость обнуляет оценку), затем с самыми низкими оценками.",
    "Оценка звонка учитывает проверку людьми: вердикт проверяющего по критерию заменяет автоматический. Согласие с "
    "проверяющими — по критериям, которые проверяли: доля звонков, где автоматическое «выполнен / не выполнен» "
    "совпало с оценкой человека, и каппа Коэна; ниже порога (report.kappa_threshold, по умолчанию 0,6) — "
    "отмечено. «Не удалось надёжно распознать» в согласие не входит.",
]


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerows(rows)
    return "\ufeff" + buffer.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else f"{value:g}".replace(".", ",")


def render_report_html(report: Report, *, call_url: str | None = None, manager_url: str | None = None) -> str:
    """The report as one self-contained HTML page. `call_url` (e.g. "/calls/{call_id}") makes each call a link
    to its page, `manager_url` (e.g. "/calls?manager={manager_id}") each manager's row a link to their calls: the
    workbench serves the report so."""
    columns = _columns(report)
    active = [stats for stats in report.managers if stats.calls]
    scores = [s.average_score for s in active if s.average_score is not None]
    charts = {
        "talk_ratio": bar_chart([(s.name, None if s.talk_ratio is None else round(100 * s.talk_ratio))
                                 for s in active], maximum=100, unit=" %", band=(40, 60),
                                title="Доля речи менеджера (зелёным — 40–60 %)"),
        "score": bar_chart([(s.name, s.average_score) for s in active], maximum=100,
                           title="Средняя оценка звонка (0–100)"),
        "trend": line_chart({s.name: list(s.daily_scores.items()) for s in active if s.daily_scores},
                            title="Оценка звонков по дням"),
    }
    funnel_charts = [bar_chart([(stage.title, stage.deals) for stage in view.stages],
                               maximum=max([stage.deals for stage in view.stages] + [1]),
                               title=f"{view.name}: сделок на этапе") for view in report.funnels]
    environment = jinja2.Environment(loader=jinja2.PackageLoader("pipeline.report", "templates"),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]))
    return environment.get_template("report.html.j2").render(
        report=report, columns=columns, rows=_rows(report, columns), active=active, charts=charts, notes=NOTES,
        funnel_charts=funnel_charts, no_data=NO_DATA,
        fmt=fmt, average_score=sum(scores) / len(scores) if scores else None,
        period=f"{report.since:%d.%m.%Y} – {report.until - timedelta(seconds=1):%d.%m.%Y}",
        previous_period=f"{report.previous_since:%d.%m.%Y} – {report.since - timedelta(seconds=1):%d.%m.%Y}",
        generated=f"{report.generated_at:%d.%m.%Y %H:%M}", call_url=call_url, manager_url=manager_url)


def write_report(report: Report, out_dir: Path) -> list[Path]:
    """Write report.html and the CSV files; returns their paths."""
    columns = _columns(report)
    active = [stats for stats in report.managers if stats.calls]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_text_atomic(out_dir / "report.html", render_report_html(report))]
    header = ["Менеджер"] + [f"{c.title}{', ' + c.unit.strip() if c.unit else ''}" for c in columns] + [
        f"Оценка 1–5: {c.title}" for c in columns if c.rating]
    managers = [header]
    for stats in report.managers:
        managers.append([stats.name] + [_csv_number(_value(stats, c)) for c in columns]
                        + [str(stats.ratings.get(c.rating) or "") for c in columns if c.rating])
    criteria = [["Критерий"] + [s.name for s in active]] + [
        [title] + [_csv_number(s.criterion_pass_pct.get(cid)) for s in active] for cid, title in report.criteria]
    funnel = [["Этап", "Сделок", "Конверсия из прошлого этапа, %", "Медиана времени на этапе, дней",
               "Звонков на этапе", "Средняя сумма сделки", "Воронка", "Код этапа"]] + [
        [st.title, st.deals, _csv_number(st.conversion_from_previous), _csv_number(st.median_days_in_stage),
         st.calls, _csv_number(st.average_amount), view.name, st.stage]
        for view in report.funnels for st in view.stages]
    review = [["Звонок", "Начало", "Менеджер", "Оценка", "Нарушения", "Не выполнено", "Сделка"]] + [
        [c.call_id, c.started_at, c.manager, _csv_number(c.score), ", ".join(c.auto_failed), "; ".join(c.failed),
         c.deal_url or c.deal_id or ""] for c in report.review]
    for name, rows in (("managers.csv", managers), ("criteria.csv", criteria), ("funnel.csv", funnel),
                       ("review.csv", review)):
        written.append(write_text_atomic(out_dir / name, _csv(rows)))
    return written
