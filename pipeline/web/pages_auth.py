"""Logging in and out."""

from __future__ import annotations

import logging
import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from pipeline.web.app import bench_of, check_csrf

router = APIRouter()
logger = logging.getLogger(__name__)
_VERIFYING = threading.BoundedSemaphore(4)


def _next_page(target: str | None) -> str:
    """Only a path of this site: a `next` pointing elsewhere would make the login form an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/calls"


@router.get("/login")
def login_form(request: Request, next: str | None = None):
    return bench_of(request).render(request, "login.html.j2", next=_next_page(next), error=None)


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(request: Request, login: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=1024)], next: Annotated[str | None, Form(max_length=500)] = None):
    bench = bench_of(request)
    client = request.client.host if request.client else "?"
    wait_s = bench.limiter.acquire(client, login)
    if wait_s:
        logger.warning("login from %s refused: too many failed attempts", client)
        response = bench.render(request, "login.html.j2", status_code=429, next=_next_page(next),
                                error=f"Слишком много неудачных попыток. Попробуйте через {int(wait_s) + 1} с.")
        response.headers["Retry-After"] = str(int(wait_s) + 1)
        return response
    with _VERIFYING:  # argon2 takes 64 MiB and a core per check: a flood of logins cannot take the machine
        user = bench.users.verify(login, password)
    if user is None:
        # The login as typed is not logged: people paste passwords into the login field.
        logger.info("failed login from %s%s", client, f" as {login}" if bench.users.get(login) else "")
        return bench.render(request, "login.html.j2", status_code=401, next=_next_page(next),
                            error="Неверный логин или пароль.")
    bench.limiter.succeeded(client, login)
    request.session.clear()  # a new session: nothing of a session before the login carries over
    request.session.update(login=user.login, issued=bench.clock(), credential=bench.credential(user))
    logger.info("%s logged in (%s)", user.login, user.role)
    return RedirectResponse(_next_page(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request):
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def home():
    return RedirectResponse("/calls", status_code=303)
