"""Everything a report needs, gathered from the store: the results, the deals (a CSV or the CRM snapshots the
nightly runs read), the scorecard's criteria and groups. `callqa report` and the workbench's report page both
build their report here, so they always agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.report.compute import Report, build_report
from pipeline.report.deals import load_snapshots, merge_snapshots, parse_deals
from pipeline.stores import ArtifactStore

__all__ = ["AssembledReport", "assemble_report"]


@dataclass(frozen=True)
class AssembledReport:
    report: Report
    warnings: list[str]  # stored objects left out, each with its key


def assemble_report(settings, store: ArtifactStore, *, since: datetime, until: datetime,
                    deals: Path | None = None) -> AssembledReport:
    """The report of the calls that started in [since, until).

    Args:
        settings: `pipeline.settings.Settings` (scorecard, lexicons, report options).
        deals: a deals CSV instead of what is stored (docs/report.md); else deals/deals.csv in the store, else
            the CRM snapshots of the nightly runs.

    Raises:
        ConfigError: the deals file is missing or invalid.
        DefinitionError: the scorecard or lexicons are invalid.
    """
    from pipeline.lexicon import DEFAULT_LEXICONS, load_lexicons
    from pipeline.report import load_results
    from pipeline.scoring import DEFAULT_SCORECARD, load_scorecard

    card = load_scorecard(settings.scorecard or DEFAULT_SCORECARD).definition
    results, unreadable = load_results(store)
    warnings = [f"{store.describe()}/{key}: not a callqa result, left out" for key in unreadable]
    deal_data: dict = {}
    funnels: list = []
    deal_source = None
    if deals is not None:
        if not deals.is_file():
            raise ConfigError(f"deals file not found: {deals}")
        deal_data, deal_source = parse_deals(deals.read_text(encoding="utf-8"), str(deals)), deals.name
    elif (stored := store.read("deals/deals.csv")) is not None:
        deal_data = parse_deals(stored.decode("utf-8"), f"{store.describe()}/deals/deals.csv")
        deal_source = "deals/deals.csv"
    else:  # what the nightly runs read from Bitrix24
        snapshots, broken = load_snapshots(store)
        warnings += [f"{store.describe()}/{key}: not a CRM snapshot, left out" for key in broken]
        crm = merge_snapshots(snapshots)
        deal_data, funnels, deal_source = crm.deals, crm.funnels, crm.source
    # Praise is heard by the feedback lexicon: without one, positive feedback has no data rather than zero.
    feedback = "feedback" in load_lexicons(settings.lexicons or DEFAULT_LEXICONS).ids
    report = build_report(results, deal_data, since=since, until=until, options=settings.report,
                          criteria=[(c.id, c.title) for c in card.criteria], groups=list(card.groups.items()),
                          funnels=funnels, deal_source=deal_source, feedback_measured=feedback)
    return AssembledReport(report=report, warnings=warnings)
