"""The sandbox's REST behaviour: webhook and OAuth auth, scopes, the leaky bucket, the operating-time limit and the
`time` block, paging, `batch` with `$result[...]` references, the error envelopes, the methods (CRM ones in
`crm.py`), and the faults tests ask for (`SandboxOptions`)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.bitrix24.encoding import parse_php_query
from pipeline.sandbox.crm import CrmMethods
from pipeline.sandbox.methods import PortalMethods
from pipeline.sandbox.operating import OperatingTime
from pipeline.sandbox.portal import Portal, iso_msk
from pipeline.sandbox.query import PAGE, ApiError, resolve_references

__all__ = ["ApiError", "Sandbox", "SandboxOptions", "time_block"]

WRITE_METHODS = frozenset({"crm.timeline.comment.add", "crm.timeline.comment.update", "crm.timeline.comment.delete",
                           "crm.item.update", "crm.deal.update", "crm.deal.userfield.add",
                           "telephony.call.attachtranscription", "im.notify.system.add"})
ALL_SCOPES = frozenset({"crm", "telephony", "disk", "user", "im", "user_brief"})
# The scope each method family needs (api-reference/scopes/permissions.md); `profile`, `user.current` and `batch`
# need none. user.get is allowed by any of user, user_brief, user_basic.
_SCOPES = {"crm": {"crm"}, "voximplant": {"telephony"}, "telephony": {"telephony"}, "disk": {"disk"},
           "im": {"im"}, "user": {"user", "user_brief", "user_basic"}}


@dataclass
class SandboxOptions:
    """
    Attributes:
        webhook_user, webhook_secret: the inbound webhook's path (/rest/USER/SECRET/).
        client_id, client_secret: the OAuth app; `token_ttl_s` how long an access token lives.
        token_ttl_requests: an access token also dies after this many requests (None: only `token_ttl_s` counts).
        bucket_capacity, drain_per_s: the leaky bucket per client address (50 and 2/s on ordinary plans).
        fail_rate: share of requests answered 503 QUERY_LIMIT_EXCEEDED whatever the bucket says.
        fail_every: every n-th REST request is answered 503 QUERY_LIMIT_EXCEEDED (0: none): the same faults on
            every run, however few requests a test makes.
        html_error_rate: share answered by a 502 HTML page (a proxy in trouble).
        unanswered_writes: this many writes are applied and then left without an answer until the sandbox stops
            (or `hang_s`, when set, has passed).
        late_records: calls whose recording appears only from the second listing on.
        locked_deals: deals the webhook may read but not edit (comments: ACCESS_DENIED).
        html_recordings: recording file ids served as an HTML error page with status 200 (a portal in trouble).
        stalled_recordings: recording file ids whose download sends its headers and first bytes, then nothing
            more until the sandbox stops.
        error_after_writes: this many writes (a write method, or a batch holding one) are applied and then
            answered 500 INTERNAL_SERVER_ERROR; `unexpected_answer_writes` the same with 500 ERROR_UNEXPECTED_ANSWER
            (_includes/system-errors.md). Counted after `unanswered_writes`.
        operating_cost_s, default_operating_cost_s: the simulated execution time each call of a method adds to
            its operating time (limits.md: ten one-minute buckets per method and webhook/app);
            `operating_limit_s`: above it, the method's next call answers 429 OPERATION_TIME_LIMIT until the
            oldest bucket drops out (`operating_reset_at`). Tests move the portal's clock with `Sandbox.advance`,
            or scale the portal's ten minutes down with `operating_window_s` (its buckets are a tenth of it).
        blocked_method, block_after_calls: a fault: that method's call after its first `block_after_calls` is
            answered 429 OPERATION_TIME_LIMIT once; the client waits for the reset its earlier answers announced.
        webhook_admin: the webhook's user is a (CRM) administrator; crm.deal.userfield.add needs one.
        scopes: the scopes granted to the webhook and the OAuth app; other methods answer 403 insufficient_scope.
    """

    webhook_user: int = 1
    webhook_secret: str = "sandboxsecret0001"
    client_id: str = "local.callqa"
    client_secret: str = "sandbox-client-secret"
    token_ttl_s: float = 3600.0
    token_ttl_requests: int | None = None
    bucket_capacity: int = 50
    drain_per_s: float = 2.0
    fail_rate: float = 0.0
    fail_every: int = 0
    html_error_rate: float = 0.0
    unanswered_writes: int = 0
    hang_s: float | None = None
    late_records: set[str] = field(default_factory=set)
    locked_deals: set[str] = field(default_factory=set)
    html_recordings: set[str] = field(default_factory=set)
    stalled_recordings: set[str] = field(default_factory=set)
    error_after_writes: int = 0
    unexpected_answer_writes: int = 0
    operating_cost_s: dict[str, float] = field(default_factory=dict)
    default_operating_cost_s: float = 0.002
    operating_limit_s: float = 480.0
    operating_window_s: float = 600.0
    blocked_method: str | None = None
    block_after_calls: int = 0
    webhook_admin: bool = True
    scopes: frozenset[str] = ALL_SCOPES
    seed: int = 7


class _Bucket:
    def __init__(self, capacity: int, rate: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.levels: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def admit(self, who: str) -> bool:
        with self.lock:
            level, updated = self.levels.get(who, (0.0, time.monotonic()))
            now = time.monotonic()
            level = max(0.0, level - (now - updated) * self.rate) + 1
            self.levels[who] = (level, now)
            return level <= self.capacity


def time_block(started: float, finished: float | None = None, operating: tuple[float, int] | None = None) -> dict:
    """The `time` block (api-reference/data-types.md#time); `operating`: (seconds, reset timestamp) of the method."""
    finished = time.time() if finished is None else finished
    block = {"start": started, "finish": finished, "duration": finished - started, "processing": finished - started,
             "date_start": iso_msk(datetime.fromtimestamp(started, UTC)),
             "date_finish": iso_msk(datetime.fromtimestamp(finished, UTC))}
    if operating is not None:
        block["operating_reset_at"], block["operating"] = operating[1], operating[0]
    return block


@dataclass
class _Token:
    expires_at: float  # time.time()
    requests_left: int | None  # None: no limit


class Sandbox(CrmMethods, PortalMethods):
    """The API's behaviour: auth, scopes, limits, faults, and the methods."""

    def __init__(self, portal: Portal, options: SandboxOptions) -> None:
        self.portal, self.options = portal, options
        self.random = random.Random(options.seed)
        self.rest_requests = 0  # REST requests that reached the sandbox (for `fail_every`)
        self.bucket = _Bucket(options.bucket_capacity, options.drain_per_s)
        self.operating = OperatingTime(options.operating_limit_s, options.operating_window_s)
        self.blocked_method_calls = 0
        self.clock_offset_s = 0.0  # the portal's clock runs this far ahead of the machine's (`advance`)
        self.tokens: dict[str, _Token] = {}
        self.stopping = threading.Event()  # releases the writes left hanging
        self.refresh_tokens: set[str] = set()
        self.write_faults = (["unanswered"] * options.unanswered_writes
                             + ["INTERNAL_SERVER_ERROR"] * options.error_after_writes
                             + ["ERROR_UNEXPECTED_ANSWER"] * options.unexpected_answer_writes)
        self.base_url = ""
        self.secret_salt = hashlib.sha256(options.webhook_secret.encode()).hexdigest()[:16]
        # _m_crm_deal_get serves crm.deal.get (and, lower-cased, crm.deal.Get)
        self.handlers = {name[3:].replace("_", "."): getattr(self, name) for name in dir(self)
                         if name.startswith("_m_")}
        self.portal.add_user(str(options.webhook_user), "Администратор Портала", admin=options.webhook_admin)

    def now(self) -> float:
        """The portal's clock (the operating-time window runs on it)."""
        return time.time() + self.clock_offset_s

    def advance(self, seconds: float) -> None:
        """Move the portal's clock on, as if `seconds` had passed (a test's stand-in for sleeping)."""
        self.clock_offset_s += seconds

    # --- auth -------------------------------------------------------------------------------------------
    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/rest/{self.options.webhook_user}/{self.options.webhook_secret}/"

    def issue_tokens(self) -> tuple[str, str]:
        access = hashlib.sha256(f"a{self.random.random()}".encode()).hexdigest()[:32]
        refresh = hashlib.sha256(f"r{self.random.random()}".encode()).hexdigest()[:32]
        self.tokens[access] = _Token(expires_at=time.time() + self.options.token_ttl_s,
                                     requests_left=self.options.token_ttl_requests)
        self.refresh_tokens.add(refresh)
        return access, refresh

    def token_response(self, query: dict) -> tuple[int, dict]:
        if query.get("client_id") != self.options.client_id or \
                query.get("client_secret") != self.options.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
        if query.get("grant_type") != "refresh_token" or query.get("refresh_token") not in self.refresh_tokens:
            return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
        self.refresh_tokens.discard(query["refresh_token"])  # each refresh token works once
        access, refresh = self.issue_tokens()
        return 200, {"access_token": access, "refresh_token": refresh, "expires_in": int(self.options.token_ttl_s),
                     "expires": int(time.time() + self.options.token_ttl_s), "domain": "oauth.bitrix24.tech",
                     "member_id": "sandbox", "scope": ",".join(sorted(self.options.scopes)), "status": "L",
                     "user_id": self.options.webhook_user,
                     "client_endpoint": f"{self.base_url}/rest/", "server_endpoint": f"{self.base_url}/rest/"}

    def check_auth(self, path_user: str | None, path_secret: str | None, params: dict) -> str:
        """Who calls: "webhook" or "oauth" (each has its own operating-time ledgers)."""
        if path_user is not None:
            if (path_user, path_secret) != (str(self.options.webhook_user), self.options.webhook_secret):
                raise ApiError("NO_AUTH_FOUND", "Wrong authorization data", 401)
            return "webhook"
        auth = params.get("auth")
        token = self.tokens.get(auth) if auth is not None else None
        if token is None:
            raise ApiError("NO_AUTH_FOUND", "Wrong authorization data", 401)
        with self.portal.lock:
            expired = token.expires_at < time.time() or token.requests_left == 0
            if token.requests_left:
                token.requests_left -= 1
        if expired:
            raise ApiError("expired_token", "The access token provided has expired.", 401)
        return "oauth"

    def check_scope(self, method: str) -> None:
        needed = _SCOPES.get(method.split(".", 1)[0])
        if method in ("user.current", "batch", "profile") or needed is None:
            return
        if not needed & self.options.scopes:
            raise ApiError("insufficient_scope", "The request requires higher privileges than provided by the "
                                                 "webhook token", 403)

    # --- downloads ------------------------------------------------------------------------------------------
    def download_token(self, file_id: str) -> str:
        signature = hashlib.sha256(f"{self.secret_salt}{file_id}".encode()).hexdigest()[:24]
        return f"disk|{file_id}|{signature}"

    def download(self, query: dict, user_agent: str) -> tuple[int, bytes, str]:
        _, file_id, signature = (query.get("token", "").split("|") + ["", "", ""])[:3]
        if not user_agent or "python-urllib" in user_agent.lower():
            # The documented gotcha: a technical User-Agent gets an nginx page instead of the file.
            return 404, b"<html><body><h1>404 Not Found</h1><hr>nginx</body></html>", "text/html"
        if query.get("token") != self.download_token(file_id) or file_id not in self.portal.files:
            return 403, b"<html><body>Access denied</body></html>", "text/html"
        if file_id in self.options.html_recordings:
            return 200, b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>", \
                "text/html; charset=utf-8"
        return 200, self.portal.files[file_id], "audio/mpeg"

    # --- calling a method ---------------------------------------------------------------------------------------
    def call(self, caller: str, method: str, params: dict) -> tuple[Any, dict, dict]:
        """One method call as the portal runs it: scope, operating-time check, the method, its cost.
        Returns (result, envelope extras like total/next, the `time` block)."""
        started = time.time()
        method = method.lower()  # the portal lower-cases method names (core CRestServer): crm.deal.Get works
        self.check_scope(method)
        if method == "batch":  # the outer batch is not counted in `operating` (limits.md)
            result, extra = self._batch(caller, params)
            return result, extra, time_block(started)
        if self.operating.blocked(caller, method, self.now()) or self._blocked_as_a_fault(method):
            self.portal.rejected["operation_time_limit"] += 1
            raise ApiError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429)
        try:
            result, extra = self.dispatch(method, params)
        finally:  # an error answer costs operating time too
            cost = self.options.operating_cost_s.get(method, self.options.default_operating_cost_s)
            operating = self.operating.add(caller, method, self.now(), cost)
        return result, extra, time_block(started, operating=operating)

    def _blocked_as_a_fault(self, method: str) -> bool:
        """`blocked_method`'s call after its first `block_after_calls` is refused once, whatever it cost: a block
        that happens at the same point of every run (the soak), counted in calls rather than seconds."""
        if method != self.options.blocked_method:
            return False
        with self.portal.lock:
            self.blocked_method_calls += 1
            return self.blocked_method_calls == self.options.block_after_calls + 1

    def dispatch(self, method: str, params: dict) -> tuple[Any, dict]:
        """(result, extra envelope keys like total/next)."""
        portal = self.portal
        with portal.lock:
            portal.requests[method] = portal.requests.get(method, 0) + 1
            handler = self.handlers.get(method.lower())
            if handler is None:
                raise ApiError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
            return handler(params)

    def _batch(self, caller: str, params: dict) -> tuple[Any, dict]:
        commands = params.get("cmd") or {}
        if isinstance(commands, list):
            commands = {str(index): value for index, value in enumerate(commands)}
        halt = str(params.get("halt", "0")).lower() in ("1", "true")
        results: dict = {}
        errors, totals, nexts, times = {}, {}, {}, {}
        for index, (key, command) in enumerate(commands.items()):
            method, _, query = str(command).partition("?")
            started = time.time()
            if index >= PAGE:  # at most 50 commands run; each one beyond answers on its own
                errors[key] = {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"}
            elif method.lower() == "batch":
                errors[key] = {"error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
                               "error_description": "Method is not allowed for batch usage"}
            else:
                try:
                    sub_params = resolve_references(parse_php_query(query), results)
                    result, extra, times[key] = self.call(caller, method, sub_params)
                    results[key] = result
                    if "total" in extra:
                        totals[key] = extra["total"]
                    if "next" in extra:
                        nexts[key] = extra["next"]
                except ApiError as error:
                    errors[key] = {"error": error.code, "error_description": error.description}
            times.setdefault(key, time_block(started))
            if halt and key in errors:
                break
        # PHP serialises empty maps as [] (reference section 6): so does the sandbox.
        return {"result": results or [], "result_error": errors or [], "result_total": totals or [],
                "result_next": nexts or [], "result_time": times or []}, {}

    def is_write(self, method: str, params: dict) -> bool:
        if method.lower() in WRITE_METHODS:
            return True
        if method.lower() == "batch":
            commands = params.get("cmd") or {}
            values = commands.values() if isinstance(commands, dict) else commands
            return any(str(command).partition("?")[0].lower() in WRITE_METHODS for command in values)
        return False

    def write_fault(self) -> str | None:
        """The next injected fault for an applied write: "unanswered", or the error code to answer with."""
        with self.portal.lock:
            return self.write_faults.pop(0) if self.write_faults else None
