"""The supervisor's report: figures against values computed by hand on a fixture of stored results, the HTML
opened in real headless Chromium (screenshot checked for the table and the charts), empty periods, and a
manager with no calls."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.report import ReportOptions, build_report, parse_deals, write_report
from pipeline.report.charts import BAR_COLOR
from pipeline.schema import (
    AsrModelInfo,
    CallMetadata,
    CallResult,
    CriterionResult,
    CriterionReview,
    GroupScore,
    Hit,
    Metrics,
    ModelInfo,
    PerRole,
    PerRoleCount,
    Quality,
    Score,
    SourceInfo,
    SpeakerModelInfo,
)
from pipeline.stores import FolderStore

MSK = timezone(timedelta(hours=3))
SINCE = datetime(2026, 11, 23, tzinfo=MSK)
UNTIL = datetime(2026, 11, 30, tzinfo=MSK)  # a week: the 23rd to the 29th
CRITERIA = [("next_step", "Договорился о следующем шаге"), ("no_rudeness", "Без грубости")]
GROUPS = [("standards", "Соблюдение стандартов работы"), ("communication", "Качество общения")]
CALLQA = Path(sys.executable).with_name("callqa")
CHROMIUM = shutil.which("chromium")


def call(call_id: str, *, manager: tuple[str, str] | None, day: int, duration_s: float, score: float,
         standards: float = 0, communication: float = 0, next_step: bool = True, auto_fail: bool = False,
         ratio: float = 0.5, monologue: float = 10, interruptions: int = 0, questions: int = 0,
         praise: bool = False, deal: str | None = None, month: int = 11) -> CallResult:
    started = datetime(2026, month, day, 10, 0, tzinfo=MSK)
    criteria = [CriterionResult(id="next_step", title="Договорился о следующем шаге", passed=next_step,
                                points=5 if next_step else 0, max_points=5),
                CriterionResult(id="no_rudeness", title="Без грубости", passed=not auto_fail,
                                points=0 if auto_fail else 5, max_points=5)]
    hits = [Hit(lexicon="feedback", term="positive", role="client", start=1, end=2, text="Спасибо большое")] \
        if praise else []
    return CallResult(
        call_id=call_id,
        source=SourceInfo(uri=f"{call_id}.mp3", sha256="0" * 64, size_bytes=1, container="mp3", codec="mp3",
                          sample_rate_hz=8000, channels=2),
        duration_s=duration_s, channels=2, layout="stereo", language="ru",
        metadata=CallMetadata(started_at=started.isoformat(), manager_id=manager[0] if manager else None,
                              manager_name=manager[1] if manager else None, deal_id=deal),
        model=ModelInfo(asr=AsrModelInfo(name="whisper-base", engine="faster-whisper", engine_version="1.2.1",
                                         model_sha256=None, device="cpu", compute_type="int8", batch_size=4,
                                         beam_size=5),
                        speakers=SpeakerModelInfo(name="channels", version="mix/1")),
        quality=Quality(passed=True, gates=[]), speakers=[], words=[], turns=[],
        metrics=Metrics(talk_ratio_manager=ratio, manager_talk_s=10, client_talk_s=10, total_talk_s=20,
                        silence_s=0, long_silences=0, overlap_s=0, longest_monologue_s=PerRole(manager=monologue),
                        interruptions=PerRoleCount(manager=interruptions), speech_rate_wpm=PerRole(),
                        questions=PerRoleCount(manager=questions)),
        hits=hits,
        score=Score(total=score, grade=1, passed=score >= 60, criteria=criteria,
                    groups=[GroupScore(id="standards", title="С", total=standards, grade=None),
                            GroupScore(id="communication", title="К", total=communication, grade=None)],
                    auto_failed=["no_rudeness"] if auto_fail else []),
        analyzed_at="2026-11-30T01:00:00+00:00", callqa_version="0.1.0")


ALEXEY, MARIA = ("12", "Алексей Смирнов"), ("15", "Мария Кузнецова")
RESULTS = [
    call("a1", manager=ALEXEY, day=25, duration_s=120, score=80, standards=80, communication=70, ratio=0.5,
         monologue=10, interruptions=0, questions=3, praise=True, deal="D1"),
    call("a2", manager=ALEXEY, day=27, duration_s=180, score=60, standards=60, communication=50, ratio=0.6,
         monologue=20, interruptions=1, questions=4, deal="D2"),
    call("a3", manager=ALEXEY, day=26, duration_s=300, score=100, standards=100, communication=90, ratio=0.7,
         monologue=30, interruptions=2, questions=5, next_step=False, deal="D3"),
    call("x1", manager=None, day=28, duration_s=60, score=0, auto_fail=True),
    # the previous week: Alexey once, Maria twice; Maria has no calls this week
    call("a0", manager=ALEXEY, day=18, duration_s=240, score=50, standards=50, communication=50),
    call("m1", manager=MARIA, day=17, duration_s=60, score=70, standards=70, communication=70),
    call("m2", manager=MARIA, day=19, duration_s=120, score=90, standards=90, communication=90),
    call("old", manager=MARIA, day=1, duration_s=60, score=10, month=10),  # outside both periods
]
DEALS_CSV = """deal_id,manager_id,amount,currency,won,repeat_customer,lead_at,qualification_at,offer_at,aftersale_at
D1,12,50000,RUB,yes,yes,2026-11-20T09:00+03:00,2026-11-21T09:00+03:00,2026-11-24T09:00+03:00,2026-11-26T09:00+03:00
D2,12,70000,RUB,yes,no,2026-11-22T09:00+03:00,2026-11-23T09:00+03:00,2026-11-25T09:00+03:00,2026-11-28T09:00+03:00
D3,12,30000,RUB,,no,2026-11-23T09:00+03:00,2026-11-25T09:00+03:00,,
"""


@pytest.fixture(scope="module")
def report():
    deals = parse_deals(DEALS_CSV, "deals.csv")
    return build_report(RESULTS, deals, since=SINCE, until=UNTIL, options=ReportOptions(), criteria=CRITERIA,
                        groups=GROUPS, now=datetime(2026, 11, 30, tzinfo=UTC))


def test_manager_figures_by_hand(report) -> None:
    alexey = next(m for m in report.managers if m.manager_id == "12")
    assert alexey.calls == 3
    assert alexey.total_duration_min == 10.0 and alexey.average_duration_min == 3.33
    assert alexey.successful_calls == 2  # D1 and D2 were won; D3 is still open
    assert alexey.conversion_pct == 66.7
    assert alexey.average_check == 60000.0  # (50 000 + 70 000) / 2 won deals
    assert alexey.repeat_purchases == 1 and alexey.positive_feedback == 1
    assert alexey.average_score == 80.0
    assert alexey.group_totals == {"standards": 80.0, "communication": 70.0}
    assert (alexey.talk_ratio, alexey.longest_monologue_s, alexey.interruptions, alexey.questions) == (
        0.6, 20.0, 1.0, 4.0)
    assert alexey.criterion_pass_pct == {"next_step": 66.7, "no_rudeness": 100.0}
    assert alexey.daily_scores == {"2026-11-25": 80.0, "2026-11-26": 100.0, "2026-11-27": 60.0}
    # 1-5 by the default bands: 3 calls in 7 days = 0.43 a day -> 1; 3.33 min -> 4; 2/7 successful a day -> 1;
    # 66.7 % conversion -> 5; 60 000 average check -> 4; 1 repeat purchase -> 2; 1 of 3 calls praised -> 5;
    # standards 80 % -> 4; communication 70 % -> 3; next step met in 66.7 % -> 3
    assert alexey.ratings == {"calls": 1, "duration": 4, "successful": 1, "conversion": 5, "average_check": 4,
                              "repeat_purchases": 2, "positive_feedback": 5, "group:standards": 4,
                              "group:communication": 3, "criterion:next_step": 3, "criterion:no_rudeness": 5}


def test_previous_period_and_a_manager_without_calls(report) -> None:
    names = [m.name for m in report.managers]
    assert names == ["Алексей Смирнов", "Мария Кузнецова", "Не указан"]
    maria = next(m for m in report.managers if m.manager_id == "15")
    assert (maria.calls, maria.total_duration_min, maria.average_duration_min, maria.average_score) == (
        0, 0.0, None, None)
    assert report.previous["15"].calls == 2 and report.previous["15"].average_score == 80.0
    assert report.previous["12"].average_score == 50.0 and report.previous["12"].calls == 1
    assert report.calls == 4  # "old" (October) is in neither period


def test_funnel_by_hand(report) -> None:
    [view] = report.funnels  # a deals CSV: the source article's phone funnel
    assert (view.funnel_id, report.deal_source) == ("phone", "deals.csv")
    funnel = {stage.stage: stage for stage in view.stages}
    assert [funnel[s].deals for s in ("lead", "qualification", "offer", "aftersale")] == [3, 3, 2, 2]
    assert [funnel[s].conversion_from_previous for s in ("lead", "qualification", "offer", "aftersale")] == [
        None, 100.0, 66.7, 100.0]
    # lead -> qualification: 1, 1, 2 days; qualification -> offer: 3, 2; offer -> after-sale: 2, 3
    assert [funnel[s].median_days_in_stage for s in ("lead", "qualification", "offer", "aftersale")] == [
        1.0, 2.5, 2.5, None]
    # a1 (25th) when D1 was at the offer, a2 (27th) D2 at the offer, a3 (26th) D3 at qualification
    assert [funnel[s].calls for s in ("lead", "qualification", "offer", "aftersale")] == [0, 1, 2, 0]
    assert [funnel[s].average_amount for s in ("lead", "offer")] == [50000.0, 60000.0]
    assert [(m.manager, m.reached, m.won_pct) for m in view.managers] == [("Алексей Смирнов", [3, 3, 2, 2], 66.7)]


def test_calls_to_review_first(report) -> None:
    assert [call.call_id for call in report.review] == ["x1", "a2", "a1", "a3"]  # auto-fail first, then lowest
    assert report.review[0].auto_failed == ["no_rudeness"] and report.review[0].manager == "Не указан"
    with_links = build_report(RESULTS, {}, since=SINCE, until=UNTIL, criteria=CRITERIA, groups=GROUPS,
                              options=ReportOptions(deal_url="https://portal.example/crm/deal/details/{deal_id}/"))
    assert with_links.review[1].deal_url == "https://portal.example/crm/deal/details/D2/"
    # without deal data, success is the next-step criterion: a1 and a2 met it, a3 did not
    assert next(m for m in with_links.managers if m.manager_id == "12").successful_calls == 2


def _screenshot(html: Path, png: Path, profile: Path) -> np.ndarray:
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1600,2400",
                    f"--screenshot={png}", html.as_uri()], check=True, capture_output=True, timeout=120)
    with av.open(str(png)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _pixels(image: np.ndarray, color: str) -> int:
    rgb = np.array([int(color[i: i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image.astype(int) - rgb).sum(axis=2) <= 6).sum())


def test_the_report_opens_in_chromium_with_its_table_and_charts(report, tmp_path: Path) -> None:
    assert CHROMIUM, "chromium is installed by `make test` (make system-deps)"
    written = write_report(report, tmp_path / "out")
    assert [p.name for p in written] == ["report.html", "managers.csv", "criteria.csv", "funnel.csv", "review.csv"]
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script src" not in html
    for label in ("Таблица оценки менеджеров", "Количество звонков", "Средний чек", "Соблюдение стандартов работы",
                  "Телефонная воронка", "Прослушать в первую очередь", "Как считаются показатели"):
        assert label in html
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom",
                          (tmp_path / "out" / "report.html").as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert dom.count('<tr>') >= 3 + 2 + 4 + 4 and dom.count("<svg") == 4
    image = _screenshot(tmp_path / "out" / "report.html", tmp_path / "shot.png", tmp_path / "profile")
    assert image.shape[0] >= 2000 and image.shape[1] >= 1500
    assert _pixels(image, "#1e3a8a") > 5000  # table headers were drawn
    assert _pixels(image, BAR_COLOR) > 3000  # and the bars of the charts
    header_rows = np.flatnonzero((np.abs(image.astype(int) - [30, 58, 138]).sum(axis=2) <= 6).sum(axis=1) > 200)
    bar_rows = np.flatnonzero((np.abs(image.astype(int) - [37, 99, 235]).sum(axis=2) <= 6).sum(axis=1) > 20)
    assert header_rows.min() < bar_rows.min()  # the managers' table comes before the charts


def test_csv_files_hold_the_same_figures(report, tmp_path: Path) -> None:
    write_report(report, tmp_path)
    text = (tmp_path / "managers.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    header, alexey = rows[0], rows[1]
    assert alexey[0] == "Алексей Смирнов"
    assert alexey[header.index("Количество звонков")] == "3"
    assert alexey[header.index("Средний чек, ₽")] == "60000"
    assert alexey[header.index("Конверсия звонков, %")] == "66,7"
    assert alexey[header.index("Оценка 1–5: Средний чек")] == "4"
    funnel = list(csv.reader((tmp_path / "funnel.csv").read_text(encoding="utf-8-sig").splitlines(), delimiter=";"))
    assert funnel[0][:5] == ["Этап", "Сделок", "Конверсия из прошлого этапа, %", "Медиана времени на этапе, дней",
                             "Звонков на этапе"]  # the columns before the funnel's name and the stage id stay put
    assert funnel[3] == ["Предложение", "2", "66,7", "2,5", "2", "60000", "Телефонная воронка", "offer"]


def test_report_command_on_a_store_and_an_empty_period(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    for result in RESULTS:
        store.write(f"calls/{result.call_id}/result.json", result.to_json().encode())
    store.write("calls/broken/result.json", b"{not json")
    store.write("deals/deals.csv", DEALS_CSV.encode())
    done = subprocess.run([str(CALLQA), "report", "--store", str(tmp_path / "store"), "--since", "2026-11-23",
                           "--until", "2026-11-29", "--out", str(tmp_path / "week")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "4 calls of 2 managers" in done.stdout and "calls/broken/result.json: not a callqa result" in done.stderr
    assert "Период: 23.11.2026 – 29.11.2026" in (tmp_path / "week" / "report.html").read_text(encoding="utf-8")

    empty = subprocess.run([str(CALLQA), "report", "--store", str(tmp_path / "store"), "--since", "2025-01-01",
                            "--until", "2025-01-07", "--out", str(tmp_path / "empty")], capture_output=True, text=True)
    assert empty.returncode == 0, empty.stderr
    html = (tmp_path / "empty" / "report.html").read_text(encoding="utf-8")
    assert "За период нет звонков" in html
    managers = (tmp_path / "empty" / "managers.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(managers) == 1  # the header only


def test_an_uncertain_verdict_is_counted_apart(tmp_path: Path) -> None:
    """"Не удалось надёжно распознать" is neither met nor failed: it has its own column, stays out of the
    criterion's pass rate, and is not listed among a reviewed call's failures."""
    met = call("u1", manager=ALEXEY, day=25, duration_s=60, score=100)
    doubtful = call("u2", manager=ALEXEY, day=26, duration_s=60, score=100)
    criteria = [CriterionResult(id="next_step", title="Договорился о следующем шаге", passed=False, points=0,
                                max_points=0, applicable=False, verdict="uncertain",
                                note="не удалось надёжно распознать: 00:41 «запешу» (похоже на «запишу»)"),
                *doubtful.score.criteria[1:]]
    doubtful = doubtful.model_copy(update={"score": doubtful.score.model_copy(update={"criteria": criteria})})
    built = build_report([met, doubtful], {}, since=SINCE, until=UNTIL, options=ReportOptions(review_count=2),
                         criteria=CRITERIA, groups=GROUPS, now=datetime(2026, 11, 30, tzinfo=UTC))
    alexey = built.managers[0]
    assert alexey.uncertain_verdicts == 1 and alexey.criterion_pass_pct["next_step"] == 100.0
    assert all("Договорился о следующем шаге" not in review.failed for review in built.review)
    written = write_report(built, tmp_path / "report")
    html = next(path for path in written if path.suffix == ".html")
    assert "Не распознано надёжно" in html.read_text(encoding="utf-8")


def test_report_days_are_the_portal_s_when_the_calls_come_from_bitrix24(tmp_path: Path) -> None:
    """A call at 01:30 Moscow time on the 28th is the 27th in UTC: with Bitrix24 as the source the report's days
    are the portal's (bitrix24.timezone), as the nightly run's are; otherwise the host's (UTC here)."""
    early = call("night", manager=("12", "Алексей Смирнов"), day=28, duration_s=60, score=80)
    early = early.model_copy(update={"metadata": early.metadata.model_copy(
        update={"started_at": "2026-11-28T01:30:00+03:00"})})
    store = FolderStore(tmp_path / "store")
    store.write("calls/night/result.json", early.to_json().encode())
    counted = {}
    for source in ("bitrix24", "calls/"):
        done = subprocess.run([str(CALLQA), "report", "--store", str(tmp_path / "store"), "--since", "2026-11-28",
                               "--until", "2026-11-28", "--out", str(tmp_path / source.strip("/"))],
                              capture_output=True, text=True, env={**os.environ, "TZ": "UTC",
                                                                    "CALLQA_RUN__SOURCE": source})
        assert done.returncode == 0, done.stderr
        counted[source] = done.stdout.split(" calls of ")[0]
    assert counted == {"bitrix24": "1", "calls/": "0"}


