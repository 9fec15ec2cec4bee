"""The workbench's settings (`web:` in the config file, CALLQA_WEB__* in the environment)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["WebSettings"]


class WebSettings(BaseModel):
    """`callqa serve`: who may log in, how sessions work, where the call index lives.

    Attributes:
        users_file: the users and their argon2 password hashes (`callqa user add|list|remove` edit it).
        secret_key: signs the session cookies; unset: a random key kept in `<users_file>.secret` (mode 0600), so
            sessions survive a restart. Set it (CALLQA_WEB__SECRET_KEY) when several servers share the users.
        session_max_age_s: a session ends this long after logging in.
        https: the site is served over HTTPS (behind a proxy): cookies are marked Secure.
        frame_ancestors: Bitrix24 portal origins allowed to show the workbench in a frame (an app in the portal),
            e.g. ["https://example.bitrix24.ru"]. Needs `https`: the session cookie is then SameSite=None; Secure.
            Empty (the default): no framing at all.
        trusted_user_header: single sign-on through a reverse proxy: the header in which the proxy passes the
            logged-in user's login (e.g. X-Remote-User). The user must still be in `users_file` (for the role).
            Only connections from `trusted_proxies` (addresses or networks, as this server sees its peer) are
            believed, whatever X-Forwarded-For says; the proxy must drop the header from clients' requests.
        trusted_proxies: also whose X-Forwarded-For names the client (login throttling, logs).
        login_attempts, login_window_s: failed logins allowed per client address and login within the window;
            more are refused with 429 until the window has passed.
        index_path: the disposable call index (SQLite with full-text search); unset: beside the users file,
            named after the store. Deleting it only costs a rebuild.
        index_refresh_s: how often the index looks for calls new nightly runs stored.
        page_size: calls per page of the list.
        preview_max_calls: the most recent calls a lexicon edit is previewed on.
        max_body_bytes: a request body over this is refused (413) before it is read.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    users_file: Path = Path("callqa-users.yaml")
    secret_key: SecretStr | None = None
    session_max_age_s: int = Field(12 * 3600, ge=60)
    https: bool = False
    frame_ancestors: list[str] = []
    trusted_user_header: str | None = None
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    login_attempts: int = Field(5, ge=1)
    login_window_s: float = Field(300.0, gt=0)
    index_path: Path | None = None
    index_refresh_s: float = Field(60.0, gt=0)
    page_size: int = Field(50, ge=5, le=500)
    preview_max_calls: int = Field(200, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)

    @field_validator("frame_ancestors")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not _ORIGIN.match(origin):
                raise ValueError(f"{origin!r} is not an https origin like https://example.bitrix24.ru")
        return origins

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, proxies: list[str]) -> list[str]:
        for entry in proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or a network (\"*\" is not allowed: it would "
                                 f"believe any client's header)") from None
        return proxies


_ORIGIN = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?$")
