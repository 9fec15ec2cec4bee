"""The workbench application: `create_app(settings)` builds it; `callqa serve` runs it under uvicorn.

    request ─> SecurityHeaders ─> SessionMiddleware ─> route ─> (user, role) check ─> store / index / derive
                                                                                    ─> Jinja2 page (Russian)

What a page shows comes from the store (results, transcripts, reviews, audio) through the same `derive()` the
nightly run uses; the call index (index.py) only finds calls. Every route but the login page and /healthz needs
a logged-in user, and each checks the user's role (`Workbench.allowed`): qa reviews and edits lexicons,
supervisor sees every call and the report, manager sees only their own calls.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from pipeline.derive import DeriveSetup
from pipeline.stores import ArtifactStore, open_store
from pipeline.web.index import CallIndex
from pipeline.web.security import (
    BodyLimit,
    KeepPeer,
    LoginLimiter,
    SecurityHeaders,
    csrf_token,
    csrf_valid,
    safe_call_id,
    session_secret,
    trusted_peer,
)
from pipeline.web.settings import WebSettings
from pipeline.web.users import User, UserBook

if TYPE_CHECKING:
    from pipeline.settings import Settings

__all__ = ["LoginRequired", "Workbench", "create_app"]

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
Permission = Literal["calls", "review", "lexicons", "report", "calibration"]
PERMISSIONS: dict[str, frozenset[Permission]] = {
    "qa": frozenset({"calls", "review", "lexicons", "report", "calibration"}),
    "supervisor": frozenset({"calls", "report", "calibration"}),
    "manager": frozenset({"calls"}),
}


class LoginRequired(Exception):
    """No logged-in user: pages redirect to the login form, everything else answers 401."""


@dataclass
class Workbench:
    """What every route works with: the settings, the store, the index, the derive setup, the users."""

    settings: Settings
    store: ArtifactStore
    index: CallIndex
    users: UserBook
    limiter: LoginLimiter
    templates: jinja2.Environment
    setup: DeriveSetup
    clock: Callable[[], float] = time.time
    setup_lock: threading.Lock = field(default_factory=threading.Lock)
    last_refresh: float = 0.0
    refreshing: threading.Thread | None = None
    session_key: bytes = b""

    def credential(self, user: User) -> str:
        """What a session is bound to: a keyed digest of the user's password hash, so that a new password (or
        a user re-added) ends the sessions opened with the old one."""
        material = (user.password_hash or f"sso:{user.login}").encode()
        return hmac.new(self.session_key, material, "sha256").hexdigest()[:32]

    @property
    def web(self) -> WebSettings:
        return self.settings.web

    def allowed(self, user: User, permission: Permission) -> bool:
        return permission in PERMISSIONS[user.role]

    def may_open(self, user: User, call_manager_id: str | None) -> bool:
        """Whether the user may see a call (its page, audio, transcript) of this manager."""
        if user.sees_all_calls():
            return True
        return bool(user.bitrix24_user_id) and call_manager_id == user.bitrix24_user_id

    def reload_setup(self) -> None:
        """Lexicons or scorecard changed (saved in the workbench): derive with the new ones from now on."""
        settings = self.settings
        with self.setup_lock:
            self.setup = DeriveSetup.load(settings.lexicons, settings.scorecard, settings=settings)

    def refresh_index(self, *, force: bool = False, wait: bool = False) -> None:
        """Look for calls stored since the last look, at most every `index_refresh_s`: in a thread of its own (a
        night's calls take seconds to index, and no request waits for them), or here with `wait`."""
        now = self.clock()
        if not force and now - self.last_refresh < self.web.index_refresh_s:
            return
        self.last_refresh = now
        if wait:
            self._refresh()
            return
        with self.setup_lock:
            if self.refreshing is not None and self.refreshing.is_alive():
                return
            self.refreshing = threading.Thread(target=self._refresh, name="callqa-index-refresh", daemon=True)
            self.refreshing.start()

    def _refresh(self) -> None:
        try:
            added = self.index.refresh()
        except Exception:  # the next look tries again; the pages go on with what is indexed
            logger.exception("call index refresh failed")
            return
        if added:
            logger.info("call index: %d calls (re-)indexed", added)

    def render(self, request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
        user = getattr(request.state, "user", None)
        html = self.templates.get_template(template).render(
            request=request, user=user, csrf=csrf_token(request.session),
            can=(lambda permission: user is not None and self.allowed(user, permission)), **context)
        return HTMLResponse(html, status_code=status_code)


def index_path(settings: Settings) -> Path:
    """Where the call index of `settings`' store lives by default: beside the users file, named after the store."""
    if settings.web.index_path:
        return Path(settings.web.index_path)
    digest = hashlib.sha256(settings.run.store.encode()).hexdigest()[:12]
    return settings.web.users_file.parent / f".callqa-index-{digest}.sqlite"


def create_app(settings: Settings, *, store: ArtifactStore | None = None, clock: Callable[[], float] = time.time,
               refresh: bool = True) -> FastAPI:
    """The workbench over `settings.run.store` (or the given store).

    Args:
        settings: `pipeline.settings.Settings`; `web:` holds the users file, session and index options.
        clock: seconds, for login throttling and index refreshes (tests pass their own).
        refresh: index what the store holds before the first request (False: the caller does it).

    Raises:
        DefinitionError: the lexicons or the scorecard are invalid (as at every other start).
        ConfigError: the users file is invalid.
    """
    from pipeline.lexicon.text import lemmas
    from pipeline.web import pages_auth, pages_calls, pages_lexicons, pages_quality

    web = settings.web
    artifact_store = store or open_store(settings.run.store, settings.s3)
    users = UserBook(web.users_file)
    users.users()  # a broken users file stops the start, with its name
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                   autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                                   lstrip_blocks=True)
    templates.filters.update(_FILTERS)
    bench = Workbench(
        settings=settings, store=artifact_store, index=CallIndex(index_path(settings), artifact_store, lemmas),
        users=users, limiter=LoginLimiter(attempts=web.login_attempts, window_s=web.login_window_s, clock=clock),
        templates=templates, setup=DeriveSetup.load(settings.lexicons, settings.scorecard, settings=settings),
        clock=clock)
    if refresh:
        bench.refresh_index(force=True, wait=True)

    app = FastAPI(title="callqa workbench", docs_url=None, redoc_url=None, openapi_url=None,
                  form_limits={"max_files": 0, "max_fields": 20, "max_part_size": web.max_body_bytes})
    app.state.bench = bench
    framed = bool(web.frame_ancestors) and web.https
    secret = session_secret(web.secret_key.get_secret_value() if web.secret_key else None, web.users_file)
    bench.session_key = secret.encode()
    # Middleware runs outermost last-added first: headers, body limit, the peer kept, forwarded headers, session.
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="callqa_session",
                       max_age=web.session_max_age_s, same_site="none" if framed else "lax", https_only=web.https,
                       partitioned=framed)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(web.trusted_proxies))
    app.add_middleware(KeepPeer)
    app.add_middleware(BodyLimit, max_bytes=web.max_body_bytes)
    app.add_middleware(SecurityHeaders, frame_ancestors=list(web.frame_ancestors) if framed else [],
                       https=web.https)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _: LoginRequired):
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return PlainTextResponse("login required", status_code=401)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException):
        if "text/html" in request.headers.get("accept", "") and error.status_code in (400, 403, 404, 409, 422):
            return bench.render(request, "error.html.j2", status_code=error.status_code, status=error.status_code,
                                message=error.detail)
        return PlainTextResponse(str(error.detail), status_code=error.status_code,
                                 headers=getattr(error, "headers", None))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    for module in (pages_auth, pages_calls, pages_quality, pages_lexicons):
        app.include_router(module.router)
    return app


