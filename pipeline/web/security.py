"""What keeps the workbench's pages to the people allowed to see them: login throttling, CSRF tokens, security
headers, the session secret, and store keys from URLs checked before they reach the store."""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.errors import ConfigError
from pipeline.support.fileio import write_text_atomic

__all__ = ["BodyLimit", "KeepPeer", "LoginLimiter", "SecurityHeaders", "csrf_token", "csrf_valid", "safe_call_id",
           "session_secret", "trusted_peer"]

_CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def safe_call_id(call_id: str) -> bool:
    """Whether a call id from a URL can name store keys: the characters call ids are made of (sources/base.py),
    never a path of its own ("..", "/")."""
    return bool(_CALL_ID.match(call_id)) and ".." not in call_id


class LoginLimiter:
    """At most `attempts` login attempts that failed per (client, login) within `window_s` seconds, and ten times
    that per client whatever the login (password spraying). A client is an IPv4 address or an IPv6 /64.

    `acquire` counts an attempt before its password is checked, so that many attempts at once cannot all pass the
    check while the first ones are still being verified; `succeeded` takes the count back. The clock is injected
    so that tests pass time instead of waiting for it.
    """

    def __init__(self, *, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._attempts: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _client(address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        attempts = self._attempts.setdefault(key, deque())
        self._attempts.move_to_end(key)
        while attempts and attempts[0] <= now - self.window_s:
            attempts.popleft()
        while len(self._attempts) > self.max_keys:  # many addresses cannot grow this without end
            self._attempts.popitem(last=False)
        return attempts

    def acquire(self, address: str, login: str) -> float:
        """0 when this attempt may go on (it is counted); else the seconds until one may."""
        client, now = self._client(address), self.clock()
        keys = [((client, login.lower()), self.attempts), ((client, "*"), 10 * self.attempts)]
        with self._lock:
            queues = [(self._recent(key, now), limit) for key, limit in keys]
            waits = [queue[0] + self.window_s - now for queue, limit in queues if len(queue) >= limit]
            if waits:
                return max(0.001, max(waits))
            for queue, _ in queues:
                queue.append(now)
            return 0.0

    def succeeded(self, address: str, login: str) -> None:
        """The attempt was the right password: it does not count against the client."""
        client = self._client(address)
        with self._lock:
            self._attempts.pop((client, login.lower()), None)
            everyone = self._attempts.get((client, "*"))
            if everyone:
                everyone.pop()


def trusted_peer(address: str | None, proxies: list[str]) -> bool:
    """Whether the connection's own peer (not what X-Forwarded-For says) is one of the trusted proxies
    (addresses or networks)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(entry, strict=False) for entry in proxies)


class KeepPeer:
    """Keeps the connection's own peer address in the request state before the forwarded headers replace the
    client address with the user's: the trusted-header check must look at who connected, not who they say."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            scope.setdefault("state", {})["peer"] = client[0] if client else None
        await self.app(scope, receive, send)


class BodyLimit:
    """Answers 413 to a request body over `max_bytes` (declared or streamed), before anything parses it: forms are
    read before a route checks who is asking."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"request body too large"})


def csrf_token(session: dict) -> str:
    """The session's CSRF token (made on first use); every form carries it and every POST must return it."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_valid(session: dict, given: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and given) and hmac.compare_digest(str(expected).encode(), str(given).encode())


def session_secret(configured: str | None, users_file: Path) -> str:
    """The key that signs session cookies: the configured one, else one kept beside the users file."""
    if configured:
        if len(configured) < 32:
            raise ConfigError("web.secret_key is too short to sign sessions: at least 32 characters")
        return configured
    path = users_file.with_name(users_file.name + ".secret")
    if path.is_file():
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret) < 32:  # an emptied or truncated file would let anyone sign a session
            raise ConfigError(f"{path} holds no usable session key (under 32 characters): delete it to make a new "
                              f"one (everyone logs in again)")
        return secret
    secret = secrets.token_urlsafe(48)
    write_text_atomic(path, secret + "\n")
    path.chmod(0o600)
    return secret


def frame_ancestors_value(origins: list[str]) -> str:
    """The CSP frame-ancestors source list: the configured portal origins, else 'none'."""
    return " ".join(origins) if origins else "'none'"


class SecurityHeaders:
    """Adds the security headers to every answer: a strict CSP (scripts, styles and media from this site only),
    no framing except by the configured Bitrix24 portals, no MIME sniffing, no referrer to other sites."""

    def __init__(self, app: ASGIApp, *, frame_ancestors: list[str], https: bool = False) -> None:
        self.app = app
        ancestors = frame_ancestors_value(frame_ancestors)
        csp = (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               f"media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
               f"frame-ancestors {ancestors}")
        # Pages show transcripts: nothing is kept in a browser's or a proxy's cache after logging out; media of
        # this site cannot be embedded by another (CORP), even with the framed mode's SameSite=None cookie.
        self.headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"same-origin"), (b"cross-origin-opener-policy", b"same-origin"),
                        (b"cross-origin-resource-policy", b"same-origin"), (b"cache-control", b"no-store")]
        if not frame_ancestors:
            self.headers.append((b"x-frame-options", b"DENY"))
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A route that needs its own policy (the report page's inline script) has set it already.
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(header for header in self.headers if header[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
