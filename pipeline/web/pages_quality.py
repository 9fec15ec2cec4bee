"""How far the automatic verdicts agree with people's (calibration), and the supervisor's report."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pipeline.schema import CallResult
from pipeline.stores import result_key
from pipeline.web.app import Workbench, bench_of, require
from pipeline.web.security import frame_ancestors_value

router = APIRouter()
logger = logging.getLogger(__name__)


def reviewed_results(bench: Workbench) -> list[CallResult]:
    results = []
    for call_id in bench.index.reviewed_calls():
        data = bench.store.read(result_key(call_id))
        if data is None:
            continue
        try:
            results.append(CallResult.from_json(data))
        except ValueError:
            logger.warning("call %s: stored result unreadable, left out of the calibration", call_id)
    return results


@router.get("/calibration")
def calibration_page(request: Request):
    from pipeline.calibration import calibrate

    require(request, "calibration")
    bench = bench_of(request)
    bench.refresh_index()
    threshold = bench.settings.report.kappa_threshold
    calibration = calibrate(reviewed_results(bench), kappa_threshold=threshold)
    return bench.render(request, "calibration.html.j2", calibration=calibration, threshold=threshold)


@router.get("/report")
def report_page(request: Request, days: int = 7):
    """The supervisor's report over the last `days` days (the portal's days when the calls come from Bitrix24),
    its calls linking to their pages."""
    require(request, "report")
    from datetime import datetime, time, timedelta

    from pipeline.report.assemble import assemble_report
    from pipeline.report.render import render_report_html

    bench = bench_of(request)
    settings = bench.settings
    local = (settings.bitrix24.zone if settings.run.source == "bitrix24"
             else datetime.now().astimezone().tzinfo)
    last = datetime.fromtimestamp(bench.clock(), local).date()
    first = last - timedelta(days=max(1, min(days, 366)) - 1)
    assembled = assemble_report(settings, bench.store, since=datetime.combine(first, time(), tzinfo=local),
                                until=datetime.combine(last + timedelta(days=1), time(), tzinfo=local))
    html = render_report_html(assembled.report, call_url="/calls/{call_id}", manager_url="/calls?manager={manager_id}")
    # The report is one self-contained page with its own inline styles and sorting script.
    web = bench.web
    ancestors = frame_ancestors_value(list(web.frame_ancestors) if web.frame_ancestors and web.https else [])
    return HTMLResponse(html, headers={"Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; frame-ancestors {ancestors}; form-action 'self'; base-uri 'none'")})
