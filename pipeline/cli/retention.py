"""`callqa retention`: delete the audio copies, transcripts and voiceprints older than the settings allow."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import ConfigOption, app, expected_failures, stdout


@app.command()
@expected_failures
def retention(
    store: Annotated[str | None, typer.Option("--store", help="A folder or s3://bucket/prefix (default: "
                                              "run.store).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be deleted; delete nothing.")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete what is older than retention.audio_days, transcript_days and voiceprint_days; results stay."""
    from pipeline.retention import KINDS, apply_retention
    from pipeline.settings import load_settings
    from pipeline.stores import open_store
    from pipeline.support.logs import configure_logging, register_secrets

    configure_logging(0)
    settings = load_settings(config)
    register_secrets(settings)
    artifact_store = open_store(store or settings.run.store, settings.s3)
    report = apply_retention(artifact_store, settings.retention, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for item in report.removed:
        stdout.print(f"{verb} {item.kind} {item.key} (stored {item.stored_at.isoformat(timespec='seconds')})")
    for key in report.undated:
        stdout.print(f"kept {key}: when it was stored is not known")
    limits = {"audio": settings.retention.audio_days, "transcript": settings.retention.transcript_days,
              "voiceprint": settings.retention.voiceprint_days}
    totals = ", ".join(f"{kind} {report.count(kind)} {verb}, {report.kept[kind]} kept "
                       f"({'forever' if limits[kind] is None else f'{limits[kind]:g} days'})" for kind in KINDS)
    stdout.print(f"{artifact_store.describe()}: {totals}")
