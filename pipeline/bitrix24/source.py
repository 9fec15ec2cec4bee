"""Bitrix24 as a call source: answered calls with a recording in a time window, their managers and deals, and
each recording downloaded through a fresh signed link (reference sections 2 and 3).

Requests for N calls: the statistics in pages of 50, one `batch` of activity bindings per 50 calls, one
`user.get` per 50 managers; per recording, `disk.file.get` and the download itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from pipeline.bitrix24.client import Bitrix24Client
from pipeline.bitrix24.errors import Bitrix24Error, MissingScope
from pipeline.bitrix24.settings import Bitrix24Settings, make_client
from pipeline.errors import CallError
from pipeline.sources.base import CallRecord, TimeWindow

__all__ = ["Bitrix24Source", "looks_like_audio"]

logger = logging.getLogger(__name__)

DEAL, CONTACT, LEAD, COMPANY = 2, 3, 1, 4
DIRECTIONS = {"1": "out", "2": "in", "3": "in", "4": "out"}  # CALL_TYPE: outgoing, incoming, redirected, callback
# CALL_TYPE 5 is an information call (voximplant.infocall.*: a robot reads a text or plays a sound; docs:
# api-reference/telephony/voximplant/voximplant-statistic-get.md): no manager speaks, nothing to score.
INFO_CALL = "5"
AUDIO_MAGIC = (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xe3", b"RIFF", b"OggS", b"fLaC")


def looks_like_audio(data: bytes, content_type: str) -> bool:
    """A recording, not an HTML error page served with status 200."""
    head = data[:16]
    return (content_type.startswith("audio/") or head.startswith(AUDIO_MAGIC) or head[4:8] == b"ftyp") \
        and not head.lstrip().lower().startswith((b"<!doctype", b"<html"))


class Bitrix24Source:
    """`--source bitrix24`."""

    def __init__(self, settings: Bitrix24Settings, *, client: Bitrix24Client | None = None,
                 rate_share: float = 1.0, now: Callable[[], datetime] | None = None) -> None:
        """`now` (tests) gives the current time, aware; the default window is computed from it."""
        self.settings = settings
        self._now = now
        self.client = client or make_client(settings, rate_share=rate_share)
        self.portal = self.client.auth.portal
        self.late: list[str] = []  # answered calls whose recording is not there yet (retried next run)

    def describe(self) -> str:
        return f"Bitrix24 {self.portal}"

    def window(self, window: TimeWindow | None) -> TimeWindow:
        """The calls' time window: `window`, or yesterday in the portal's time zone."""
        if window is not None:
            return window
        # Yesterday in the portal's zone (its managers' working day), not the host's: a server in UTC running at
        # 01:00 Moscow time would otherwise ask for the day before yesterday's last three hours and miss
        # yesterday's. Midnights are built in the zone itself, so a day around a DST change has its true length.
        now = self._now() if self._now is not None else datetime.now(self.settings.zone)
        today = now.astimezone(self.settings.zone).date()
        since = datetime.combine(today - timedelta(days=1), datetime.min.time(), tzinfo=self.settings.zone)
        until = datetime.combine(today, datetime.min.time(), tzinfo=self.settings.zone)
        return TimeWindow(since=since, until=until)

    def list_calls(self, window: TimeWindow | None) -> list[CallRecord]:
        window = self.window(window)
        rows = list(self.client.list_by_id("voximplant.statistic.get", {"FILTER": {
            ">=CALL_START_DATE": window.since.isoformat(timespec="seconds"),
            "<CALL_START_DATE": window.until.isoformat(timespec="seconds"),
            "CALL_FAILED_CODE": "200", ">=CALL_DURATION": self.settings.min_duration_s}}, upper=True))
        robots = sum(str(row.get("CALL_TYPE")) == INFO_CALL for row in rows)
        if robots:
            logger.info("%d information calls (a robot speaking) are not scored", robots)
        rows = [row for row in rows if str(row.get("CALL_TYPE")) != INFO_CALL]
        # The recording: the Disk file (RECORD_FILE_ID) or, when a PBX gave only a link, CALL_RECORD_URL.
        with_record = [row for row in rows if row.get("RECORD_FILE_ID") or row.get("CALL_RECORD_URL")]
        self.late = [row["CALL_ID"] for row in rows if not (row.get("RECORD_FILE_ID") or row.get("CALL_RECORD_URL"))]
        if self.late:
            logger.info("%d answered calls have no recording yet; the next run picks them up", len(self.late))
        bindings = self._bindings([row["CRM_ACTIVITY_ID"] for row in with_record if row.get("CRM_ACTIVITY_ID")])
        names = self._managers({row["PORTAL_USER_ID"] for row in with_record if row.get("PORTAL_USER_ID")})
        records = []
        for row in with_record:
            deal, target = self._target(row, bindings.get(str(row.get("CRM_ACTIVITY_ID")), []))
            records.append(CallRecord(
                call_id=row["CALL_ID"], uri=f"bitrix24://{httpx.URL(self.portal).host}/call/{row['CALL_ID']}",
                fingerprint=(f"disk:{row['RECORD_FILE_ID']}" if row.get("RECORD_FILE_ID")
                             else f"url:{row['CALL_RECORD_URL']}"),
                source_ref=(str(row["RECORD_FILE_ID"]) if row.get("RECORD_FILE_ID")
                            else f"url:{row['CALL_RECORD_URL']}"),
                manager=row.get("PORTAL_USER_ID"), manager_name=names.get(str(row.get("PORTAL_USER_ID"))),
                direction=DIRECTIONS.get(str(row.get("CALL_TYPE"))), deal_id=deal, crm_target=target,
                started_at=datetime.fromisoformat(row["CALL_START_DATE"])))
        return records

    def _bindings(self, activity_ids: list[str]) -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for first in range(0, len(activity_ids), 50):
            chunk = activity_ids[first: first + 50]
            outcome = self.client.batch({f"a{a}": ("crm.activity.binding.list", {"activityId": a}) for a in chunk})
            for key, value in outcome.results.items():
                found[key[1:]] = value or []
            for key, error in outcome.errors.items():
                if isinstance(error, MissingScope):
                    raise error  # every call would go without its deal: a setup problem, not a call's
                logger.warning("bindings of activity %s: %s", key[1:], error)
        return found

    def _target(self, row: dict, bindings: list[dict]) -> tuple[str | None, str | None]:
        """The deal and the comment's target. Several deals: the first binding (the core lists deals first,
        most relevant first); none: the contact (or lead) when configured, else nothing."""
        deals = [str(b["entityId"]) for b in bindings if int(b.get("entityTypeId", 0)) == DEAL]
        if len(deals) > 1:
            logger.info("call %s is bound to %d deals; the score goes to deal %s", row["CALL_ID"], len(deals),
                        deals[0])
        if deals:
            return deals[0], f"deal:{deals[0]}"
        if self.settings.no_deal == "skip":
            return None, None
        for type_id, name in ((CONTACT, "contact"), (LEAD, "lead"), (COMPANY, "company")):
            owner = next((str(b["entityId"]) for b in bindings if int(b.get("entityTypeId", 0)) == type_id), None)
            if owner:
                return None, f"{name}:{owner}"
        entity = str(row.get("CRM_ENTITY_TYPE") or "").lower()
        return None, f"{entity}:{row['CRM_ENTITY_ID']}" if entity and row.get("CRM_ENTITY_ID") else None

    def _managers(self, user_ids: set[str]) -> dict[str, str]:
        names: dict[str, str] = {}
        ids = sorted(user_ids)
        for first in range(0, len(ids), 50):
            for user in self.client.result("user.get", {"FILTER": {"ID": ids[first: first + 50]}}) or []:
                names[str(user["ID"])] = " ".join(p for p in (user.get("NAME"), user.get("LAST_NAME")) if p) \
                    or f"ID {user['ID']}"
        return names

    def fetch(self, record: CallRecord, workdir: Path) -> Path:
        limit = self.settings.max_download_mb * 1_000_000
        source_ref = record.source_ref or ""
        try:
            if source_ref.startswith("url:"):
                file_info = {"NAME": source_ref.rsplit("/", 1)[-1].split("?")[0]}
                data, content_type = self.client.download(source_ref[4:], max_bytes=limit,
                                                          referer=self.portal + "/",
                                                          deadline_s=self.settings.download_timeout_s)
            else:
                # A fresh link every time: it embeds a token that expires (reference 3.2).
                file_info = self.client.result("disk.file.get", {"id": record.source_ref})
                data, content_type = self.client.download(file_info["DOWNLOAD_URL"], max_bytes=limit,
                                                          referer=self.portal + "/",
                                                          deadline_s=self.settings.download_timeout_s)
        except Bitrix24Error as error:
            raise CallError(record.uri, f"cannot download the recording: {error}") from error
        if not looks_like_audio(data, content_type):
            raise CallError(record.uri, f"the portal served {content_type or 'something'} instead of a recording")
        name = str(file_info.get("NAME") or "")
        target = workdir / f"{record.call_id.replace('/', '_')}{Path(name).suffix or '.mp3'}"
        target.write_bytes(data)
        return target
