"""Real servers on loopback for tests: an S3-compatible server (moto's server mode) and a Dask cluster made of
`dask scheduler` and `dask worker` processes. Each starts as its own process and is killed at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def s3_server(log: Path) -> Iterator[str]:
    """An S3-compatible HTTP server on loopback (moto_server); yields its endpoint URL."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: Path | None = None

    def kill_worker(self, index: int) -> None:
        """SIGKILL: the worker dies without a goodbye, as when a machine fails or the OOM killer strikes."""
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait()


@contextlib.contextmanager
def dask_cluster(workers: int, logs: Path, *, nthreads: int = 1) -> Iterator[DaskCluster]:
    """`dask scheduler` and `workers` x `dask worker --no-nanny` processes on loopback."""
    port = free_port()
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3"}
    with (logs / "scheduler.log").open("wb") as output:
        scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                      "--dashboard-address", ":0"], stdout=output, stderr=subprocess.STDOUT, env=env)
    cluster = DaskCluster(address=f"tcp://127.0.0.1:{port}", scheduler=scheduler, logs=logs)
    try:
        _wait_for_port(port, scheduler)
        for index in range(workers):
            with (logs / f"worker-{index}.log").open("wb") as output:
                cluster.workers.append(subprocess.Popen(
                    [str(BIN / "dask"), "worker", cluster.address, "--no-nanny", "--nthreads", str(nthreads),
                     "--name", f"worker-{index}", "--dashboard-address", ":0", "--host", "127.0.0.1"],
                    stdout=output, stderr=subprocess.STDOUT, env=env))
        _wait_for_workers(cluster.address, workers)
        yield cluster
    finally:
        for worker in cluster.workers:
            _stop(worker)
        _stop(scheduler)


def _wait_for_workers(address: str, count: int, timeout_s: float = 60.0) -> None:
    from distributed import Client

    with Client(address, timeout="20s") as client:
        client.wait_for_workers(count, timeout=timeout_s)
