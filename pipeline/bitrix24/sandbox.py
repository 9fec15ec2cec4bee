"""A local Bitrix24 portal for tests and the demo: real HTTP on loopback, behaving as the documented API does for
what callqa uses (../shared/reference/bitrix24-rest.md): webhook and OAuth auth, the `time` block, paging,
`batch` with PHP-style commands, the leaky bucket, error envelopes, signed download URLs serving audio,
telephony statistics, activity bindings, deals, users and timeline comments.

Faults on demand: a share of 503s and of HTML error pages, OAuth tokens that expire (after a time, or after a
number of requests), writes applied and then left unanswered (the client times out), recordings that arrive late,
a deal the webhook may not edit. Tests use the faults that do not depend on how fast the machine is: tokens that
die after N requests, hangs released by an event when the sandbox stops.

    portal = Portal.from_folder(Path("tests/data/calls"), day=date(2026, 11, 28))
    with serve(portal, SandboxOptions()) as sandbox:
        print(sandbox.webhook_url)
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pipeline.bitrix24.encoding import parse_php_query

__all__ = ["CallSpec", "Portal", "Sandbox", "SandboxOptions", "serve"]

MSK = timezone(timedelta(hours=3))  # the portal's time zone: every date goes out with this offset
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


@dataclass
class CallSpec:
    """One seeded call: its recording, who made it, when, and what CRM items its activity is bound to.
    `manager_right`: the recording has the manager on the right; the portal serves it with the manager on the
    left, as one PBX lays out all its recordings."""

    audio: Path
    manager_id: str
    manager_name: str
    started_at: datetime
    incoming: bool
    deal_ids: list[str]
    duration_s: int
    answered: bool = True
    manager_right: bool = False


def _left_manager(path: Path) -> bytes:
    """The recording re-encoded with its two channels swapped."""
    import tempfile

    from pipeline.audio import decode_all
    from pipeline.audio_write import write_audio

    _, samples = decode_all(path)
    with tempfile.TemporaryDirectory(prefix="callqa-sandbox-") as workdir:
        target = write_audio(Path(workdir) / "swapped.mp3", samples[::-1].copy(), 16000, bitrate=48_000)
        return target.read_bytes()


def _iso(moment: datetime) -> str:
    return moment.astimezone(MSK).isoformat(timespec="seconds")


class Portal:
    """The portal's data, guarded by one lock (the server is threaded)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, dict] = {}
        self.contacts: dict[str, dict] = {}
        self.deals: dict[str, dict] = {}
        self.calls: list[dict] = []
        self.bindings: dict[str, list[dict]] = {}  # activity id -> [{entityTypeId, entityId}]
        self.files: dict[str, bytes] = {}
        self.comments: dict[str, dict] = {}
        self.next_id = 1000
        self.listings = 0
        self.requests: dict[str, int] = {}
        self.rejected = {"limit": 0, "injected_503": 0, "html": 0, "unanswered": 0, "stalled": 0,
                         "operation_time_limit": 0}

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    def add_call(self, spec: CallSpec) -> dict:
        with self.lock:
            first, _, last = spec.manager_name.partition(" ")
            self.users.setdefault(spec.manager_id, {"ID": spec.manager_id, "ACTIVE": True, "NAME": first,
                                                    "LAST_NAME": last, "USER_TYPE": "employee"})
            contact_id = self.new_id()
            self.contacts[contact_id] = {"ID": contact_id, "NAME": f"Клиент {contact_id}"}
            for deal_id in spec.deal_ids:
                self.deals.setdefault(deal_id, {
                    "ID": deal_id, "TITLE": f"Сделка {deal_id}", "STAGE_ID": "PREPARATION", "CATEGORY_ID": "0",
                    "OPPORTUNITY": "0.00", "CURRENCY_ID": "RUB", "ASSIGNED_BY_ID": spec.manager_id,
                    "CONTACT_ID": contact_id, "CLOSED": "N", "STAGE_SEMANTIC_ID": "P", "IS_RETURN_CUSTOMER": "N",
                    "DATE_CREATE": _iso(spec.started_at - timedelta(days=2))})
            activity_id = self.new_id()
            self.bindings[activity_id] = ([{"entityTypeId": 2, "entityId": int(d)} for d in spec.deal_ids]
                                          + [{"entityTypeId": 3, "entityId": int(contact_id)}])
            file_id = None
            if spec.answered:
                file_id = self.new_id()
                self.files[file_id] = _left_manager(spec.audio) if spec.manager_right else spec.audio.read_bytes()
            digest = hashlib.sha1(f"{spec.audio}{spec.started_at}".encode()).hexdigest()[:32]
            row = {
                "ID": str(len(self.calls) + 1), "PORTAL_USER_ID": spec.manager_id, "PORTAL_NUMBER": "reg0001",
                "PHONE_NUMBER": "+7915" + digest[:7].translate(str.maketrans("abcdef", "123456")),
                "CALL_ID": f"externalCall.{digest}.{int(spec.started_at.timestamp())}",
                "EXTERNAL_CALL_ID": None, "CALL_CATEGORY": "external", "CALL_LOG": None,
                "CALL_DURATION": str(spec.duration_s if spec.answered else 0),
                "CALL_START_DATE": _iso(spec.started_at), "CALL_RECORD_URL": None, "CALL_VOTE": None,
                "COST": "0.0000", "COST_CURRENCY": "RUR",
                "CALL_FAILED_CODE": "200" if spec.answered else "304",
                "CALL_FAILED_REASON": "" if spec.answered else "Missed call",
                "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": contact_id, "CRM_ACTIVITY_ID": activity_id,
                "REST_APP_ID": None, "REST_APP_NAME": None, "TRANSCRIPT_ID": None, "TRANSCRIPT_PENDING": "N",
                "SESSION_ID": None, "REDIAL_ATTEMPT": None, "COMMENT": None,
                "RECORD_DURATION": str(spec.duration_s) if spec.answered else None,
                "RECORD_FILE_ID": int(file_id) if file_id else None,
                "CALL_TYPE": "2" if spec.incoming else "1",
            }
            self.calls.append(row)
            return row

    @classmethod
    def from_folder(cls, folder: Path, *, day: date, limit: int | None = None) -> Portal:
        """A portal whose calls are the folder's stereo recordings (manifest.csv: managers, deals, times of day),
        all on `day`, plus one missed call."""
        from pipeline.audio import probe

        portal = cls()
        with (folder / "manifest.csv").open(encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if row["file"].endswith(".stereo.mp3")]
        for row in rows[:limit]:
            clock = datetime.fromisoformat(row["started_at"]).astimezone(MSK).timetz()
            started = datetime.combine(day, clock)
            duration = probe(folder / row["file"]).declared_duration_s or 60.0
            portal.add_call(CallSpec(audio=folder / row["file"], manager_id=row["manager"] or "1",
                                     manager_name=row["manager_name"] or "Менеджер", started_at=started,
                                     incoming=row["direction"] == "in", deal_ids=[row["deal_id"]] if row["deal_id"]
                                     else [], duration_s=round(duration),
                                     manager_right=row.get("manager_channel") == "right"))
        first = rows[0]
        evening = datetime.combine(day, datetime.min.time(), tzinfo=MSK) + timedelta(hours=18)
        portal.add_call(CallSpec(audio=folder / first["file"], manager_id=first["manager"] or "1",
                                 manager_name=first["manager_name"] or "Менеджер", started_at=evening,
                                 incoming=True, deal_ids=[], duration_s=0, answered=False))
        return portal


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


def _time_block(started: float) -> dict:
    finished = time.time()
    return {"start": started, "finish": finished, "duration": finished - started, "processing": finished - started,
            "date_start": _iso(datetime.fromtimestamp(started, UTC)),
            "date_finish": _iso(datetime.fromtimestamp(finished, UTC)),
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
        token = self.tokens.get(params.get("auth"))
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
                "CREATE_TIME": _iso(datetime.now(UTC))}, {}

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
                                            "CREATED": _iso(datetime.now(UTC)), "COMMENT": comment,
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
            times[key] = _time_block(started)
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
                payload["time"] = {**_time_block(started), "operating_reset_at": sandbox.blocked_until,
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
        return self._json(200, {"result": result, **extra, "time": _time_block(started)})


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
