"""A small Bitrix24 REST client: webhook or OAuth, the portal's limits, `batch`, stable paging, typed errors.

    client = Bitrix24Client(WebhookAuth(SecretStr("https://portal.bitrix24.ru/rest/1/secret/")))
    rows = list(client.list_by_id("voximplant.statistic.get", {"FILTER": {...}}, upper=True))
    out = client.batch({"c1": ("crm.activity.binding.list", {"activityId": 7943})})

What it does for the portal's rules (../shared/reference/bitrix24-rest.md, sections 0, 1, 6, 7, 8):
- a leaky bucket on the client side (50 requests, draining 2/s; Enterprise: 250 and 5/s), so the portal's own
  bucket is never the one that says no;
- 503 QUERY_LIMIT_EXCEEDED: back off and retry;
- the operating-time limit (a method's execution time summed over ten minutes, 480 s by default): each method's
  `time.operating` and `time.operating_reset_at` are kept from the successful answers (for a `batch`, from each
  sub-call's `result_time`, since every sub-call counts against its own method), and a method past
  `operating_slowdown` of the limit waits for its reset before the portal has to refuse it; after a 429
  OPERATION_TIME_LIMIT (whose body has no `time`) the call waits until the known reset (else a minute) and goes
  on, for as long as a block can last; a `batch` re-sends only its sub-calls refused that way;
- 5xx and bodies that are not JSON (an HTML error page under load): retry reads; a write is never re-sent after
  an answer that may mean it was applied (no answer, INTERNAL_SERVER_ERROR, ERROR_UNEXPECTED_ANSWER, a 5xx that
  is not a clear refusal): it raises AmbiguousWrite, and the caller looks before it posts again;
- OAuth `expired_token`: refresh, hand the new tokens to a callback that persists them, repeat the call (up to
  three refreshes per call: a token can expire again while a call waits out retries);
- insufficient_scope: MissingScope, whose one-line message names the scope to add to the webhook.
The retry loop is written out rather than delegated to a retry library because each Bitrix24 error needs its own
reaction (wait for a reset time, refresh, never repeat a write). Secrets stay inside the auth objects: errors and
logs name the method only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from pipeline.bitrix24.auth import OAuthAuth, WebhookAuth, check_portal_url
from pipeline.bitrix24.encoding import php_query
from pipeline.bitrix24.errors import (
    AmbiguousWrite,
    Bitrix24Error,
    TransportError,
    error_for,
)

__all__ = ["BatchOutcome", "Bitrix24Client", "OAuthAuth", "WebhookAuth", "check_portal_url"]

logger = logging.getLogger(__name__)

USER_AGENT = "callqa/0.1 (+https://github.com/callqa)"
PAGE = 50
MAX_TOKEN_REFRESHES = 3  # per call
OPERATING_WINDOW_S = 600.0  # the portal sums a method's time over ten one-minute buckets (reference 7.2)
BLOCK_FALLBACK_S = 60.0  # after a 429 with no known reset: one bucket's length, then try again
RESET_MARGIN_S = 1.0  # `operating_reset_at` is a whole second, cut down, and the clocks differ a little
# A block lifts by itself within the ten-minute window (docs: _includes/system-errors.md); waiting longer than
# that, with a margin, means something else is wrong.
MAX_BLOCKED_S = OPERATING_WINDOW_S + 2 * BLOCK_FALLBACK_S
# Answers that mean the portal did not run the method: safe to repeat, even a write. An error outside this set
# that comes with a 5xx (or INTERNAL_SERVER_ERROR / ERROR_UNEXPECTED_ANSWER with any status) may come from a
# method that ran: a write is then never repeated blindly.
NOT_APPLIED = frozenset({
    "QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT", "PORTAL_DELETED", "NO_AUTH_FOUND",
    "expired_token", "invalid_token", "WRONG_AUTH_TYPE", "insufficient_scope", "ACCESS_DENIED",
    "INVALID_CREDENTIALS", "user_access_error", "INVALID_REQUEST", "ERROR_BATCH_LENGTH_EXCEEDED",
    "ERROR_BATCH_METHOD_NOT_ALLOWED", "ERROR_METHOD_NOT_FOUND"})
MAYBE_APPLIED = frozenset({"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER"})


def may_have_been_applied(code: str, status: int) -> bool:
    """Whether an error answer to a write leaves open that the write happened (so it must not be re-sent)."""
    return code in MAYBE_APPLIED or (status >= 500 and code not in NOT_APPLIED)


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


def _timestamp(value: Any) -> float | None:
    """A Unix time; one doc example gives `operating_reset_at` as an ISO string (reference 0.3), so take that too."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return float(value)
        except ValueError:
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value).timestamp()
    return None


