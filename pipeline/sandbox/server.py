"""The sandbox on real HTTP: a threaded server on loopback, started and stopped by `serve`."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from pipeline.bitrix24.encoding import parse_php_query
from pipeline.sandbox.api import ApiError, Sandbox, SandboxOptions, time_block
from pipeline.sandbox.portal import Portal

__all__ = ["Running", "serve"]


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox  # set on the server's handler class
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # the test output stays quiet
        return None

    def _send(self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stall(self, body: bytes, content_type: str) -> None:
        """Headers and the first kilobyte, then silence until the sandbox stops: the client must give up."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:1024])
        self.wfile.flush()
        self.sandbox.portal.rejected["stalled"] += 1
        self.sandbox.stopping.wait()
        self.close_connection = True

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode())

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _params(self, query: str) -> dict:
        params = parse_php_query(query)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            raw = self.rfile.read(length)
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                params.update(json.loads(raw or b"{}"))
            else:
                params.update(parse_php_query(raw.decode()))
        return params

    def _handle(self) -> None:
        sandbox = self.sandbox
        started = time.time()
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/oauth/token":
            status, payload = sandbox.token_response(dict(parse_qsl(url.query)))
            return self._json(status, payload)
        if url.path == "/rest/download.json":
            query = dict(parse_qsl(url.query))
            status, body, content_type = sandbox.download(query, self.headers.get("User-Agent", ""))
            if status == 200 and query.get("token", "").split("|")[1:2] and \
                    query["token"].split("|")[1] in sandbox.options.stalled_recordings:
                return self._stall(body, content_type)
            return self._send(status, body, content_type)
        parts = [p for p in url.path.split("/") if p]
        if not parts or parts[0] != "rest" or len(parts) not in (2, 4):
            return self._json(404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"})
        method = parts[-1].removesuffix(".json")
        user, secret = (parts[1], parts[2]) if len(parts) == 4 else (None, None)
        try:
            params = self._params(url.query)
        except (ValueError, json.JSONDecodeError):
            return self._json(400, {"error": "INVALID_REQUEST", "error_description": "Bad request body"})
        options = sandbox.options
        rejected = sandbox.portal.rejected
        if sandbox.random.random() < options.html_error_rate:
            rejected["html"] += 1
            return self._send(502, b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                              "text/html")
        over_limit = not sandbox.bucket.admit(self.client_address[0])
        if over_limit or sandbox.random.random() < options.fail_rate:
            rejected["limit" if over_limit else "injected_503"] += 1
            return self._json(503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
        try:
            sandbox.check_auth(user, secret, params)
            sandbox.check_operating_time(method)
            result, extra = sandbox.dispatch(method, {k: v for k, v in params.items() if k != "auth"})
        except ApiError as error:
            payload = {"error": error.code, "error_description": error.description}
            if error.code == "OPERATION_TIME_LIMIT":
                payload["time"] = {**time_block(started), "operating_reset_at": sandbox.blocked_until,
                                   "operating": 480.0}
            return self._json(error.status, payload)
        if sandbox.is_write(method, params):
            with sandbox.portal.lock:
                hang = sandbox.unanswered_left > 0
                sandbox.unanswered_left -= hang
            if hang:  # applied, then no answer in time: the client cannot tell whether it happened
                sandbox.portal.rejected["unanswered"] += 1
                sandbox.stopping.wait(options.hang_s)
                self.close_connection = True
                return None
        return self._json(200, {"result": result, **extra, "time": time_block(started)})


@dataclass
class Running:
    sandbox: Sandbox
    server: ThreadingHTTPServer

    @property
    def webhook_url(self) -> str:
        return self.sandbox.webhook_url

    @property
    def base_url(self) -> str:
        return self.sandbox.base_url


@contextlib.contextmanager
def serve(portal: Portal, options: SandboxOptions | None = None, *, host: str = "127.0.0.1",
          port: int = 0) -> Iterator[Running]:
    """Run the sandbox on loopback in a background thread for the duration of the block."""
    sandbox = Sandbox(portal, options or SandboxOptions())
    handler = type("Handler", (_Handler,), {"sandbox": sandbox})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    sandbox.base_url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="bitrix24-sandbox", daemon=True)
    thread.start()
    try:
        yield Running(sandbox=sandbox, server=server)
    finally:
        sandbox.stopping.set()
        server.shutdown()
        server.server_close()
