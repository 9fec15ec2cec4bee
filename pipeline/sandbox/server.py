"""The sandbox on real HTTP (or https, with a certificate made at start): a threaded server on loopback, started
and stopped by `serve`."""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from pipeline.bitrix24.encoding import parse_php_query
from pipeline.sandbox.api import ApiError, Sandbox, SandboxOptions
from pipeline.sandbox.portal import Portal
from pipeline.sandbox.tls import make_certificate

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
        with sandbox.portal.lock:
            sandbox.rest_requests += 1
            every = options.fail_every and sandbox.rest_requests % options.fail_every == 0
        if over_limit or every or sandbox.random.random() < options.fail_rate:
            rejected["limit" if over_limit else "injected_503"] += 1
            return self._json(503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
        try:
            caller = sandbox.check_auth(user, secret, params)
            result, extra, timing = sandbox.call(caller, method, {k: v for k, v in params.items() if k != "auth"})
        except ApiError as error:
            # No `time` block on an error (_includes/error-info.md); a client blocked by OPERATION_TIME_LIMIT
            # waits for the `operating_reset_at` of its last successful answer (limits.md).
            return self._json(error.status, {"error": error.code, "error_description": error.description})
        if sandbox.is_write(method, params):
            fault = sandbox.write_fault()
            if fault == "unanswered":  # applied, then no answer in time: the client cannot tell whether it happened
                sandbox.portal.rejected["unanswered"] += 1
                sandbox.stopping.wait(options.hang_s)
                self.close_connection = True
                return None
            if fault is not None:  # applied, then a server error: the same doubt, answered at once
                sandbox.portal.rejected["server_error"] += 1
                description = {"INTERNAL_SERVER_ERROR": "Internal server error",
                               "ERROR_UNEXPECTED_ANSWER": "Server returned an unexpected response"}[fault]
                return self._json(500, {"error": fault, "error_description": description})
        return self._json(200, {"result": result, **extra, "time": timing})


@dataclass
class Running:
    """A served sandbox. `ca_path`: with TLS, the PEM certificate clients must trust (httpx `verify=`, requests'
    REQUESTS_CA_BUNDLE, ssl's SSL_CERT_FILE); None on plain http."""

    sandbox: Sandbox
    server: ThreadingHTTPServer
    ca_path: Path | None = None

    @property
    def webhook_url(self) -> str:
        return self.sandbox.webhook_url

    @property
    def base_url(self) -> str:
        return self.sandbox.base_url


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that gave up on a request (its time-out: the faults make it do so) is not an error of the
        server's: without this, each one prints a traceback into the test's or the soak's output."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _TlsServer(_Server):
    """Wraps each accepted connection in TLS, with the handshake in the request's own thread (a client that
    connects and says nothing must not block the accept loop)."""

    context: ssl.SSLContext

    def finish_request(self, request, client_address) -> None:
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


@contextlib.contextmanager
def serve(portal: Portal, options: SandboxOptions | None = None, *, host: str = "127.0.0.1",
          port: int = 0, tls: bool = False) -> Iterator[Running]:
    """Run the sandbox on loopback in a background thread for the duration of the block.

    Args:
        tls: serve https with a certificate made now for 127.0.0.1 and localhost (the official SDK speaks only
            https); `Running.ca_path` is the certificate to trust.

    Example:
        with serve(Portal(), tls=True) as running:
            httpx.post(running.webhook_url + "profile", verify=str(running.ca_path))
    """
    sandbox = Sandbox(portal, options or SandboxOptions())
    handler = type("Handler", (_Handler,), {"sandbox": sandbox})
    with contextlib.ExitStack() as stack:
        ca_path = None
        if tls:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bitrix24-sandbox-")))
            ca_path, key_path = make_certificate(folder)
            server: ThreadingHTTPServer = _TlsServer((host, port), handler)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(ca_path, key_path)
            server.context = context  # type: ignore[attr-defined]
        else:
            server = _Server((host, port), handler)
        server.daemon_threads = True
        sandbox.base_url = f"{'https' if tls else 'http'}://{host}:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="bitrix24-sandbox", daemon=True)
        thread.start()
        try:
            yield Running(sandbox=sandbox, server=server, ca_path=ca_path)
        finally:
            sandbox.stopping.set()
            server.shutdown()
            server.server_close()
