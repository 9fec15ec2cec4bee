"""`callqa publish` (score comments, transcripts, deal fields and notifications from the store into Bitrix24) and
`callqa sandbox` (a local portal)."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import SAMPLE_CALLS, ConfigOption, app, expected_failures, stdout, time_window
from pipeline.errors import ConfigError


@app.command()
@expected_failures
def publish(
    day: Annotated[str | None, typer.Option("--date", help="Calls of this day: YYYY-MM-DD, today or yesterday.")]
    = None,
    since: Annotated[str | None, typer.Option("--since", help="Calls from this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Calls before this time (ISO 8601).")] = None,
    store: Annotated[str | None, typer.Option("--store", help="A folder or s3://bucket/prefix.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be written instead of writing it.")]
    = False,
    config: ConfigOption = None,
) -> None:
    """Post or update the score comments of stored Bitrix24 calls (after `callqa rescore`, say), and attach their
    transcripts, fill their deals' fields and notify of auto-failed calls as `publish:` says: each once per call."""
    from pipeline.cli.run import print_publish_report, show_comment
    from pipeline.publish import publish_stored
    from pipeline.report.compute import call_time
    from pipeline.schema import CallResult
    from pipeline.settings import load_settings
    from pipeline.stores import open_store
    from pipeline.support.logs import configure_logging, register_secrets

    configure_logging(0)
    settings = load_settings(config)
    register_secrets(settings)
    window = time_window(day, since, until, settings.bitrix24.zone)
    artifact_store = open_store(store or settings.run.store, settings.s3)
    call_ids = []
    for key in artifact_store.list("calls/"):
        if key.endswith("/result.json") and (data := artifact_store.read(key)) is not None:
            # a result deleted since it was listed is skipped, as publish_stored skips it
            result = CallResult.from_json(data)
            if result.metadata.crm_target and (window is None or window.contains(call_time(result))):
                call_ids.append(result.call_id)
    stdout.print(f"{len(call_ids)} stored Bitrix24 calls" + (" in the window" if window else ""))
    report = publish_stored(artifact_store, call_ids, settings, dry_run=dry_run, show=show_comment)
    print_publish_report(report)
    if report.failed:
        raise typer.Exit(1)


@app.command()
@expected_failures
def sandbox(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8024,
    calls: Annotated[Path, typer.Option("--calls", help="Folder of recordings with manifest.csv.",
                                        file_okay=False)] = SAMPLE_CALLS,
    day: Annotated[str, typer.Option("--date", help="The day the calls happened: YYYY-MM-DD or yesterday.")]
    = "yesterday",
    fail_rate: Annotated[float, typer.Option("--fail-rate", help="Share of requests answered 503.")] = 0.0,
    html_error_rate: Annotated[float, typer.Option("--html-error-rate", help="Share answered by an HTML 502.")]
    = 0.0,
    token_ttl: Annotated[float, typer.Option("--token-ttl", help="OAuth access tokens live this many seconds.")]
    = 3600.0,
    unanswered_writes: Annotated[int, typer.Option("--unanswered-writes", help="Writes applied but left without "
                                                   "an answer.")] = 0,
    locked_deal: Annotated[list[str], typer.Option("--locked-deal", help="A deal the webhook may not edit.")]
    = [],  # noqa: B006 (typer reads the default, it is never mutated)
) -> None:
    """A local Bitrix24 portal on 127.0.0.1 seeded with the sample calls (for the demo and trying things out)."""
    from pipeline.sandbox import Portal, SandboxOptions, serve

    try:
        when = date.today() - timedelta(days=1) if day == "yesterday" else date.fromisoformat(day)
    except ValueError as error:
        raise ConfigError(f"--date: {error}") from error
    portal = Portal.from_folder(calls, day=when)
    options = SandboxOptions(fail_rate=fail_rate, html_error_rate=html_error_rate, token_ttl_s=token_ttl,
                             unanswered_writes=unanswered_writes, locked_deals=set(locked_deal))
    with serve(portal, options, port=port) as running:
        access, refresh = running.sandbox.issue_tokens()
        stdout.print(f"Bitrix24 sandbox on {running.base_url}: {len(portal.calls)} calls on {when:%d.%m.%Y}, "
                     f"{len(portal.deals)} deals")
        stdout.print(f"  webhook: export CALLQA_BITRIX24_WEBHOOK={running.webhook_url}")
        stdout.print(f"  OAuth: client {options.client_id}, token endpoint {running.base_url}/oauth/token/, "
                     f"access {access}, refresh {refresh}")
        stdout.print("Ctrl-C stops it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            stdout.print(f"stopped; {len(portal.comments)} comments were written "
                         f"({datetime.now():%H:%M:%S})")