class _OperatingTime:
    """Each method's operating time over the portal's ten-minute window (reference 7.2), as far as answers show it.

    Two sources: the portal's own figure (`time.operating`, valid until `time.operating_reset_at`, when the oldest
    minute drops out), and this client's own record of each answer's `processing` time for the last ten minutes,
    for answers that carry no `operating` (batch sub-calls in the docs' examples, on-premise portals). The larger
    wins. Times are wall-clock Unix seconds, as the portal's reset times are.
    """

    def __init__(self, *, limit_s: float, slowdown: float, wall_clock: Callable[[], float]) -> None:
        self.limit_s, self.threshold_s, self.wall_clock = limit_s, limit_s * slowdown, wall_clock
        self._reported: dict[str, tuple[float, float]] = {}  # method -> (operating_s, reset_at)
        self._spent: dict[str, deque[tuple[float, float]]] = {}  # method -> (finished_at, seconds), oldest first
        self._lock = threading.Lock()

    def observe(self, method: str, timing: Any) -> None:
        """Take in the `time` block of a successful answer (or a batch sub-call's `result_time` entry)."""
        if not isinstance(timing, dict):
            return
        now = self.wall_clock()
        spent = timing.get("processing", timing.get("duration"))
        operating, reset_at = timing.get("operating"), _timestamp(timing.get("operating_reset_at"))
        with self._lock:
            if isinstance(spent, int | float) and spent > 0:
                self._spent.setdefault(method, deque()).append((now, float(spent)))
            if isinstance(operating, int | float) and reset_at is not None:
                self._reported[method] = (float(operating), reset_at)

    def _own(self, method: str, now: float) -> deque[tuple[float, float]]:
        samples = self._spent.get(method, deque())
        while samples and samples[0][0] <= now - OPERATING_WINDOW_S:
            samples.popleft()
        return samples

    def pause(self, method: str) -> float:
        """Seconds to wait before calling `method`: 0 unless its operating time is past the slow-down threshold,
        else until enough of it has dropped out of the window (the portal's reset time, when it gave one)."""
        now = self.wall_clock()
        with self._lock:
            wait = 0.0
            operating_s, reset_at = self._reported.get(method, (0.0, 0.0))
            if reset_at > now and operating_s >= self.threshold_s:
                wait = reset_at + RESET_MARGIN_S - now
            samples = self._own(method, now)
            left = sum(seconds for _, seconds in samples)
            for finished_at, seconds in samples:  # own record: until the oldest answers age out of the window
                if left < self.threshold_s:
                    break
                left -= seconds
                wait = max(wait, finished_at + OPERATING_WINDOW_S + RESET_MARGIN_S - now)
            return wait

    def reset_after_block(self, method: str, body: dict) -> float:
        """Seconds to wait after a 429: until the reset the error's body gives (the portal's docs show none), else
        the one known from the method's last successful answer, else a bucket's length."""
        now = self.wall_clock()
        reset_at = _timestamp((body.get("time") or {}).get("operating_reset_at"))
        with self._lock:
            if reset_at is None or reset_at <= now:
                reset_at = self._reported.get(method, (0.0, 0.0))[1]
        if reset_at <= now:
            return BLOCK_FALLBACK_S
        return min(reset_at + RESET_MARGIN_S - now, OPERATING_WINDOW_S)


@dataclass
class BatchOutcome:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Bitrix24Error] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)


def _as_map(value: Any) -> dict:
    return value if isinstance(value, dict) else {}  # empty maps come as [] (reference section 6)


