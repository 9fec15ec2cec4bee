"""What a call source gives: the calls in a time window, and each call's recording on local disk."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ConfigError

__all__ = ["AUDIO_SUFFIXES", "CallRecord", "CallSource", "TimeWindow", "call_id_from_path", "check_unique_ids"]

AUDIO_SUFFIXES = frozenset({".mp3", ".wav", ".ogg", ".opus", ".m4a", ".aac", ".flac", ".webm", ".mp4"})


class TimeWindow(BaseModel):
    """[since, until): calls that started in it."""

    model_config = ConfigDict(frozen=True)

    since: datetime
    until: datetime

    def contains(self, moment: datetime | None) -> bool:
        if moment is None:
            return False
        if moment.tzinfo is None and self.since.tzinfo is not None:
            moment = moment.replace(tzinfo=self.since.tzinfo)
        return self.since <= moment < self.until


class CallRecord(BaseModel):
    """One call as its source knows it, before anything is analysed.

    `fingerprint` identifies the recording's content cheaply at the source (a local file's size and
    modification time, an S3 ETag), so an unchanged call can be skipped without fetching its audio.
    """

    model_config = ConfigDict(frozen=True)

    call_id: str
    uri: str = Field(description="where the recording is (a path or URI, never with credentials)")
    fingerprint: str | None = None
    manager: str | None = Field(None, description="the manager's id at the source (Bitrix24 PORTAL_USER_ID)")
    manager_name: str | None = None
    direction: Literal["in", "out"] | None = None
    deal_id: str | None = None
    started_at: datetime | None = None
    manager_channel: Literal["left", "right"] | None = None
    crm_target: str | None = Field(None, description="where the score comment goes: deal:ID, contact:ID, lead:ID")
    source_ref: str | None = Field(None, description="the source's own handle on the recording (a Disk file id)")


class CallSource(Protocol):
    """Where calls come from (a folder, an S3 prefix, Bitrix24)."""

    def describe(self) -> str:
        """Where this source reads from, for people (no credentials)."""

    def list_calls(self, window: TimeWindow | None) -> list[CallRecord]:
        """The calls in `window` (all of them when None), in a stable order."""

    def fetch(self, record: CallRecord, workdir: Path) -> Path:
        """The recording of `record` as a local file (downloaded into `workdir` when it is remote).

        Raises:
            CallError: the recording is missing or cannot be fetched.
        """


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def call_id_from_path(relative: str) -> str:
    """A call id from a recording's path inside its folder: "2026-11-28/call 7.mp3" -> "2026-11-28_call_7"."""
    stem = relative.rsplit(".", 1)[0] if "." in relative.rsplit("/", 1)[-1] else relative
    return "".join(ch if ch in _SAFE else "_" for ch in stem.replace("/", "_")).strip("_.") or "call"


def check_unique_ids(records: list[CallRecord], where: str) -> None:
    """Refuse a listing in which two recordings make the same call id (their results would overwrite each other)."""
    seen: dict[str, str] = {}
    for record in records:
        if record.call_id in seen:
            raise ConfigError(f"{where}: two recordings make the same call id {record.call_id!r}: "
                              f"{seen[record.call_id]} and {record.uri} (give ids in a manifest)")
        seen[record.call_id] = record.uri
