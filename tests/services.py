"""Real servers on loopback for tests: an S3-compatible server (moto's server mode), a proxy in front of it that
injects faults into writes, a Dask cluster made of `dask scheduler` and `dask worker` processes, and uvicorn
serving an ASGI app (the workbench). Each starts as its own process (the proxy and uvicorn as threads) and is
stopped at the end."""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

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
class ProxyFaults:
    """What the S3 proxy did: writes it answered with 503, writes it applied and left unanswered, requests passed."""

    errors: int = 0
    hangs: int = 0
    passed: int = 0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that gave up on a hung request (its time-out) is the fault working, not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def s3_fault_proxy(upstream: str, *, error_rate: float = 0.0, hang_rate: float = 0.0,
                   seed: int = 3) -> Iterator[tuple[str, ProxyFaults]]:
    """A proxy on loopback in front of an S3 server: a share of writes (PUT, POST, DELETE) is answered 503
    SlowDown without reaching the server, another is passed on and then left unanswered until the proxy stops
    (the client times out, not knowing whether it happened). Yields (its endpoint URL, the fault counts)."""
    target = urlsplit(upstream)
    faults = ProxyFaults()
    stopping = threading.Event()
    chance = random.Random(seed)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:
            return None

        def _forward(self) -> tuple[int, list[tuple[str, str]], bytes]:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                headers = {name: value for name, value in self.headers.items()
                           if name.lower() not in ("expect", "connection")}  # the proxy answered 100 itself
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.getheaders(), response.read()
            finally:
                connection.close()

        def _handle(self) -> None:
            fault = None
            if self.command in ("PUT", "POST", "DELETE"):
                with lock:
                    draw = chance.random()
                fault = "error" if draw < error_rate else "hang" if draw < error_rate + hang_rate else None
            if fault == "error":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                faults.errors += 1
                body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                        b"<Message>Please reduce your request rate.</Message></Error>")
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            status, headers, body = self._forward()
            if fault == "hang":
                faults.hangs += 1
                stopping.wait()
                self.close_connection = True
                return
            faults.passed += 1
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = _QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="s3-fault-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: Path | None = None
    nthreads: int = 1
    env: dict | None = None

    def kill_worker(self, index: int) -> None:
        """SIGKILL: the worker dies without a goodbye, as when a machine fails or the OOM killer strikes."""
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait()

    def start_worker(self, index: int) -> None:
        """A worker process under the name `worker-INDEX` (again, after it was killed)."""
        with (self.logs / f"worker-{index}.log").open("ab") if self.logs else open(os.devnull, "wb") as log:
            process = subprocess.Popen(
                [str(BIN / "dask"), "worker", self.address, "--no-nanny", "--nthreads", str(self.nthreads),
                 "--name", f"worker-{index}", "--dashboard-address", ":0", "--host", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, env=self.env)
        if index < len(self.workers):
            self.workers[index] = process
        else:
            self.workers.append(process)


@contextlib.contextmanager
def dask_cluster(workers: int, logs: Path, *, nthreads: int = 1) -> Iterator[DaskCluster]:
    """`dask scheduler` and `workers` x `dask worker --no-nanny` processes on loopback."""
    port = free_port()
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3"}
    with (logs / "scheduler.log").open("wb") as output:
        scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                      "--dashboard-address", ":0"], stdout=output, stderr=subprocess.STDOUT, env=env)
    cluster = DaskCluster(address=f"tcp://127.0.0.1:{port}", scheduler=scheduler, logs=logs, nthreads=nthreads,
                          env=env)
    try:
        _wait_for_port(port, scheduler)
        for index in range(workers):
            cluster.start_worker(index)
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


class _Server(uvicorn.Server):
    """uvicorn's server, telling the test when it listens (an event, not a poll) and on which port."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        self.listening.set()


@contextlib.contextmanager
def asgi_server(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port, in a thread; yields its base URL."""
    # The app applies X-Forwarded-For itself (after keeping the real peer), as under `callqa serve`.
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off",
                                    proxy_headers=False))
    thread = threading.Thread(target=server.run, name="test-asgi-server", daemon=True)
    thread.start()
    if not server.listening.wait(30):
        raise RuntimeError("the test web server did not start within 30 s")
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)
