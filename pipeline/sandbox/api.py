"""The sandbox's REST behaviour: webhook and OAuth auth, the leaky bucket, the `time` block, paging, `batch`, the
error envelopes, the methods callqa uses, and the faults tests ask for (`SandboxOptions`)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.bitrix24.encoding import parse_php_query
from pipeline.sandbox.portal import Portal, iso_msk

__all__ = ["ApiError", "Sandbox", "SandboxOptions", "time_block"]

PAGE = 50
WRITE_METHODS = frozenset({"crm.timeline.comment.add", "crm.timeline.comment.update", "crm.timeline.comment.delete"})


class ApiError(Exception):
    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(code)
        self.code, self.description, self.status = code, description, status


@dataclass
class SandboxOptions:
    """
    Attributes:
        webhook_user, webhook_secret: the inbound webhook's path (/rest/USER/SECRET/).
        client_id, client_secret: the OAuth app; `token_ttl_s` how long an access token lives.
        token_ttl_requests: an access token also dies after this many requests (None: only `token_ttl_s` counts).
        bucket_capacity, drain_per_s: the leaky bucket per client address (50 and 2/s on ordinary plans).
        fail_rate: share of requests answered 503 QUERY_LIMIT_EXCEEDED whatever the bucket says.
        html_error_rate: share answered by a 502 HTML page (a proxy in trouble).
        unanswered_writes: this many writes are applied and then left without an answer until the sandbox stops
            (or `hang_s`, when set, has passed).
        late_records: calls whose recording appears only from the second listing on.
        locked_deals: deals the webhook may read but not edit (comments: ACCESS_DENIED).
        html_recordings: recording file ids served as an HTML error page with status 200 (a portal in trouble).
        stalled_recordings: recording file ids whose download sends its headers and first bytes, then nothing
            more until the sandbox stops.
        blocked_method, block_after_calls, block_s: once `blocked_method` has been called `block_after_calls`
            times, it is blocked for `block_s` seconds: 429 OPERATION_TIME_LIMIT with `operating_reset_at` (the
            portal's operating-time limit, reference 7.2). Once per sandbox.
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
    html_error_rate: float = 0.0
    unanswered_writes: int = 0
    hang_s: float | None = None
    late_records: set[str] = field(default_factory=set)
    locked_deals: set[str] = field(default_factory=set)
    html_recordings: set[str] = field(default_factory=set)
    stalled_recordings: set[str] = field(default_factory=set)
    blocked_method: str | None = None
    block_after_calls: int = 0
    block_s: float = 5.0
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


def time_block(started: float) -> dict:
    finished = time.time()
    return {"start": started, "finish": finished, "duration": finished - started, "processing": finished - started,
            "date_start": iso_msk(datetime.fromtimestamp(started, UTC)),
            "date_finish": iso_msk(datetime.fromtimestamp(finished, UTC)),
            "operating_reset_at": int(finished) + 600, "operating": 0}


def _compare(value: Any, op: str, wanted: Any) -> bool:
    if isinstance(wanted, list) and op in ("", "="):
        return str(value) in {str(item) for item in wanted}
    if value is None:
        return op in ("!", "!=") and wanted not in (None, "")
    try:
        if isinstance(value, str) and "T" in value and isinstance(wanted, str) and "T" in wanted:
            value, wanted = datetime.fromisoformat(value), datetime.fromisoformat(wanted)
        elif isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            value, wanted = float(value), float(wanted)
    except (TypeError, ValueError):
        value, wanted = str(value), str(wanted)
    return {">=": value >= wanted, ">": value > wanted, "<=": value <= wanted, "<": value < wanted,
            "!": value != wanted, "!=": value != wanted}.get(op, value == wanted)


def _matches(row: dict, conditions: dict) -> bool:
    for key, wanted in conditions.items():
        op = next((prefix for prefix in (">=", "<=", "!=", ">", "<", "!", "=") if key.startswith(prefix)), "")
        if not _compare(row.get(key[len(op):].upper()), op, wanted):
            return False
    return True


@dataclass
class _Token:
    expires_at: float  # time.time()
    requests_left: int | None  # None: no limit


class Sandbox:
    """The API's behaviour: auth, limits, faults, and the methods."""

    def __init__(self, portal: Portal, options: SandboxOptions) -> None:
        self.portal, self.options = portal, options
        self.random = random.Random(options.seed)
        self.bucket = _Bucket(options.bucket_capacity, options.drain_per_s)
        self.tokens: dict[str, _Token] = {}
        self.stopping = threading.Event()  # releases the writes left hanging
        self.refresh_tokens: set[str] = set()
        self.unanswered_left = options.unanswered_writes
        self.blocked_method_calls = 0
        self.blocked_until: float | None = None
        self.base_url = ""
        self.secret_salt = hashlib.sha256(options.webhook_secret.encode()).hexdigest()[:16]

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
                     "member_id": "sandbox", "scope": "crm,telephony,disk,user", "status": "L", "user_id": 1,
                     "client_endpoint": f"{self.base_url}/rest/", "server_endpoint": f"{self.base_url}/rest/"}

    def check_auth(self, path_user: str | None, path_secret: str | None, params: dict) -> None:
        if path_user is not None:
            if (path_user, path_secret) != (str(self.options.webhook_user), self.options.webhook_secret):
                raise ApiError("NO_AUTH_FOUND", "Wrong authorization data", 401)
            return
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

    # --- methods ----------------------------------------------------------------------------------------------
    def dispatch(self, method: str, params: dict) -> tuple[Any, dict]:
        """(result, extra envelope keys like total/next)."""
        portal = self.portal
        with portal.lock:
            portal.requests[method] = portal.requests.get(method, 0) + 1
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                raise ApiError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
            return handler(params)

    @staticmethod
    def _page(rows: list, params: dict) -> tuple[list, dict]:
        start = int(params.get("start", params.get("START", 0)) or 0)
        if start < 0:
            return rows[:PAGE], {"total": 0}
        page = rows[start: start + PAGE]
        extra = {"total": len(rows)}
        if start + PAGE < len(rows):
            extra["next"] = start + PAGE
        return page, extra

    def _m_voximplant_statistic_get(self, params: dict) -> tuple[Any, dict]:
        upper = {key.upper(): value for key, value in params.items()}  # the handler upper-cases keys
        conditions = {key.upper(): value for key, value in (upper.get("FILTER") or {}).items()}
        self.portal.listings += 1
        rows = []
        for row in self.portal.calls:
            if not _matches(row, conditions):
                continue
            if row["CALL_ID"] in self.options.late_records and self.portal.listings == 1:
                row = {**row, "RECORD_FILE_ID": None, "RECORD_DURATION": None}
            rows.append(row)
        if upper.get("SORT") and upper.get("ORDER"):  # only both sort (core vi_rest.php)
            rows.sort(key=lambda r: int(r["ID"]) if upper["SORT"] == "ID" else str(r.get(upper["SORT"])),
                      reverse=str(upper["ORDER"]).upper() == "DESC")
        return self._page(rows, upper)

    def _m_disk_file_get(self, params: dict) -> tuple[Any, dict]:
        file_id = str(params.get("id", ""))
        data = self.portal.files.get(file_id)
        if data is None:
            raise ApiError("ERROR_NOT_FOUND", f"Could not find entity with id `{file_id}`")
        return {"ID": file_id, "NAME": f"2026-11-28 call {file_id}.mp3", "TYPE": "file", "SIZE": str(len(data)),
                "STORAGE_ID": "1", "PARENT_ID": "2", "DELETED_TYPE": "0", "FILE_ID": str(int(file_id) + 50000),
                "DOWNLOAD_URL": f"{self.base_url}/rest/download.json?auth=sandbox&token={self.download_token(file_id)}",
                "CREATE_TIME": iso_msk(datetime.now(UTC))}, {}

    def _m_crm_activity_binding_list(self, params: dict) -> tuple[Any, dict]:
        activity = str(params.get("activityId", ""))
        if activity not in self.portal.bindings:
            raise ApiError("NOT_FOUND", "Not found.")
        return self.portal.bindings[activity], {}

    def _m_user_get(self, params: dict) -> tuple[Any, dict]:
        conditions = params.get("FILTER") or params.get("filter") or {}
        if "ID" in params:
            conditions = {**conditions, "ID": params["ID"]}
        rows = [user for user in self.portal.users.values() if _matches(user, conditions)]
        return self._page(rows, params)

    def _m_crm_deal_get(self, params: dict) -> tuple[Any, dict]:
        deal = self.portal.deals.get(str(params.get("id", params.get("ID", ""))))
        if deal is None:
            raise ApiError("", "Not found")
        return deal, {}

    def _m_crm_deal_list(self, params: dict) -> tuple[Any, dict]:
        conditions = params.get("filter") or {}
        return self._page([d for d in self.portal.deals.values() if _matches(d, conditions)], params)

    def _entity(self, entity_type: str, entity_id: str) -> dict:
        table = {"deal": self.portal.deals, "contact": self.portal.contacts}.get(entity_type)
        if table is None or entity_id not in table:
            raise ApiError("OWNER_NOT_FOUND", "Owner not found.")
        if entity_type == "deal" and entity_id in self.options.locked_deals:
            raise ApiError("ACCESS_DENIED", "Access denied.", 403)
        return table[entity_id]

    def _m_crm_timeline_comment_add(self, params: dict) -> tuple[Any, dict]:
        if "fields" not in params:  # lowercase only since crm 23.100.0
            raise ApiError("100", "Required fields not found: fields")
        fields = params["fields"]
        entity_type, entity_id = str(fields.get("ENTITY_TYPE", "")).lower(), str(fields.get("ENTITY_ID", ""))
        self._entity(entity_type, entity_id)
        comment = str(fields.get("COMMENT", "")).strip()
        if not comment:
            raise ApiError("INVALID_ARG_VALUE", "Empty comment message")
        comment_id = self.portal.new_id()
        self.portal.comments[comment_id] = {"ID": comment_id, "ENTITY_ID": entity_id, "ENTITY_TYPE": entity_type,
                                            "CREATED": iso_msk(datetime.now(UTC)), "COMMENT": comment,
                                            "AUTHOR_ID": str(self.options.webhook_user), "FILES": []}
        return int(comment_id), {}

    def _m_crm_timeline_comment_update(self, params: dict) -> tuple[Any, dict]:
        comment = self.portal.comments.get(str(params.get("id", "")))
        if comment is None:
            raise ApiError("", "Not found.")
        self._entity(comment["ENTITY_TYPE"], comment["ENTITY_ID"])
        text = str((params.get("fields") or {}).get("COMMENT", "")).strip()
        if not text:
            raise ApiError("INVALID_ARG_VALUE", "Empty comment message")
        comment["COMMENT"] = text
        return int(comment["ID"]), {}

    def _m_crm_timeline_comment_get(self, params: dict) -> tuple[Any, dict]:
        comment = self.portal.comments.get(str(params.get("id", "")))
        if comment is None:
            raise ApiError("", "Not found.")
        return comment, {}

    def _m_crm_timeline_comment_list(self, params: dict) -> tuple[Any, dict]:
        conditions = params.get("filter") or {}
        if "ENTITY_ID" not in conditions or "ENTITY_TYPE" not in conditions:
            raise ApiError("", "ENTITY_ID and ENTITY_TYPE are required in the filter.")
        rows = [c for c in self.portal.comments.values() if c["ENTITY_ID"] == str(conditions["ENTITY_ID"])
                and c["ENTITY_TYPE"] == str(conditions["ENTITY_TYPE"]).lower()]
        return self._page(sorted(rows, key=lambda c: int(c["ID"])), params)

    def _m_batch(self, params: dict) -> tuple[Any, dict]:
        commands = params.get("cmd") or {}
        if isinstance(commands, list):
            commands = {str(index): value for index, value in enumerate(commands)}
        if len(commands) > PAGE:
            raise ApiError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        halt = str(params.get("halt", "0")).lower() in ("1", "true")
        results, errors, totals, nexts, times = {}, {}, {}, {}, {}
        for key, command in commands.items():
            method, _, query = str(command).partition("?")
            started = time.time()
            if method == "batch":
                errors[key] = {"error": "ERROR_BATCH_METHOD_NOT_ALLOWED", "error_description": "Method is not allowed"}
            else:
                try:
                    result, extra = self.dispatch(method, parse_php_query(query))
                    results[key] = result
                    if "total" in extra:
                        totals[key] = extra["total"]
                    if "next" in extra:
                        nexts[key] = extra["next"]
                except ApiError as error:
                    errors[key] = {"error": error.code, "error_description": error.description}
            times[key] = time_block(started)
            if halt and key in errors:
                break
        # PHP serialises empty maps as [] (reference section 6): so does the sandbox.
        return {"result": results or [], "result_error": errors or [], "result_total": totals or [],
                "result_next": nexts or [], "result_time": times or []}, {}

    def check_operating_time(self, method: str) -> None:
        """The operating-time limit, as a fault: one block of `blocked_method` once it was called often enough."""
        if method != self.options.blocked_method:
            return
        with self.portal.lock:
            self.blocked_method_calls += 1
            if self.blocked_until is None and self.blocked_method_calls > self.options.block_after_calls:
                self.blocked_until = time.time() + self.options.block_s
            blocked = self.blocked_until is not None and time.time() < self.blocked_until
        if blocked:
            self.portal.rejected["operation_time_limit"] += 1
            raise ApiError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429)

    def is_write(self, method: str, params: dict) -> bool:
        if method in WRITE_METHODS:
            return True
        if method == "batch":
            commands = params.get("cmd") or {}
            values = commands.values() if isinstance(commands, dict) else commands
            return any(str(command).partition("?")[0] in WRITE_METHODS for command in values)
        return False
