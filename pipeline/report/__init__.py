"""The supervisor's report from the artifact store: per-manager table, charts, funnel, calls to review.

    results = load_results(store)
    report = build_report(results, deals, since=..., until=..., options=ReportOptions(), criteria=..., groups=...)
    write_report(report, Path("report"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.schema import CallResult
from pipeline.support.lazy import lazy_exports

if TYPE_CHECKING:
    from pipeline.report.compute import Report, build_report
    from pipeline.report.deals import CrmData, load_snapshots, merge_snapshots, parse_deals
    from pipeline.report.model import Deal, ReportOptions
    from pipeline.report.render import write_report
    from pipeline.stores import ArtifactStore

__all__ = ["CrmData", "Deal", "Report", "ReportOptions", "build_report", "load_results", "load_snapshots",
           "merge_snapshots", "parse_deals", "write_report"]

# Light to import: `Settings` reads `ReportOptions` from here; the computing and the rendering (Jinja2) load when
# first used (pipeline/support/lazy.py).
__getattr__ = lazy_exports(__name__, {
    **dict.fromkeys(["Report", "build_report"], "pipeline.report.compute"),
    **dict.fromkeys(["CrmData", "load_snapshots", "merge_snapshots", "parse_deals"], "pipeline.report.deals"),
    **dict.fromkeys(["Deal", "ReportOptions"], "pipeline.report.model"),
    "write_report": "pipeline.report.render",
})


def load_results(store: ArtifactStore) -> tuple[list[CallResult], list[str]]:
    """Every stored result, and the keys that could not be read as one (reported, not fatal)."""
    results, unreadable = [], []
    for key in store.list("calls/"):
        if not key.endswith("/result.json"):
            continue
        data = store.read(key)
        if data is None:  # deleted since it was listed: as unreadable as a damaged one
            unreadable.append(key)
            continue
        try:
            results.append(CallResult.from_json(data))
        except ValueError:
            unreadable.append(key)
    return results, unreadable