def bench_of(request: Request) -> Workbench:
    return request.app.state.bench


def current_user(request: Request) -> User:
    """The logged-in user (from the session, or the trusted proxy's header), read afresh from the users file so
    that a removed user or a changed role counts at once.

    Raises:
        LoginRequired: nobody is logged in, or the session's user is gone.
    """
    bench = bench_of(request)
    web = bench.web
    user = None
    # The connection's own peer (kept before X-Forwarded-For replaced the client address) must be the proxy.
    if web.trusted_user_header and trusted_peer(request.scope.get("state", {}).get("peer"), web.trusted_proxies):
        login = request.headers.get(web.trusted_user_header)
        user = bench.users.get(login) if login else None
    if user is None:
        login = request.session.get("login")
        issued = float(request.session.get("issued") or 0)
        user = bench.users.get(login) if login and bench.clock() - issued <= web.session_max_age_s else None
        if user is not None and not hmac.compare_digest(str(request.session.get("credential", "")),
                                                        bench.credential(user)):
            user = None  # the password changed since this session began
    if user is None:
        request.session.pop("login", None)
        raise LoginRequired()
    request.state.user = user
    return user


def require(request: Request, permission: Permission) -> User:
    user = current_user(request)
    if not bench_of(request).allowed(user, permission):
        raise HTTPException(403, f"роль «{user.role}» не даёт доступа к этой странице")
    return user


async def check_csrf(request: Request) -> None:
    """Every POST carries the session's CSRF token: in the form, or in X-CSRF-Token."""
    given = request.headers.get("x-csrf-token")
    if given is None:
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    if not csrf_valid(request.session, given):
        raise HTTPException(403, "форма устарела или отправлена не отсюда (нет CSRF-токена): обновите страницу")


def checked_call_id(call_id: str) -> str:
    if not safe_call_id(call_id):
        raise HTTPException(404, "нет такого звонка")
    return call_id


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}".replace(".", ",")


def _when(iso: str | None) -> str:
    if not iso:
        return "—"
    return f"{iso[8:10]}.{iso[5:7]}.{iso[0:4]} {iso[11:16]}".strip()


_FILTERS = {"duration": _duration, "number": _number, "when": _when}
