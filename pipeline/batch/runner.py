"""The client side of a run: list the calls, keep a bounded number in flight on the cluster, collect outcomes.

Each call is a chain of three tasks (worker.py); the next call starts when one finishes, so at most
`max_in_flight` recordings and transcripts sit in worker memory however long the night's list is. A worker that
dies takes its tasks with it; the scheduler runs them again elsewhere (up to its allowed failures), and the
store's completion marker keeps a call that was finished twice from being stored twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from pipeline.batch.claims import Claims
from pipeline.batch.job import BatchJob, CallOutcome, Prepared, RunSummary
from pipeline.batch.worker import CallqaWorkerPlugin, finish_call, prepare_call, transcribe_call
from pipeline.derive import DeriveSetup
from pipeline.errors import CallqaError
from pipeline.sources.base import CallRecord
from pipeline.support.progress import ProgressHook, no_progress

__all__ = ["run_batch"]

logger = logging.getLogger(__name__)

def _gpu_workers(client) -> int:
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return sum(1 for worker in workers if worker.get("resources", {}).get("GPU"))


class _ClaimKeeper(threading.Thread):
    """Renews this run's claims on the calls in flight every third of their lifetime, from the run's own process:
    while the run lives its calls stay its own, queued or transcribing; when it dies, they lapse."""

    def __init__(self, claims: Claims, interval_s: float) -> None:
        super().__init__(name="callqa-claims", daemon=True)
        self.claims, self.interval_s = claims, interval_s
        self.calls: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            with self.lock:
                calls = sorted(self.calls)
            for call_id in calls:
                try:
                    self.claims.renew(call_id)
                except CallqaError as error:  # a claim may lapse; the call itself goes on
                    logger.warning("call %s: claim not renewed: %s", call_id, error)

    def hold(self, call_id: str) -> None:
        with self.lock:
            self.calls.add(call_id)

    def drop(self, call_id: str) -> None:
        with self.lock:
            self.calls.discard(call_id)


def _claim_gone_or_lapsed(claims: Claims, call_id: str) -> bool:
    try:
        holder = claims.holder(call_id)
    except CallqaError:
        return False
    return holder is None or not holder.live(claims.clock())


class _Dispatch:
    """One run's calls on the cluster: at most `in_flight` chains of tasks at once, a new call started as each
    one finishes; calls another run holds are set aside and tried again once its claim is gone or has lapsed."""

    def __init__(self, job: BatchJob, records: list[CallRecord], client, *, plugin_name: str, gpus: int,
                 in_flight: int, keeper: _ClaimKeeper, hook: ProgressHook) -> None:
        from distributed import as_completed

        self.job, self.client, self.plugin_name, self.keeper, self.hook = job, client, plugin_name, keeper, hook
        self.total, self.in_flight = len(records), in_flight
        self.asr_resources = {"GPU": 1} if gpus else None
        self.pending = deque(records)
        self.call_of: dict[str, str] = {}  # future key -> call id
        self.outcomes: dict[str, CallOutcome] = {}
        self.held_elsewhere: dict[str, tuple[CallRecord, CallOutcome]] = {}
        self.attempts: dict[str, int] = {}
        self.futures = as_completed()

    def run(self, claims: Claims, poll_s: float) -> None:
        """Every call to its outcome; a call still held by another run after a whole claim lifetime is reported
        as held."""
        self.drain()
        waited_since = time.monotonic()
        while self.held_elsewhere and time.monotonic() - waited_since < claims.ttl_s + poll_s:
            self.keeper.stopping.wait(poll_s)
            ready = [call_id for call_id in self.held_elsewhere if _claim_gone_or_lapsed(claims, call_id)]
            for call_id in ready:
                self.pending.append(self.held_elsewhere.pop(call_id)[0])
            if ready:
                self.drain()
        for _record, outcome in self.held_elsewhere.values():
            self.finished(outcome)

    def start_next(self) -> None:
        if not self.pending:
            return
        record = self.pending.popleft()
        attempt = self.attempts[record.call_id] = self.attempts.get(record.call_id, 0) + 1
        future = self.client.submit(prepare_call, record, self.plugin_name, pure=False,
                                    key=f"prepare-{self.job.run_id}-{record.call_id}-{attempt}")
        self.call_of[future.key] = record.call_id
        self.keeper.hold(record.call_id)
        self.futures.add(future)

    def finished(self, outcome: CallOutcome) -> None:
        self.keeper.drop(outcome.call_id)
        self.outcomes[outcome.call_id] = outcome
        self.hook("call", outcome, completed=len(self.outcomes), total=self.total)
        self.start_next()

    def drain(self) -> None:
        """Start calls up to the limit, then handle each task as it completes until none is left."""
        for _ in range(min(self.in_flight, len(self.pending))):
            self.start_next()
        for future in self.futures:
            call_id = self.call_of.pop(future.key)
            try:
                value = future.result()
            except Exception as error:  # the task itself could not run: its worker died too often, say
                self.finished(CallOutcome(call_id=call_id, status="failed",
                                          reason=f"{type(error).__name__}: {error}"))
                continue
            finally:
                future.release()
            self.completed(call_id, value)

    def completed(self, call_id: str, value: CallOutcome | Prepared) -> None:
        if isinstance(value, CallOutcome):
            self.finished(value)
        elif value.action == "analyze":
            run_id, plugin_name = self.job.run_id, self.plugin_name
            transcribed = self.client.submit(transcribe_call, value, plugin_name, resources=self.asr_resources,
                                             key=f"transcribe-{run_id}-{call_id}", pure=False)
            stored = self.client.submit(finish_call, transcribed, plugin_name, key=f"finish-{run_id}-{call_id}",
                                        pure=False)
            self.call_of[stored.key] = call_id
            self.futures.add(stored)
            del transcribed  # `stored` keeps it alive on the cluster until it is needed
        elif value.action == "claimed":
            self.keeper.drop(call_id)
            self.held_elsewhere[call_id] = (value.record, CallOutcome(call_id=call_id, status="skipped",
                                                                      reason=value.reason))
            self.start_next()
        else:
            status = {"skip": "skipped", "rescored": "rescored", "failed": "failed"}[value.action]
            self.finished(CallOutcome(call_id=call_id, status=status, reason=value.reason,
                                      audio_s=value.duration_s))


def run_batch(job: BatchJob, records: list[CallRecord], client, *, setup: DeriveSetup | None,
              asr_threads: int = 0, hook: ProgressHook | None = None, poll_s: float = 2.0,
              clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> RunSummary:
    """Process `records` on the cluster behind `client`; returns what happened to each call.

    A call another run is working on (it holds the call's claim) is tried again once that claim is gone (the
    other run stored or failed the call) or has lapsed (that run died): at the end every call of the list is
    done, failed, or, after `run.claim_ttl_s` of waiting, reported as still held by the other run.

    Args:
        job: the run's settings and identity.
        records: the calls, from the source.
        client: a connected distributed.Client.
        setup: lexicons, scorecard and options results are derived with (None: defaults, no hits, no score).
        asr_threads: CPU threads for each worker's ASR (0: the ASR's default).
        hook: progress: `hook("call", outcome, completed=calls done, total=calls)` as each call finishes.
        poll_s: how often to look at the claims of calls held by another run.
        clock: the time the summary's start and finish are stamped with.
    """
    from pipeline.stores import open_store

    started = time.perf_counter()
    started_at = clock().isoformat(timespec="seconds")
    plugin_name = f"callqa-{job.run_id}"
    gpus = _gpu_workers(client)
    slots = job.settings.run.gpu_slots
    workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    # Each worker downloads with its own client: together they stay within the portal's rate.
    client.register_plugin(CallqaWorkerPlugin(job, setup, cpu_threads=asr_threads,
                                              concurrent_calls=slots if gpus else 1, rate_share=1 / (workers + 1)),
                           name=plugin_name)
    in_flight = job.settings.run.max_in_flight or 4 * (slots * gpus if gpus else workers)
    logger.info("run %s: %d calls, %d in flight, %s", job.run_id, len(records), in_flight,
                f"{gpus} GPU workers" if gpus else f"{workers} CPU workers")
    ttl_s = job.settings.run.claim_ttl_s
    claims = Claims(open_store(job.store, job.settings.s3), job.run_id, ttl_s=ttl_s)
    keeper = _ClaimKeeper(claims, ttl_s / 3)
    keeper.start()
    dispatch = _Dispatch(job, records, client, plugin_name=plugin_name, gpus=gpus, in_flight=in_flight,
                         keeper=keeper, hook=hook or no_progress)
    try:
        dispatch.run(claims, poll_s)
    finally:
        keeper.stopping.set()
        try:  # also when the run fails: the workers' teardown removes their recordings folders
            client.unregister_worker_plugin(plugin_name)
        except Exception:  # a worker that left already has nothing to unregister
            logger.debug("unregistering %s failed", plugin_name, exc_info=True)
    return RunSummary(run_id=job.run_id, source=job.source, store=job.store, started_at=started_at,
                      finished_at=clock().isoformat(timespec="seconds"),
                      wall_s=round(time.perf_counter() - started, 2),
                      calls=sorted(dispatch.outcomes.values(), key=lambda outcome: outcome.call_id))
