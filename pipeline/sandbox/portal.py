"""The sandbox portal's data: users, deals, calls with their recordings, activities and timeline comments,
seeded from a folder of sample calls (`Portal.from_folder`); one lock guards it, since the server is threaded."""

from __future__ import annotations

import csv
import hashlib
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

__all__ = ["MSK", "CallSpec", "Portal", "iso_msk"]

MSK = timezone(timedelta(hours=3))  # the portal's time zone: every date goes out with this offset


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
    """The recording as an mp3 with its two channels swapped (a PBX that records the manager on the right)."""
    import io

    import av
    import numpy as np

    from pipeline.audio import decode_all

    _, samples = decode_all(path)
    swapped = np.ascontiguousarray(samples[::-1].T, dtype=np.float32)  # (n, 2), interleaved for the encoder
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("mp3", rate=16000, layout="stereo")
        stream.bit_rate = 48_000
        frame = av.AudioFrame.from_ndarray(swapped.reshape(1, -1), format="flt", layout="stereo")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def iso_msk(moment: datetime) -> str:
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
                    "DATE_CREATE": iso_msk(spec.started_at - timedelta(days=2))})
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
                "CALL_START_DATE": iso_msk(spec.started_at), "CALL_RECORD_URL": None, "CALL_VOTE": None,
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
