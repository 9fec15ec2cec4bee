"""The supervisor's report from the artifact store: per-manager table, charts, funnel, calls to review.

    results = load_results(store)
    report = build_report(results, deals, since=..., until=..., options=ReportOptions(), criteria=..., groups=...)
    write_report(report, Path("report"))
"""

from __future__ import annotations

from pipeline.report.compute import Report, build_report
from pipeline.report.deals import CrmData, load_snapshots, merge_snapshots, parse_deals
from pipeline.report.model import Deal, ReportOptions
from pipeline.report.render import write_report
from pipeline.schema import CallResult
from pipeline.stores import ArtifactStore

__all__ = ["CrmData", "Deal", "Report", "ReportOptions", "build_report", "load_results", "load_snapshots",
           "merge_snapshots", "parse_deals", "write_report"]


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
