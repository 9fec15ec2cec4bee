"""A small Bitrix24 REST client: webhook or OAuth, the portal's limits, `batch`, stable paging, typed errors.

    client = Bitrix24Client(WebhookAuth(SecretStr("https://portal.bitrix24.ru/rest/1/secret/")))
    rows = list(client.list_by_id("voximplant.statistic.get", {"FILTER": {...}}, upper=True))
    out = client.batch({"c1": ("crm.activity.binding.list", {"activityId": 7943})})

What it does for the portal's rules (../shared/reference/bitrix24-rest.md, sections 0, 1, 6, 7):
- a leaky bucket on the client side (50 requests, draining 2/s; Enterprise: 250 and 5/s), so the portal's own
  bucket is never the one that says no;
- 503 QUERY_LIMIT_EXCEEDED: back off and retry; 429 OPERATION_TIME_LIMIT: wait until `operating_reset_at`;
- 5xx and bodies that are not JSON (an HTML error page under load): retry reads; a write that was sent and got
  no answer is never retried blindly: it raises AmbiguousWrite, and the caller looks before it posts again;
- OAuth `expired_token`: refresh, hand the new tokens to a callback that persists them, repeat the call (up to
  three refreshes per call: a token can expire again while a call waits out retries).
The retry loop is written out rather than delegated to a retry library because each Bitrix24 error needs its own
reaction (wait for a reset time, refresh, never repeat a write). Secrets stay inside the auth objects: errors and
logs name the method only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from pipeline.bitrix24.encoding import php_query
from pipeline.bitrix24.errors import (
    AmbiguousWrite,
    AuthError,
    Bitrix24Error,
    RateLimited,
    TransportError,
    error_for,
)
from pipeline.errors import ConfigError
from pipeline.support.fileio import write_text_atomic
from pipeline.support.logs import add_secret

__all__ = ["BatchOutcome", "Bitrix24Client", "OAuthAuth", "WebhookAuth", "check_portal_url"]

logger = logging.getLogger(__name__)

USER_AGENT = "callqa/0.1 (+https://github.com/callqa)"
PAGE = 50
MAX_TOKEN_REFRESHES = 3  # per call
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def check_portal_url(url: str, what: str) -> httpx.URL:
    """https only, except plain http on loopback (the sandbox)."""
    parsed = httpx.URL(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.host in LOOPBACK):
        return parsed
    raise ConfigError(f"{what} must use https (plain http only for a local sandbox on 127.0.0.1)")


class WebhookAuth:
    """An inbound webhook: https://PORTAL/rest/USER_ID/SECRET/ (the secret is the authorization)."""

    def __init__(self, url: SecretStr) -> None:
        raw = url.get_secret_value().strip()
        check_portal_url(raw, "the Bitrix24 webhook")
        parts = httpx.URL(raw).path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "rest":
            raise ConfigError("the Bitrix24 webhook must look like https://PORTAL/rest/USER_ID/SECRET/")
        self._base = raw.rstrip("/") + "/"
        self.portal = f"{httpx.URL(raw).scheme}://{httpx.URL(raw).netloc.decode()}"
        add_secret(parts[2])  # the webhook's secret is in every request URL: keep it out of any log

    def endpoint(self, method: str) -> tuple[str, dict]:
        return f"{self._base}{method}.json", {}

    def refresh(self, client: httpx.Client) -> bool:
        return False  # a webhook has nothing to refresh


