"""How callqa authenticates to a portal: an inbound webhook (the secret is in the URL) or an OAuth app (tokens in
the `auth` parameter, refreshed on `expired_token` and shared between processes through a token file)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from pydantic import SecretStr

from pipeline.bitrix24.errors import AuthError, TransportError
from pipeline.errors import ConfigError
from pipeline.support.fileio import write_text_atomic
from pipeline.support.logs import add_secret

__all__ = ["OAuthAuth", "WebhookAuth", "check_portal_url"]

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
