"""The nightly run on Dask: `runner.run_batch` on the client, `worker` tasks on the cluster (docs/batch.md)."""

from pipeline.batch.job import BatchJob, CallOutcome, RunSummary
from pipeline.batch.runner import run_batch

__all__ = ["BatchJob", "CallOutcome", "RunSummary", "run_batch"]