class Bitrix24Client:
    """Thread-safe; one per process (or per worker, with its share of the portal's rate).

    Args:
        auth: a WebhookAuth or OAuthAuth.
        rate_per_s, burst: the client-side leaky bucket (the portal's: 2/s and 50; Enterprise 5/s and 250).
        timeout_s: per request.
        max_retries: back-offs per call for 503s, 5xx on reads, HTML pages and lost connections.
        operating_limit_s: the portal's operating-time limit per method over ten minutes (cloud: 480 s).
        operating_slowdown: share of that limit past which a method waits for its reset (0.8: from 384 s).
        transport: an httpx transport (tests).
        sleep, clock: how to wait and a monotonic clock (the leaky bucket, download deadlines).
        wall_clock: Unix time, to compare with the portal's `operating_reset_at`.
    """

    def __init__(self, auth: WebhookAuth | OAuthAuth, *, rate_per_s: float = 2.0, burst: int = 50,
                 timeout_s: float = 30.0, max_retries: int = 8, operating_limit_s: float = 480.0,
                 operating_slowdown: float = 0.8, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.auth = auth
        self.sleep = sleep
        self.max_retries = max_retries
        self.bucket = _LeakyBucket(max(1, burst - 2), rate_per_s, clock, sleep)  # a little room for others
        self.http = httpx.Client(transport=transport, timeout=timeout_s, follow_redirects=False,
                                 headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.clock = clock
        self.wall_clock = wall_clock
        self.operating = _OperatingTime(limit_s=operating_limit_s, slowdown=operating_slowdown,
                                        wall_clock=wall_clock)
        self.requests = 0  # sent, for the benchmark's requests-per-call figure

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Bitrix24Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _backoff(self, attempt: int) -> float:
        return min(30.0, 0.5 * 2**attempt)

    def _slow_down(self, methods: tuple[str, ...]) -> None:
        """Wait while any of these methods is close to its operating-time limit."""
        for method in dict.fromkeys(methods):
            wait = self.operating.pause(method)
            if wait > 0:
                logger.warning("Bitrix24 %s is near its operating-time limit (%.0f s per 10 minutes): waiting "
                               "%.0f s for the portal's reset", method, self.operating.limit_s, wait)
                self.sleep(wait)

    def call(self, method: str, params: dict | None = None, *, write: bool = False) -> dict:
        """One REST call; returns the whole envelope (result, total, next, time).

        Args:
            method: e.g. "crm.timeline.comment.add".
            params: JSON body.
            write: the call changes data: never repeated after an answer that may mean it was applied (no
                answer, INTERNAL_SERVER_ERROR, ERROR_UNEXPECTED_ANSWER, a 5xx that is no clear refusal); raises
                AmbiguousWrite instead, and the caller looks before it writes again.

        Raises:
            AmbiguousWrite: see `write`.
            MissingScope: the webhook lacks the method's scope (the message names it).
            RateLimited: the portal kept refusing past the client's retries (or a block outlasted ten minutes).
            Bitrix24Error: any other error answer, by its code (errors.py).
        """
        return self._request(method, params or {}, write=write, counted=(method,))

    def _request(self, method: str, params: dict, *, write: bool, counted: tuple[str, ...]) -> dict:
        """`call`, where `counted` names the methods whose operating time the request spends (a batch's
        sub-calls; the outer `batch` is not counted by the portal)."""
        refreshes = 0
        attempt = 0  # back-offs so far
        blocked_s = 0.0  # waited on 429 OPERATION_TIME_LIMIT so far
        while True:
            self._slow_down(counted)
            url, auth_params = self.auth.endpoint(method)
            self.bucket.acquire()
            self.requests += 1
            try:
                response = self.http.post(url, json={**params, **auth_params})
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                # Nothing reached the portal: safe to repeat, even a write.
                if attempt >= self.max_retries:
                    raise TransportError(method, "CONNECT", type(error).__name__) from None
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            except httpx.TransportError as error:
                if write:
                    raise AmbiguousWrite(method, "NO_ANSWER", f"{type(error).__name__} after sending") from None
                if attempt >= self.max_retries:
                    raise TransportError(method, "NO_ANSWER", type(error).__name__) from None
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            try:
                body = response.json()
            except (ValueError, json.JSONDecodeError):
                body = None
            if not isinstance(body, dict):  # an HTML page from a proxy under load, or worse
                if write and response.status_code >= 500:
                    raise AmbiguousWrite(method, "NOT_JSON", f"HTTP {response.status_code} after sending")
                if attempt >= self.max_retries:
                    raise TransportError(method, "NOT_JSON", f"HTTP {response.status_code}")
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            if "error" not in body:
                if method != "batch":  # the outer batch is not counted; batch() reads its sub-calls' times
                    self.operating.observe(method, body.get("time"))
                return body
            code, description = str(body.get("error") or ""), str(body.get("error_description") or "")
            # The portal refused the call unread: safe to repeat, even a write. A token can expire again while a
            # call waits out retries and timeouts (tokens live an hour, the sandbox's tests two seconds), so a few
            # refreshes are allowed; the bound stops a portal that hands out dead tokens.
            if code == "expired_token" and refreshes < MAX_TOKEN_REFRESHES and self.auth.refresh(self.http):
                refreshes += 1
                continue
            if code == "OPERATION_TIME_LIMIT":
                # Blocked before it ran. The block ends when enough of the method's time drops out of the
                # window: wait for the known reset and go on, for as long as a block can last.
                wait = self.operating.reset_after_block(method, body)
                if blocked_s + wait <= MAX_BLOCKED_S:
                    logger.warning("Bitrix24 %s is blocked for its operating time: waiting %.0f s", method, wait)
                    blocked_s += wait
                    self.sleep(wait)
                    continue
            elif write and may_have_been_applied(code, response.status_code):
                raise AmbiguousWrite(method, code or f"HTTP_{response.status_code}",
                                     description or "an error answer after sending")
            elif code in ("QUERY_LIMIT_EXCEEDED", *MAYBE_APPLIED) and attempt < self.max_retries:
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            refused = error_for(method, code, description)
            if code in ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT"):
                logger.warning("Bitrix24 %s still limited after %d retries and %.0f s blocked", method, attempt,
                               blocked_s)
            raise refused

    def result(self, method: str, params: dict | None = None, *, write: bool = False) -> Any:
        return self.call(method, params, write=write).get("result")

    def batch(self, commands: dict[str, tuple[str, dict]], *, halt: bool = False, write: bool = False) -> BatchOutcome:
        """Up to 50 calls in one request; each sub-call's error comes back on its own (the batch is HTTP 200).

        Sub-calls refused with OPERATION_TIME_LIMIT did not run: without `halt` they are sent again, alone, once
        their method's block has passed (each sub-call counts against its own method's limit, reference 6).

        Raises:
            AmbiguousWrite: with `write`, an answer that may mean the batch was applied; the caller must look.
        """
        if len(commands) > PAGE:
            raise ValueError(f"a batch holds at most {PAGE} commands, got {len(commands)}")
        outcome = BatchOutcome()
        pending = dict(commands)
        blocked_s = 0.0
        while pending:
            cmd = {key: f"{method}?{php_query(params)}" if params else method
                   for key, (method, params) in pending.items()}
            body = self._request("batch", {"halt": 1 if halt else 0, "cmd": cmd}, write=write,
                                 counted=tuple(method for method, _ in pending.values())).get("result") or {}
            for key, timing in _as_map(body.get("result_time")).items():
                if key in pending:
                    self.operating.observe(pending[key][0], timing)
            outcome.results.update(_as_map(body.get("result")))
            outcome.totals.update({k: int(v) for k, v in _as_map(body.get("result_total")).items()})
            blocked: dict[str, tuple[str, dict]] = {}
            for key, error in _as_map(body.get("result_error")).items():
                code = str(error.get("error") or "")
                if code == "OPERATION_TIME_LIMIT" and not halt and key in pending:
                    blocked[key] = pending[key]
                outcome.errors[key] = error_for(pending[key][0] if key in pending else "batch", code,
                                                str(error.get("error_description") or ""))
            wait = max((self.operating.reset_after_block(method, {}) for method, _ in blocked.values()),
                       default=0.0)
            if not blocked or blocked_s + wait > MAX_BLOCKED_S:
                break
            logger.warning("Bitrix24 batch: %d sub-calls blocked for their operating time: waiting %.0f s",
                           len(blocked), wait)
            blocked_s += wait
            self.sleep(wait)
            for key in blocked:
                del outcome.errors[key]
            pending = blocked
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
