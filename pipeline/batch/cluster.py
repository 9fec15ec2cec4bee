"""The Dask cluster a run uses: an existing scheduler, or a LocalCluster sized to this machine.

Sizing (docs/batch.md): with a CUDA GPU, one worker process owns it and transcribes `gpu_slots` calls at once
(resource `GPU=gpu_slots`; each transcription asks for `GPU=1`); without one, one CPU worker per core, each
with a single-threaded ASR (bench/README.md measures the split).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.settings import RunOptions
from pipeline.support.cores import available_cores

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ClusterPlan", "open_cluster", "plan_local_cluster"]


@dataclass(frozen=True)
class ClusterPlan:
    n_workers: int
    threads_per_worker: int
    asr_threads: int  # CPU threads each worker's ASR uses
    gpu_slots: int  # 0 without a GPU

    def describe(self) -> str:
        kind = f"GPU worker ({self.gpu_slots} calls at once)" if self.gpu_slots else "CPU workers"
        return (f"{self.n_workers} {kind}, {self.threads_per_worker} task threads and {self.asr_threads} ASR "
                f"threads each")


def plan_local_cluster(options: RunOptions, device: str) -> ClusterPlan:
    cores = available_cores()
    gpus = 0
    if device != "cpu":
        import ctranslate2

        gpus = ctranslate2.get_cuda_device_count()
    if gpus:
        slots = options.gpu_slots
        return ClusterPlan(n_workers=1, threads_per_worker=slots + 2, asr_threads=max(1, cores // (slots + 2)),
                           gpu_slots=slots)
    # One single-threaded ASR per core beats fewer, multi-threaded ones: whisper on short calls scales better
    # across calls than inside one (bench/README.md, batch.py).
    workers = options.workers or cores
    return ClusterPlan(n_workers=workers, threads_per_worker=1, asr_threads=max(1, cores // workers), gpu_slots=0)


@contextlib.contextmanager
def open_cluster(options: RunOptions, device: str) -> Iterator[tuple[Client, ClusterPlan | None]]:
    """Yields (a connected distributed.Client, the LocalCluster's plan or None for an existing scheduler)."""
    from distributed import Client, LocalCluster

    # Importing distributed sets its loggers to INFO (its own config): the scheduler's and nannies' start and
    # stop lines would reach an operator at the default verbosity, where only callqa's own lines belong.
    if logging.getLogger().level >= logging.WARNING:
        logging.getLogger("distributed").setLevel(logging.ERROR)

    if options.scheduler:
        with Client(options.scheduler, timeout="20s") as client:
            yield client, None
        return
    plan = plan_local_cluster(options, device)
    resources = {"GPU": plan.gpu_slots} if plan.gpu_slots else None
    # Dask's nannies start workers with OMP_NUM_THREADS=1 (distributed.nanny.pre-spawn-environ), which holds
    # CTranslate2 to one thread whatever it is asked for: give each worker its share of the cores instead.
    threads = str(plan.asr_threads)
    environment = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    with LocalCluster(n_workers=plan.n_workers, threads_per_worker=plan.threads_per_worker, processes=True,
                      resources=resources, dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                      env=environment) as cluster:
        with Client(cluster) as client:
            yield client, plan
