"""What keeps the workbench's pages to the people allowed to see them: login throttling, CSRF tokens, security
headers, the session secret, and store keys from URLs checked before they reach the store."""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.support.fileio import write_text_atomic

__all__ = ["LoginLimiter", "SecurityHeaders", "csrf_token", "csrf_valid", "safe_call_id", "session_secret"]

_CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def safe_call_id(call_id: str) -> bool:
    """Whether a call id from a URL can name store keys: the characters call ids are made of (sources/base.py),
    never a path of its own ("..", "/")."""
    return bool(_CALL_ID.match(call_id)) and ".." not in call_id


class LoginLimiter:
    """At most `attempts` failed logins per (client address, login) within `window_s` seconds.

    The clock is injected so that tests pass time instead of waiting for it.
    """

    def __init__(self, *, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self.clock()
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def retry_after_s(self, client: str, login: str) -> float:
        """0 when a login may be tried now; else the seconds until it may."""
        with self._lock:
            failures = self._recent((client, login.lower()))
            if len(failures) < self.attempts:
                return 0.0
            return max(0.0, failures[0] + self.window_s - self.clock())

    def failed(self, client: str, login: str) -> None:
        with self._lock:
            self._recent((client, login.lower())).append(self.clock())
            if len(self._failures) > 10_000:  # forget idle keys, so many addresses cannot grow this without end
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, client: str, login: str) -> None:
        with self._lock:
            self._failures.pop((client, login.lower()), None)


def csrf_token(session: dict) -> str:
    """The session's CSRF token (made on first use); every form carries it and every POST must return it."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_valid(session: dict, given: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and given) and hmac.compare_digest(str(expected), str(given))


def session_secret(configured: str | None, users_file: Path) -> str:
    """The key that signs session cookies: the configured one, else one kept beside the users file."""
    if configured:
        return configured
    path = users_file.with_name(users_file.name + ".secret")
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    secret = secrets.token_urlsafe(48)
    write_text_atomic(path, secret + "\n")
    path.chmod(0o600)
    return secret


class SecurityHeaders:
    """Adds the security headers to every answer: a strict CSP (scripts, styles and media from this site only),
    no framing except by the configured Bitrix24 portals, no MIME sniffing, no referrer to other sites."""

    def __init__(self, app: ASGIApp, *, frame_ancestors: list[str]) -> None:
        self.app = app
        ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
        csp = (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               f"media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
               f"frame-ancestors {ancestors}")
        self.headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"same-origin"), (b"cross-origin-opener-policy", b"same-origin")]
        if not frame_ancestors:
            self.headers.append((b"x-frame-options", b"DENY"))

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
