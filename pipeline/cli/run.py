"""`callqa run`: the nightly batch (contract in docs/cli.md, design in docs/batch.md)."""

from __future__ import annotations

import secrets
import sys
from datetime import date, datetime, time, timedelta
from typing import Annotated

import typer

from pipeline.cli.common import (
    ConfigOption,
    DeviceOption,
    LexiconsOption,
    ModelOption,
    ScorecardOption,
    VerboseOption,
    app,
    expected_failures,
    stderr,
    stdout,
)
from pipeline.errors import ConfigError


def _window(day: str | None, since: str | None, until: str | None):
    from pipeline.sources.base import TimeWindow

    local = datetime.now().astimezone().tzinfo
    try:
        if day:
            if since or until:
                raise ConfigError("give --date or --since/--until, not both")
            today = datetime.now(local).date()
            named = {"today": today, "yesterday": today - timedelta(days=1)}
            start = datetime.combine(named.get(day) or date.fromisoformat(day), time(), tzinfo=local)
            return TimeWindow(since=start, until=start + timedelta(days=1))
        if since or until:
            start = datetime.fromisoformat(since) if since else datetime(1970, 1, 1, tzinfo=local)
            end = datetime.fromisoformat(until) if until else datetime.now(local)
            start = start if start.tzinfo else start.replace(tzinfo=local)
            end = end if end.tzinfo else end.replace(tzinfo=local)
            return TimeWindow(since=start, until=end)
    except ValueError as error:
        raise ConfigError(f"bad date: {error} (use YYYY-MM-DD or ISO 8601 times)") from error
    return None


@app.command()
@expected_failures
def run(
    day: Annotated[str | None, typer.Option("--date", help="Calls of this day: YYYY-MM-DD, today or yesterday "
                                            "(local time).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Calls from this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Calls before this time (ISO 8601).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="A folder, s3://bucket/prefix or bitrix24 "
                                               "(default: the bundled sample calls).")] = None,
    store: Annotated[str | None, typer.Option("--store", help="A folder or s3://bucket/prefix for the artifacts "
                                              "(default: ./callqa-artifacts).")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="A Dask scheduler (tcp://host:8786); "
                                                  "default: a LocalCluster sized to this machine.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="LocalCluster worker processes.", min=1)] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo every call, even those already done.")] = False,
    rescore: Annotated[bool, typer.Option("--rescore", help="Only re-score stored transcripts (no audio, no "
                                          "ASR).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Bitrix24: print the comments instead of posting "
                                          "them.")] = False,
    lexicons: LexiconsOption = None,
    scorecard: ScorecardOption = None,
    model: ModelOption = None,
    device: DeviceOption = None,
    config: ConfigOption = None,
    verbose: VerboseOption = 0,
) -> None:
    """Analyse every call of a day (or a whole folder) on Dask and store the artifacts; resumable."""
    from pipeline.logs import configure_logging, register_secrets
    from pipeline.settings import load_settings

    configure_logging(verbose)
    settings = load_settings(config, model=model, device=device.value if device else None, lexicons=lexicons,
                             scorecard=scorecard)
    register_secrets(settings)
    options = settings.run.model_copy(update={key: value for key, value in {
        "source": source, "store": store, "scheduler": scheduler, "workers": workers}.items() if value is not None})
    settings = settings.model_copy(update={"run": options})
    window = _window(day, since, until)
    label = day or (f"{since} - {until}" if window else "")
    summary, _, publish_failed = perform_run(settings, window=window, label=label, force=force, rescore=rescore,
                                             dry_run=dry_run)
    if summary.count("failed") or publish_failed:
        raise typer.Exit(1)


