"""The sandbox portal's data: users, CRM records with stage histories, calls with their recordings, activities and
timeline comments, seeded from a folder of sample calls (`Portal.from_folder`); one lock guards it, since the
server is threaded."""

from __future__ import annotations

import csv
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from pipeline.sandbox.records import MSK, Company, Contact, Deal, HistoryEntry, Lead, iso_msk, semantic_of

__all__ = ["MSK", "CallSpec", "Company", "Contact", "Deal", "Lead", "Portal", "iso_msk"]


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
    call_type: str | None = None  # CALL_TYPE as the portal sends it; None: "2" incoming, "1" outgoing
    lead_ids: list[str] = field(default_factory=list)  # leads the call's activity is bound to


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


class Portal:
    """The portal's data, guarded by one lock (the server is threaded). CRM records live in `deals`, `leads`,
    `contacts`, `companies` (keyed by the id as a string) and `history` (crm.stagehistory.list rows); what the
    API's writers leave behind in `comments`, `transcripts` (CALL_ID -> every accepted attachTranscription) and
    `notifications` (im.notify.system.add)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, dict] = {}
        self.contacts: dict[str, Contact] = {}
        self.companies: dict[str, Company] = {}
        self.deals: dict[str, Deal] = {}
        self.leads: dict[str, Lead] = {}
        self.history: list[HistoryEntry] = []
        self.revision = 0  # bumped by every change of a CRM record: list answers are cached per revision
        self.deal_user_fields: dict[str, dict] = {}  # FIELD_NAME -> crm.deal.userfield.list row
        self.calls: list[dict] = []
        self.bindings: dict[str, list[dict]] = {}  # activity id -> [{entityTypeId, entityId}]
        self.files: dict[str, bytes] = {}
        self.comments: dict[str, dict] = {}
        self.transcripts: dict[str, list[dict]] = {}
        self.notifications: list[dict] = []
        self.next_id = 1000
        self.listings = 0
        self.requests: dict[str, int] = {}
        self.rejected = {"limit": 0, "injected_503": 0, "html": 0, "unanswered": 0, "stalled": 0,
                         "operation_time_limit": 0, "server_error": 0}

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    def add_user(self, user_id: str, name: str, *, admin: bool = False) -> dict:
        first, _, last = name.partition(" ")
        return self.users.setdefault(user_id, {"ID": user_id, "ACTIVE": True, "NAME": first, "LAST_NAME": last,
                                               "EMAIL": f"user{user_id}@example.ru", "USER_TYPE": "employee",
                                               "UF_DEPARTMENT": [1], "IS_ADMIN": admin})

    def add_history(self, entity_type_id: int, owner_id: int, stage_id: str, moment: datetime, *,
                    category_id: int = 0, type_id: int | None = None) -> None:
        if type_id is None:
            type_id = 3 if semantic_of(stage_id) != "P" else 2
        self.history.append(HistoryEntry(len(self.history) + 1, entity_type_id, owner_id, type_id, category_id,
                                         stage_id, moment))

    def add_deal(self, deal: Deal, *, path: list[tuple[str, datetime]] | None = None) -> Deal:
        """A deal and its stage history: created at the first stage of `path` (default: created at its current
        stage), then moved through the rest; the last stage of `path` is its current one."""
        with self.lock:
            self.revision += 1
            self.deals[str(deal.id)] = deal
            steps = path or [(deal.stage_id, deal.created)]
            for index, (stage, moment) in enumerate(steps):
                self.add_history(2, deal.id, stage, moment, category_id=deal.category_id,
                                 type_id=1 if index == 0 else None)
            deal.stage_id, deal.moved = steps[-1]
            return deal

    def delete_deal(self, deal_id: str | int) -> None:
        """Gone as a deleted deal is: later reads and writes answer "not found"."""
        with self.lock:
            self.revision += 1
            self.deals.pop(str(deal_id), None)

    def seed_deals(self, count: int, *, day: date, managers: tuple[str, ...] = ("12", "15", "17"),
                   first_id: int = 100_000) -> list[Deal]:
        """`count` deals of `day` with stage histories, cheaply (a memory test, a benchmark): see `seed.py`."""
        from pipeline.sandbox.seed import seed_deals

        return seed_deals(self, count, day=day, managers=managers, first_id=first_id)

    def add_call(self, spec: CallSpec) -> dict:
        with self.lock:
            self.add_user(spec.manager_id, spec.manager_name)
            contact_id = self.new_id()
            self.contacts[contact_id] = Contact(int(contact_id), "Клиент", contact_id)
            for deal_id in spec.deal_ids:
                if deal_id not in self.deals:
                    created = spec.started_at - timedelta(days=2)
                    self.add_deal(Deal(int(deal_id), f"Сделка {deal_id}", 0, "PREPARATION", int(spec.manager_id),
                                       created, created, contact_id=int(contact_id)),
                                  path=[("NEW", created), ("PREPARATION", created + timedelta(days=1))])
            for lead_id in spec.lead_ids:
                if lead_id not in self.leads:
                    created = spec.started_at - timedelta(hours=3)
                    self.leads[lead_id] = Lead(int(lead_id), f"Лид {lead_id}", "IN_PROCESS", int(spec.manager_id),
                                               created, spec.started_at - timedelta(hours=1))
                    self.add_history(1, int(lead_id), "NEW", created, type_id=1)
                    self.add_history(1, int(lead_id), "IN_PROCESS", spec.started_at - timedelta(hours=1))
            activity_id = self.new_id()
            self.bindings[activity_id] = ([{"entityTypeId": 2, "entityId": int(d)} for d in spec.deal_ids]
                                          + [{"entityTypeId": 1, "entityId": int(d)} for d in spec.lead_ids]
                                          + [{"entityTypeId": 3, "entityId": int(contact_id)}])
            file_id = None
            if spec.answered:
                file_id = self.new_id()
                self.files[file_id] = _left_manager(spec.audio) if spec.manager_right else spec.audio.read_bytes()
            digest = hashlib.sha1(f"{spec.audio}{spec.started_at}".encode()).hexdigest()[:32]
            call_type = spec.call_type or ("2" if spec.incoming else "1")
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
                "CRM_ENTITY_TYPE": "LEAD" if spec.lead_ids and not spec.deal_ids else "CONTACT",
                "CRM_ENTITY_ID": spec.lead_ids[0] if spec.lead_ids and not spec.deal_ids else contact_id,
                "CRM_ACTIVITY_ID": activity_id,
                "REST_APP_ID": None, "REST_APP_NAME": None, "TRANSCRIPT_ID": None, "TRANSCRIPT_PENDING": "N",
                "SESSION_ID": None, "REDIAL_ATTEMPT": None, "COMMENT": None,
                "RECORD_DURATION": str(spec.duration_s) if spec.answered else None,
                "RECORD_FILE_ID": int(file_id) if file_id else None,
                "CALL_TYPE": call_type,
            }
            self.calls.append(row)
            return row

    @classmethod
    def from_folder(cls, folder: Path, *, day: date, limit: int | None = None) -> Portal:
        """A portal whose calls are the folder's stereo recordings (manifest.csv: managers, deals, times of day),
        all on `day`, plus one missed call (bound to a lead), and the CRM data of a phone funnel around them
        (`seed.seed_funnel`): amounts, contacts and companies, stage histories, won and lost deals, deals of the
        day without a call, a second funnel. Deterministic: nothing depends on the wall clock."""
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
                                 incoming=True, deal_ids=[], duration_s=0, answered=False,
                                 lead_ids=[portal.new_id()]))
        from pipeline.sandbox.seed import seed_funnel

        seed_funnel(portal, day=day)
        return portal