def _reviewed(result: CallResult, **verdicts: tuple[str, str]) -> CallResult:
    """`result` with people's verdicts on its criteria: criterion id -> (the machine's, the person's)."""
    assert result.score is not None
    criteria = [c.model_copy(update={"review": CriterionReview(
        verdict=verdicts[c.id][1], automatic=verdicts[c.id][0], reviewer="ivanova",  # type: ignore[arg-type]
        reviewer_name="Анна Иванова", at="2026-11-29T10:00:00+00:00")}) if c.id in verdicts else c
        for c in result.score.criteria]
    return result.model_copy(update={"score": result.score.model_copy(update={"criteria": criteria})})


def test_criteria_people_disagree_with_are_flagged(report, tmp_path: Path) -> None:
    # next_step over 4 reviewed calls: machine/person met/met twice, met/not_met once, not_met/not_met once:
    # p_o = 3/4; the machine says met in 3/4, the person in 2/4: p_e = 0.75 * 0.5 + 0.25 * 0.5 = 0.5, so
    # kappa = (0.75 - 0.5) / 0.5 = 0.5, below the default 0.6. no_rudeness: both met twice, kappa undefined.
    pairs = [("met", "met"), ("met", "met"), ("met", "not_met"), ("not_met", "not_met")]
    reviewed = [_reviewed(call(f"r{index}", manager=ALEXEY, day=24 + index, duration_s=60, score=80),
                          next_step=pair, **({"no_rudeness": ("met", "met")} if index < 2 else {}))
                for index, pair in enumerate(pairs)]
    built = build_report([*RESULTS, *reviewed], {}, since=SINCE, until=UNTIL, options=ReportOptions(),
                         criteria=CRITERIA, groups=GROUPS, now=datetime(2026, 11, 30, tzinfo=UTC))
    assert built.calibration is not None and report.calibration is None  # nobody reviewed the fixture's calls
    next_step, rudeness = built.calibration.criteria
    assert (next_step.criterion, next_step.reviewed, next_step.agreement, next_step.flagged) == (
        "next_step", 4, 0.75, True)
    assert next_step.kappa == pytest.approx(0.5) and next_step.disagreements == ["r2"]
    assert (rudeness.kappa, rudeness.flagged) == (None, False)
    lenient = build_report(reviewed, {}, since=SINCE, until=UNTIL, options=ReportOptions(kappa_threshold=0.4),
                           criteria=CRITERIA, groups=GROUPS)
    assert lenient.calibration is not None and lenient.calibration.flagged == []
    html = write_report(built, tmp_path / "reviewed")[0].read_text(encoding="utf-8")
    section = html.split("<h2>Согласие с проверяющими</h2>")[1].split("<h2>")[0]
    flagged_row = section.split('data-criterion="next_step"')[1].split("</tr>")[0]
    assert "ниже порога" in flagged_row and ">75 %<" in flagged_row and ">0,50<" in flagged_row
    assert ">4<" in flagged_row and "r2" in flagged_row
    assert "ниже порога" not in section.split('data-criterion="no_rudeness"')[1].split("</tr>")[0]
    plain = write_report(report, tmp_path / "plain")[0].read_text(encoding="utf-8")
    assert "Согласие с проверяющими</h2>" not in plain
