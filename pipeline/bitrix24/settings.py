"""How callqa reaches a Bitrix24 portal (docs/bitrix24.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from pipeline.errors import ConfigError

__all__ = ["Bitrix24Settings", "OAuthSettings", "make_client"]


class OAuthSettings(BaseModel):
    """An OAuth app instead of a webhook. The refresh token rotates on every refresh: `token_file` keeps the
    current pair (JSON {"access_token", "refresh_token"}), written atomically under a lock, never logged; every
    process of a run (the client and the Dask workers) must see the same file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    portal: str
    client_id: str
    client_secret: SecretStr
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    token_file: Path | None = None
    token_url: str = "https://oauth.bitrix24.tech/oauth/token/"


class Bitrix24Settings(BaseModel):
    """
    Attributes:
        webhook: the inbound webhook URL https://PORTAL/rest/USER_ID/SECRET/ (or CALLQA_BITRIX24_WEBHOOK);
            plain http only for a sandbox on 127.0.0.1.
        oauth: an OAuth app instead.
        rate_per_s, burst: the portal's leaky bucket (ordinary plans 2/s and 50; Enterprise 5/s and 250).
        min_duration_s: shorter answered calls are not worth a score.
        max_download_mb: a recording larger than this is refused.
        no_deal: when a call's activity is bound to no deal, comment on its contact (or lead), or skip it.
        protect_personal_data: pass quotes in comments through the PII redactor (phones, cards, documents...).
        redact_stored_transcripts: apply the same redaction to the words stored in the artifact store.
        timeout_s: per request (and per read of a download: a transfer that stalls fails after this long).
        download_timeout_s: a recording still downloading after this long is given up (a crawling transfer).
        timezone: the portal's time zone (an IANA name, default Europe/Moscow): "yesterday", the nightly run's
            default window, is midnight to midnight there, whatever the host's zone.
        operating_limit_s: the portal's operating-time limit per method over ten minutes (cloud: 480 s;
            on-premise, when switched on: 420 s).
        operating_slowdown: share of that limit past which the client waits for a method's reset rather than
            let the portal block it (default 0.8).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook: SecretStr | None = None
    oauth: OAuthSettings | None = None
    rate_per_s: float = Field(2.0, gt=0)
    burst: int = Field(50, ge=5)
    min_duration_s: int = Field(10, ge=0)
    max_download_mb: int = Field(200, ge=1)
    no_deal: Literal["contact", "skip"] = "contact"
    protect_personal_data: bool = True
    redact_stored_transcripts: bool = False
    timeout_s: float = Field(30.0, gt=0)
    download_timeout_s: float = Field(300.0, gt=0)
    timezone: str = "Europe/Moscow"
    operating_limit_s: float = Field(480.0, gt=0)
    operating_slowdown: float = Field(0.8, gt=0, le=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ConfigError(f"bitrix24.timezone: unknown time zone {value!r}; use an IANA name such as "
                              "Europe/Moscow or Asia/Yekaterinburg") from error
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def make_client(settings: Bitrix24Settings, *, rate_share: float = 1.0):
    """A client for the configured portal; `rate_share` splits the portal's rate between processes."""
    from pipeline.bitrix24.client import Bitrix24Client, OAuthAuth, WebhookAuth

    webhook = settings.webhook or (SecretStr(os.environ["CALLQA_BITRIX24_WEBHOOK"])
                                   if os.environ.get("CALLQA_BITRIX24_WEBHOOK") else None)
    if webhook is not None:
        from pipeline.support.logs import add_secret

        add_secret(webhook.get_secret_value())
    auth: WebhookAuth | OAuthAuth
    if webhook is not None:
        auth = WebhookAuth(webhook)
    elif settings.oauth is not None:
        oauth = settings.oauth
        access, refresh = oauth.access_token, oauth.refresh_token
        if oauth.token_file and oauth.token_file.is_file():
            stored = json.loads(oauth.token_file.read_text(encoding="utf-8"))
            access, refresh = SecretStr(stored["access_token"]), SecretStr(stored["refresh_token"])
        if access is None or refresh is None:
            raise ConfigError("Bitrix24 OAuth needs access and refresh tokens (bitrix24.oauth.* or its token_file)")

        auth = OAuthAuth(portal=oauth.portal, client_id=oauth.client_id, client_secret=oauth.client_secret,
                         access_token=access, refresh_token=refresh, token_url=oauth.token_url,
                         token_file=oauth.token_file)
    else:
        raise ConfigError("no Bitrix24 portal: set CALLQA_BITRIX24_WEBHOOK (https://PORTAL/rest/USER_ID/SECRET/) "
                          "or bitrix24.webhook / bitrix24.oauth in the config file")
    return Bitrix24Client(auth, rate_per_s=settings.rate_per_s * rate_share,
                          burst=max(5, int(settings.burst * rate_share)), timeout_s=settings.timeout_s,
                          operating_limit_s=settings.operating_limit_s, operating_slowdown=settings.operating_slowdown)
