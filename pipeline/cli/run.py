"""`callqa run`: the nightly batch (contract in docs/cli.md, design in docs/batch.md)."""

from __future__ import annotations

import sys
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
    time_window,
)


@app.command()
@expected_failures
def run(
    day: Annotated[str | None, typer.Option("--date", help="Calls of this day: YYYY-MM-DD, today or yesterday "
                                            "(local time).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Calls from this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Calls before this time (ISO 8601).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="A folder, s3://bucket/prefix or bitrix24 "
                                               "(or run.source in the config file).")] = None,
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
    from pipeline.settings import load_settings
    from pipeline.support.logs import configure_logging, register_secrets

    configure_logging(verbose)
    settings = load_settings(config, model=model, device=device.value if device else None, lexicons=lexicons,
                             scorecard=scorecard)
    register_secrets(settings)
    options = settings.run.model_copy(update={key: value for key, value in {
        "source": source, "store": store, "scheduler": scheduler, "workers": workers}.items() if value is not None})
    settings = settings.model_copy(update={"run": options})
    window = time_window(day, since, until, settings.bitrix24.zone if options.source == "bitrix24" else None)
    label = day or (f"{since} - {until}" if window else "")
    report = run_and_report(settings, window=window, label=label, force=force, rescore=rescore, dry_run=dry_run)
    if report.failed:
        raise typer.Exit(1)


def run_and_report(settings, *, window=None, label: str = "", force: bool = False, rescore: bool = False,
                   dry_run: bool = False):
    """`perform_run` with its progress drawn and its summary printed (also the demo's); returns its report.

    Raises:
        typer.Exit(1): the run summary could not be stored (after everything else was done and reported).
    """
    from pipeline.batch.nightly import perform_run

    with _RunProgress() as progress:
        report = perform_run(settings, window=window, label=label, force=force, rescore=rescore, dry_run=dry_run,
                             hook=progress.hook)
    _print_summary(report.summary)
    if report.crm is not None:
        stdout.print(f"Bitrix24 CRM: {len(report.crm.deals)} deals and leads in {len(report.crm.funnels)} funnels "
                     "read for the report" + (f" ({len(report.crm.warnings)} warnings)" if report.crm.warnings
                                              else ""))
    elif report.crm_error:
        stdout.print(f"Bitrix24 CRM: not read ({report.crm_error}); the report has no funnel for this run")
    if report.publish is not None:
        print_publish_report(report.publish)
    if report.summary_error:
        print(f"callqa: warning: the run summary was not stored: {report.summary_error}", file=sys.stderr)
        raise typer.Exit(1)
    return report


def print_publish_report(report) -> None:
    for outcome in report.outcomes:
        if outcome.status in ("failed", "skipped"):
            stdout.print(f"comment {outcome.call_id}: {outcome.status}: {outcome.reason}")
    counts = {status: report.count(status)
              for status in ("posted", "updated", "unchanged", "skipped", "failed", "dry-run")}
    stdout.print("Bitrix24 comments: " + ", ".join(f"{status} {count}" for status, count in counts.items() if count)
                 + f" ({report.requests} requests to the portal)")
    for line in report.kind_lines():  # transcripts, deal fields, notifications
        stdout.print(line)


def show_comment(call_id: str, text: str) -> None:
    from rich.text import Text

    stdout.print(Text(f"--- {call_id}\n{text}\n"))


class _RunProgress:
    """Draws a run's progress from `perform_run`'s hook: the plan, the cluster, a bar over the calls."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

        self.counts = {"failed": 0, "skipped": 0, "audio_s": 0.0}
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), console=stderr,
                                 transient=False, disable=not stderr.is_terminal)
        self.task: TaskID | None = None
        self.total = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.progress.stop()

    def hook(self, step: str, artifact=None, *, completed=None, total=None) -> None:
        if step == "planned":
            stdout.print(f"run {artifact.run_id}: {artifact.calls} calls from {artifact.source} -> {artifact.store}")
            self.total = artifact.calls
        elif step == "cluster":
            stdout.print(f"Dask: {artifact}")
            self.progress.start()
            self.task = self.progress.add_task("calls", total=self.total, detail="")
        elif step == "call" and self.task is not None:
            outcome, counts = artifact, self.counts
            counts["failed"] += outcome.status == "failed"
            counts["skipped"] += outcome.status == "skipped"
            counts["audio_s"] += outcome.audio_s if outcome.status == "processed" else 0.0
            elapsed = self.progress.tasks[0].elapsed or 1e-9
            self.progress.update(self.task, completed=completed, detail=(
                f"failed {counts['failed']}, skipped {counts['skipped']}, audio {counts['audio_s'] / 3600:.2f} h, "
                f"{counts['audio_s'] / elapsed:.1f}x realtime"))
        elif step == "comment":
            show_comment(*artifact)


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