class OAuthAuth:
    """An OAuth app: tokens in the `auth` parameter, refreshed on `expired_token`.

    Every refresh returns a new refresh token and spends the old one, so processes that share an app must share
    its tokens: with `token_file` the refresh happens under a file lock, and a process that finds the file
    already refreshed by another simply adopts the new pair (the file must be on storage all of them see).
    """

    def __init__(self, *, portal: str, client_id: str, client_secret: SecretStr, access_token: SecretStr,
                 refresh_token: SecretStr, token_url: str = "https://oauth.bitrix24.tech/oauth/token/",
                 on_refresh: Callable[[str, str], None] | None = None, token_file: Path | None = None) -> None:
        check_portal_url(portal, "the Bitrix24 portal")
        check_portal_url(token_url, "the Bitrix24 token endpoint")
        self.portal = portal.rstrip("/")
        self._client_id, self._client_secret = client_id, client_secret
        self._access, self._refresh = access_token.get_secret_value(), refresh_token.get_secret_value()
        for secret in (self._access, self._refresh, client_secret.get_secret_value()):
            add_secret(secret)
        self._token_url = token_url
        self._on_refresh = on_refresh
        self._token_file = token_file
        self._lock = threading.Lock()

    def endpoint(self, method: str) -> tuple[str, dict]:
        return f"{self.portal}/rest/{method}.json", {"auth": self._access}

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._token_file is None:
            yield
            return
        with open(self._token_file.with_suffix(self._token_file.suffix + ".lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def refresh(self, client: httpx.Client) -> bool:
        with self._lock, self._file_lock():
            if self._token_file is not None and self._token_file.is_file():
                stored = json.loads(self._token_file.read_text(encoding="utf-8"))
                if stored.get("access_token") and stored["access_token"] != self._access:
                    self._access, self._refresh = stored["access_token"], stored["refresh_token"]
                    add_secret(self._access)
                    add_secret(self._refresh)
                    return True  # another process refreshed already: use its tokens
            response = client.get(self._token_url, params={
                "grant_type": "refresh_token", "client_id": self._client_id,
                "client_secret": self._client_secret.get_secret_value(), "refresh_token": self._refresh})
            try:
                body = response.json()
            except ValueError:
                raise TransportError("oauth/token", "NOT_JSON", f"HTTP {response.status_code}") from None
            if "access_token" not in body:
                raise AuthError("oauth/token", body.get("error", "invalid_grant"),
                                "the refresh token was refused: authorize the app again")
            self._access, self._refresh = body["access_token"], body["refresh_token"]
            add_secret(self._access)
            add_secret(self._refresh)
            if self._token_file is not None:
                write_text_atomic(self._token_file, json.dumps({"access_token": self._access,
                                                                "refresh_token": self._refresh}))
            if self._on_refresh:
                self._on_refresh(self._access, self._refresh)
            return True


class _LeakyBucket:
    """The portal's limiter, mirrored: each request fills one unit, the bucket drains `rate` units a second."""

    def __init__(self, capacity: int, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.capacity, self.rate, self.clock, self.sleep = capacity, rate, clock, sleep
        self.level, self.updated = 0.0, clock()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        with self.lock:
            now = self.clock()
            self.level = max(0.0, self.level - (now - self.updated) * self.rate)
            self.updated = now
            if self.level + 1 > self.capacity:
                wait = (self.level + 1 - self.capacity) / self.rate
                self.sleep(wait)
                self.level = max(0.0, self.level - wait * self.rate)
                self.updated = self.clock()
            self.level += 1


@dataclass
class BatchOutcome:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Bitrix24Error] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)


def _as_map(value: Any) -> dict:
    return value if isinstance(value, dict) else {}  # empty maps come as [] (reference section 6)


class Bitrix24Client:
    """Thread-safe; one per process (or per worker, with its share of the portal's rate)."""

    def __init__(self, auth: WebhookAuth | OAuthAuth, *, rate_per_s: float = 2.0, burst: int = 50,
                 timeout_s: float = 30.0, max_retries: int = 8, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.auth = auth
        self.sleep = sleep
        self.max_retries = max_retries
        self.bucket = _LeakyBucket(max(1, burst - 2), rate_per_s, clock, sleep)  # a little room for others
        self.http = httpx.Client(transport=transport, timeout=timeout_s, follow_redirects=False,
                                 headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.clock = clock
        self.requests = 0  # sent, for the benchmark's requests-per-call figure
        self._reset_at: dict[str, float] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Bitrix24Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _backoff(self, attempt: int) -> float:
        return min(30.0, 0.5 * 2**attempt)

    def call(self, method: str, params: dict | None = None, *, write: bool = False) -> dict:
        """One REST call; returns the whole envelope (result, total, next, time).

        Args:
            method: e.g. "crm.timeline.comment.add".
            params: JSON body.
            write: the call changes data: never repeated once sent without an answer (AmbiguousWrite).
        """
        params = params or {}
        refreshes = 0
        for attempt in range(self.max_retries + 1):
            wait_until = self._reset_at.get(method)
            if wait_until and wait_until > time.time():
                self.sleep(wait_until - time.time())
            url, auth_params = self.auth.endpoint(method)
            self.bucket.acquire()
            self.requests += 1
            try:
                response = self.http.post(url, json={**params, **auth_params})
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                # Nothing reached the portal: safe to repeat, even a write.
                if attempt == self.max_retries:
                    raise TransportError(method, "CONNECT", type(error).__name__) from None
                self.sleep(self._backoff(attempt))
                continue
            except httpx.TransportError as error:
                if write:
                    raise AmbiguousWrite(method, "NO_ANSWER", f"{type(error).__name__} after sending") from None
                if attempt == self.max_retries:
                    raise TransportError(method, "NO_ANSWER", type(error).__name__) from None
                self.sleep(self._backoff(attempt))
                continue
            try:
                body = response.json()
            except (ValueError, json.JSONDecodeError):
                body = None
            if not isinstance(body, dict):  # an HTML page from a proxy under load, or worse
                if write and response.status_code >= 500:
                    raise AmbiguousWrite(method, "NOT_JSON", f"HTTP {response.status_code} after sending")
                if attempt == self.max_retries:
                    raise TransportError(method, "NOT_JSON", f"HTTP {response.status_code}")
                self.sleep(self._backoff(attempt))
                continue
            if "error" not in body:
                reset = (body.get("time") or {}).get("operating_reset_at")
                if reset and (body.get("time") or {}).get("operating", 0) > 300:
                    self._reset_at[method] = float(reset)  # close to the 480 s budget: slow down
                return body
            code, description = str(body.get("error") or ""), str(body.get("error_description") or "")
            # The portal refused the call unread: safe to repeat, even a write. A token can expire again while a
            # call waits out retries and timeouts (tokens live an hour, the sandbox's tests two seconds), so a few
            # refreshes are allowed; the bound stops a portal that hands out dead tokens.
            if code == "expired_token" and refreshes < MAX_TOKEN_REFRESHES and self.auth.refresh(self.http):
                refreshes += 1
                continue
            if code in ("QUERY_LIMIT_EXCEEDED", "INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER") \
                    and attempt < self.max_retries:
                self.sleep(self._backoff(attempt))
                continue
            if code == "OPERATION_TIME_LIMIT" and attempt < self.max_retries:
                reset = (body.get("time") or {}).get("operating_reset_at")
                self.sleep(max(1.0, float(reset) - time.time()) if reset else 60.0)
                continue
            refused = error_for(method, code, description)
            if isinstance(refused, RateLimited):
                logger.warning("Bitrix24 %s still limited after %d retries", method, attempt)
            raise refused
        raise TransportError(method, "RETRIES", f"gave up after {self.max_retries} retries")

    def result(self, method: str, params: dict | None = None, *, write: bool = False) -> Any:
        return self.call(method, params, write=write).get("result")

    def batch(self, commands: dict[str, tuple[str, dict]], *, halt: bool = False, write: bool = False) -> BatchOutcome:
        """Up to 50 calls in one request; each sub-call's error comes back on its own (the batch is HTTP 200)."""
        if len(commands) > PAGE:
            raise ValueError(f"a batch holds at most {PAGE} commands, got {len(commands)}")
        cmd = {key: f"{method}?{php_query(params)}" if params else method for key, (method, params) in commands.items()}
        body = self.result("batch", {"halt": 1 if halt else 0, "cmd": cmd}, write=write) or {}
        outcome = BatchOutcome(results=_as_map(body.get("result")),
                               totals={k: int(v) for k, v in _as_map(body.get("result_total")).items()})
        for key, error in _as_map(body.get("result_error")).items():
            outcome.errors[key] = error_for(commands[key][0], str(error.get("error") or ""),
                                            str(error.get("error_description") or ""))
        return outcome

    def list_by_id(self, method: str, params: dict | None = None, *, upper: bool = False) -> Iterator[dict]:
        """Every row of a list method, paged by ID: sorted by ID ascending, `>ID` = the last seen, `start=-1`
        (no count): stable however the list changes meanwhile (reference section 2.3)."""
        params = dict(params or {})
        order: dict[str, str | dict[str, str]]
        if upper:  # voximplant.statistic.get and user.get: FILTER and SORT/ORDER strings
            filter_key, order = "FILTER", {"SORT": "ID", "ORDER": "ASC"}
        else:
            filter_key, order = "filter", {"order": {"ID": "ASC"}}
        base_filter = dict(params.pop(filter_key, {}) or {})
        last_id = 0
        while True:
            page_filter = {**base_filter, ">ID": last_id} if last_id else base_filter
            rows = self.result(method, {**params, **order, filter_key: page_filter, "start": -1}) or []
            yield from rows
            if len(rows) < PAGE:
                return
            last_id = int(rows[-1]["ID"])

    def download(self, url: str, *, max_bytes: int, referer: str, deadline_s: float = 300.0) -> tuple[bytes, str]:
        """GET a signed download URL as a browser would (a real User-Agent and Referer, or some portals answer
        with an HTML 404); returns (bytes, content type). Counts against the rate like any request.

        A transfer that stalls fails after the client's timeout (per read); one that crawls, after `deadline_s`.
        """
        self.bucket.acquire()
        self.requests += 1
        started = self.clock()
        try:
            with self.http.stream("GET", url, headers={"Accept": "*/*", "Referer": referer,
                                                       "Accept-Language": "ru,en"}) as response:
                if response.status_code != 200:
                    raise TransportError("download", f"HTTP_{response.status_code}", "the recording was not served")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise TransportError("download", "TOO_LARGE", f"over {max_bytes // 1_000_000} MB")
                    if self.clock() - started > deadline_s:
                        raise TransportError("download", "TOO_SLOW", f"not done after {deadline_s:.0f} s")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("content-type", "")
        except httpx.TransportError as error:
            raise TransportError("download", "NO_ANSWER", type(error).__name__) from None
