"""The nightly run on Dask: `runner.run_batch` on the client, `worker` tasks on the cluster (docs/batch.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.batch.job import BatchJob, CallOutcome, RunSummary

if TYPE_CHECKING:
    from pipeline.batch.runner import run_batch

__all__ = ["BatchJob", "CallOutcome", "RunSummary", "run_batch"]


def __getattr__(name: str) -> Any:
    # Lazily: reading a run's record (the workbench's index) needs the models here, not Dask.
    if name == "run_batch":
        from pipeline.batch.runner import run_batch

        return run_batch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
