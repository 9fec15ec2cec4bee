"""`callqa report`: the supervisor's report from the artifact store (docs/report.md)."""

from __future__ import annotations

import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOption, ScorecardOption, app, expected_failures, stdout
from pipeline.errors import ConfigError


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise ConfigError(f"{option}: {error} (use YYYY-MM-DD)") from error


@app.command()
@expected_failures
def report(
    since: Annotated[str | None, typer.Option("--since", help="First day (YYYY-MM-DD); default: 6 days before "
                                              "--until.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day, included (YYYY-MM-DD); default: "
                                              "today.")] = None,
    store: Annotated[str | None, typer.Option("--store", help="A folder or s3://bucket/prefix (default: "
                                              "./callqa-artifacts).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html and the CSV files.",
                                      file_okay=False)] = Path("report"),
    deals: Annotated[Path | None, typer.Option("--deals", help="Deals CSV (docs/report.md), instead of what the "
                                               "runs read from Bitrix24; default: deals/deals.csv in the store, if "
                                               "there.", dir_okay=False)] = None,
    scorecard: ScorecardOption = None,
    config: ConfigOption = None,
) -> None:
    """Per-manager table (1-5 ratings), charts, phone funnel and calls to review, as HTML and CSV."""
    from pipeline.report import write_report
    from pipeline.report.assemble import assemble_report
    from pipeline.settings import load_settings
    from pipeline.stores import open_store
    from pipeline.support.logs import configure_logging, register_secrets

    configure_logging(0)
    settings = load_settings(config, scorecard=scorecard)
    register_secrets(settings)
    # Days are the portal's when the calls come from Bitrix24 (its managers' days, as the nightly run reads them),
    # else the host's.
    local = settings.bitrix24.zone if settings.run.source == "bitrix24" else datetime.now().astimezone().tzinfo
    last = _day(until, "--until") if until else datetime.now(local).date()
    first = _day(since, "--since") if since else last - timedelta(days=6)
    if first > last:
        raise ConfigError("--since is after --until")
    start = datetime.combine(first, time(), tzinfo=local)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=local)
    artifact_store = open_store(store or settings.run.store, settings.s3)
    assembled = assemble_report(settings, artifact_store, since=start, until=end, deals=deals)
    for warning in assembled.warnings:
        print(f"callqa: warning: {warning}", file=sys.stderr)
    built = assembled.report
    written = write_report(built, out)
    stdout.print(f"{built.calls} calls of {len([m for m in built.managers if m.calls])} managers, "
                 f"{first:%d.%m.%Y} – {last:%d.%m.%Y}; wrote {', '.join(str(p) for p in written)}")
