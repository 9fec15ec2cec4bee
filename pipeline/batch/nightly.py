"""The nightly run from start to end: check the setup, list the calls, run them on Dask, read their deals from
the CRM (Bitrix24: the report's funnel), post the comments, store the run's summary.
`callqa run` and `callqa demo` call `perform_run` and print what it reports.

    report = perform_run(settings, window=TimeWindow(since=..., until=...), hook=print_progress)
    report.summary.count("failed"), report.publish.failed if report.publish else 0
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.batch.job import AsrIdentity, BatchJob, RunSummary
from pipeline.errors import ConfigError
from pipeline.publish import PublishReport
from pipeline.report.model import CrmSnapshot
from pipeline.settings import Settings
from pipeline.sources.base import TimeWindow
from pipeline.stores import ArtifactStore
from pipeline.support.progress import ProgressHook, no_progress

__all__ = ["RunPlan", "RunReport", "perform_run"]

@dataclass(frozen=True)
class RunPlan:
    """What a run is about to do (its "planned" progress step)."""

    run_id: str
    calls: int
    source: str
    store: str


@dataclass(frozen=True)
class RunReport:
    """What a run did: its summary, where it stored the calls, the deals it read and the comments it posted
    (Bitrix24 only; `crm_error`: why no deals were read), and why the summary could not be stored (None: it was)."""

    summary: RunSummary
    store: ArtifactStore
    publish: PublishReport | None = None
    summary_error: str | None = None
    crm: CrmSnapshot | None = None
    crm_error: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.summary.count("failed") or (self.publish and self.publish.failed)
                    or self.summary_error)


def perform_run(settings: Settings, *, window: TimeWindow | None = None, label: str = "", force: bool = False,
                rescore: bool = False, dry_run: bool = False, hook: ProgressHook | None = None,
                clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> RunReport:
    """Run every call of `settings.run.source` in `window` into `settings.run.store`.

    Progress steps: "planned" (a `RunPlan`), "cluster" (its description), "call" (each call's `CallOutcome`, with
    completed/total calls), "comment" ((call_id, text) of each comment a dry run would post).

    Raises:
        ConfigError, DefinitionError, ModelError: the setup is wrong (found before any call is touched).
    """
    import models
    from pipeline.batch.cluster import open_cluster
    from pipeline.batch.runner import run_batch
    from pipeline.bitrix24.source import Bitrix24Source
    from pipeline.derive import DeriveSetup
    from pipeline.sources import open_source
    from pipeline.stores import StoreError, open_store, run_key

    hook = hook or no_progress
    options = settings.run
    if not options.source:
        raise ConfigError("no calls to run: give --source FOLDER, s3://bucket/prefix or bitrix24 (or run.source "
                          "in the config file)")
    source_spec = options.source
    setup = DeriveSetup.load(settings.lexicons, settings.scorecard, settings=settings)
    resolved = models.resolve(settings.model, cache_dir=settings.models_dir)
    call_source = open_source(source_spec, settings.s3, settings.bitrix24)
    artifact_store = open_store(options.store, settings.s3)
    run_id = f"{clock().astimezone().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    started = RunSummary(run_id=run_id, source=source_spec, store=options.store,
                         started_at=clock().isoformat(timespec="seconds"), finished_at="", wall_s=0.0, calls=[])
    try:  # can we write at all? (the finished summary replaces it)
        artifact_store.write(run_key(run_id), started.model_dump_json(indent=2).encode())
    except StoreError as error:
        raise ConfigError(f"the store is not writable: {error}") from error
    records = call_source.list_calls(window)
    job = BatchJob(run_id=run_id, settings=settings, source=source_spec, store=options.store,
                   asr=AsrIdentity(name=resolved.name, sha256=resolved.sha256),
                   lexicon_version=setup.lexicons.version if setup.lexicons else None,
                   scorecard_version=setup.scorecard.version if setup.scorecard else None,
                   force=force, rescore_only=rescore)
    hook("planned", RunPlan(run_id=run_id, calls=len(records), store=artifact_store.describe(),
                            source=call_source.describe() + (f" ({label})" if label else "")))
    with open_cluster(options, settings.device) as (client, plan):
        hook("cluster", f"{plan.describe() if plan else options.scheduler}; dashboard {client.dashboard_link}")
        summary = run_batch(job, records, client, setup=setup, asr_threads=plan.asr_threads if plan else 0,
                            hook=hook, clock=clock)
    published, crm, crm_error = None, None, None
    if isinstance(call_source, Bitrix24Source):
        from pipeline.publish import publish_stored

        crm, crm_error = _read_crm(call_source, records, window, run_id, artifact_store,
                                   settings.report.won_within_days)

        done = [o.call_id for o in summary.calls if o.status in ("processed", "rescored", "skipped")]
        published = publish_stored(artifact_store, done, settings, client=call_source.client, dry_run=dry_run,
                                   show=lambda call_id, text: hook("comment", (call_id, text)))
    try:
        artifact_store.write(run_key(run_id), summary.model_dump_json(indent=2).encode())
    except StoreError as error:
        return RunReport(summary=summary, store=artifact_store, publish=published, summary_error=str(error),
                         crm=crm, crm_error=crm_error)
    return RunReport(summary=summary, store=artifact_store, publish=published, crm=crm, crm_error=crm_error)


def _read_crm(source, records, window: TimeWindow | None, run_id: str, store: ArtifactStore,
              won_within_days: float) -> tuple[CrmSnapshot | None, str | None]:
    """The deals of the run's calls, stored for the report; a portal that refuses (no crm scope) costs the report
    its funnel, not the run its calls."""
    import logging
    from datetime import timedelta

    from pipeline.bitrix24.crm import read_crm
    from pipeline.bitrix24.errors import Bitrix24Error
    from pipeline.report.deals import load_snapshots
    from pipeline.stores import StoreError, crm_key

    try:
        # Deals of earlier calls that were still open: read again, so that one won days after its call counts.
        earlier, _ = load_snapshots(store, read_since=datetime.now(UTC) - timedelta(days=won_within_days))
        still_open = sorted({deal.deal_id for snapshot in earlier for deal in snapshot.deals if deal.won is None})
        snapshot = read_crm(source.client, records, source.window(window), run_id=run_id, portal=source.portal,
                            refresh=still_open)
        store.write(crm_key(run_id), snapshot.model_dump_json(by_alias=True).encode())
    except (Bitrix24Error, StoreError) as error:
        logging.getLogger(__name__).warning("no CRM data for the report: %s", error)
        return None, str(error)
    return snapshot, None