def perform_run(settings, *, window=None, label: str = "", force: bool = False, rescore: bool = False,
                dry_run: bool = False):
    """The run itself (also the demo's): returns (summary, the store, comments that failed to post).

    Raises:
        typer.Exit(1): the run summary could not be stored (after everything else was done and reported).
    """
    import models
    from pipeline.batch import BatchJob
    from pipeline.batch.cluster import open_cluster
    from pipeline.batch.job import AsrIdentity
    from pipeline.scoring.apply import ScoringSetup
    from pipeline.settings import DEFAULT_SOURCE
    from pipeline.sources import open_source
    from pipeline.stores import StoreError, open_store, run_key

    options = settings.run
    # Everything that can be wrong with the setup is found before any call is touched.
    scoring = ScoringSetup.load(settings.lexicons, settings.scorecard, settings=settings)
    resolved = models.resolve(settings.model, cache_dir=settings.models_dir)
    source_spec = options.source or str(DEFAULT_SOURCE)
    call_source = open_source(source_spec, settings.s3, settings.bitrix24)
    artifact_store = open_store(options.store, settings.s3)
    run_id = f"{datetime.now().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    try:
        artifact_store.write(run_key(run_id), b"{}")  # can we write at all? (replaced by the summary at the end)
    except StoreError as error:
        raise ConfigError(f"the store is not writable: {error}") from error
    records = call_source.list_calls(window)
    job = BatchJob(run_id=run_id, settings=settings, source=source_spec, store=options.store,
                   asr=AsrIdentity(name=resolved.name, sha256=resolved.sha256),
                   lexicon_version=scoring.lexicons.version if scoring.lexicons else None,
                   scorecard_version=scoring.scorecard.version if scoring.scorecard else None,
                   force=force, rescore_only=rescore)
    what = f"{len(records)} calls from {call_source.describe()}" + (f" ({label})" if label else "")
    stdout.print(f"run {run_id}: {what} -> {artifact_store.describe()}")
    with open_cluster(options, settings.device) as (client, plan):
        stdout.print(f"Dask: {plan.describe() if plan else options.scheduler}; dashboard {client.dashboard_link}")
        summary = _run_with_progress(job, records, client, scoring, plan.asr_threads if plan else 0)
    _print_summary(summary)
    publish_failed = 0
    if source_spec == "bitrix24":
        done = [o.call_id for o in summary.calls if o.status in ("processed", "rescored", "skipped")]
        publish_failed = publish_results(artifact_store, done, settings, client=call_source.client, dry_run=dry_run)
    try:
        artifact_store.write(run_key(run_id), summary.model_dump_json(indent=2).encode())
    except StoreError as error:
        print(f"callqa: warning: the run summary was not stored: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    return summary, artifact_store, publish_failed


def publish_results(store, call_ids: list[str], settings, *, client=None, dry_run: bool = False) -> int:
    """Post (or update) the score comments of these stored calls; prints a line per call; returns the failures."""
    from rich.text import Text

    from pipeline.bitrix24.settings import make_client
    from pipeline.publish.bitrix24 import CommentPublisher
    from pipeline.schema import CallResult
    from pipeline.stores import result_key

    results = []
    for call_id in call_ids:
        data = store.read(result_key(call_id))
        if data:
            results.append(CallResult.from_json(data))

    def show(call_id: str, text: str) -> None:
        stdout.print(Text(f"--- {call_id}\n{text}\n"))

    client = client or make_client(settings.bitrix24)
    publisher = CommentPublisher(client, store, protect_personal_data=settings.bitrix24.protect_personal_data,
                                 dry_run=dry_run, show=show)
    outcomes = publisher.publish(results)
    for outcome in outcomes:
        if outcome.status in ("failed", "skipped"):
            stdout.print(f"comment {outcome.call_id}: {outcome.status}: {outcome.reason}")
    counts = {status: sum(o.status == status for o in outcomes)
              for status in ("posted", "updated", "unchanged", "skipped", "failed", "dry-run")}
    stdout.print("Bitrix24 comments: " + ", ".join(f"{status} {count}" for status, count in counts.items() if count)
                 + f" ({client.requests} requests to the portal)")
    return counts["failed"]


def _run_with_progress(job, records, client, scoring, asr_threads: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.batch import run_batch

    counts = {"failed": 0, "skipped": 0, "audio_s": 0.0}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[detail]}"), console=stderr, transient=False,
                        disable=not stderr.is_terminal)
    with progress:
        task = progress.add_task("calls", total=len(records), detail="")

        def hook(outcome, *, done: int, total: int) -> None:
            counts["failed"] += outcome.status == "failed"
            counts["skipped"] += outcome.status == "skipped"
            counts["audio_s"] += outcome.audio_s if outcome.status == "processed" else 0.0
            elapsed = progress.tasks[0].elapsed or 1e-9
            progress.update(task, completed=done, detail=(
                f"failed {counts['failed']}, skipped {counts['skipped']}, audio {counts['audio_s'] / 3600:.2f} h, "
                f"{counts['audio_s'] / elapsed:.1f}x realtime"))

        return run_batch(job, records, client, scoring=scoring, asr_threads=asr_threads, hook=hook)


def _print_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"run {summary.run_id}", show_lines=False)
    for column in ("call", "status", "audio s", "score", "reason"):
        table.add_column(column)
    for outcome in summary.calls:
        if outcome.status in ("processed", "rescored") and not outcome.reason:
            reason = ""
        else:
            reason = outcome.reason
        table.add_row(outcome.call_id, outcome.status, f"{outcome.audio_s:.0f}",
                      "" if outcome.score is None else f"{outcome.score:g}", reason)
    stdout.print(table)
    realtime = summary.audio_s / summary.wall_s if summary.wall_s else 0.0
    stdout.print(f"processed {summary.count('processed')}, re-scored {summary.count('rescored')}, skipped "
                 f"{summary.count('skipped')}, failed {summary.count('failed')}; {summary.audio_s / 3600:.2f} h of "
                 f"audio in {summary.wall_s:.0f} s ({realtime:.1f}x realtime); summary: runs/{summary.run_id}.json")
