"""The ledgers of what publishing wrote into Bitrix24 besides comments, one object per call (or deal) in the
artifact store; they decide what is written next, since the portal cannot always be asked.

    bitrix24/transcripts/<call_id>.json     TranscriptLedger    telephony.call.attachTranscription
    bitrix24/notifications/<call_id>.json   NotificationLedger  im.notify.system.add
    bitrix24/deal-fields/<deal_id>.json     DealFieldsLedger    the deal's scored calls and the values it holds

Transcripts and notifications have no read-back, so their entry is written *before* the request ("sending"):
a run that dies mid-request, or gets an answer that may mean "done", leaves an entry that stops any re-send.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from pipeline.stores import ArtifactStore

__all__ = ["DealCall", "DealFieldValues", "DealFieldsLedger", "NotificationLedger", "SendStatus", "TranscriptLedger",
           "deal_fields_ledger_key", "notification_ledger_key", "now_iso", "read_ledger", "transcript_ledger_key",
           "write_ledger"]

# sending: written before the request, still there only if its answer never came (or the run died): ambiguous.
# sent: the portal answered with an id. ambiguous: an answer that may mean either. failed: a clear refusal, so
# nothing was written and the next run tries again.
SendStatus = Literal["sending", "sent", "ambiguous", "failed"]


def transcript_ledger_key(call_id: str) -> str:
    return f"bitrix24/transcripts/{call_id}.json"


def notification_ledger_key(call_id: str) -> str:
    return f"bitrix24/notifications/{call_id}.json"


def deal_fields_ledger_key(deal_id: str) -> str:
    return f"bitrix24/deal-fields/{deal_id}.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Ledger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TranscriptLedger(_Ledger):
    """The transcript attached to a call (`bitrix24/transcripts/<call_id>.json`)."""

    call_id: str
    status: SendStatus
    transcript_id: int | None = None
    messages: int = Field(description="how many messages (turns) were sent")
    sha256: str = Field(description="of the messages sent")
    sent_at: str
    reason: str = ""

    @property
    def settled(self) -> bool:
        """Sent, or maybe sent: never sent again."""
        return self.status != "failed"


class NotificationLedger(_Ledger):
    """The auto-fail notification of a call (`bitrix24/notifications/<call_id>.json`)."""

    call_id: str
    user_id: str
    status: SendStatus
    notification_id: int | None = None
    sent_at: str
    reason: str = ""

    @property
    def settled(self) -> bool:
        return self.status != "failed"


class DealCall(_Ledger):
    """One scored call of a deal, as its stored result says."""

    call_id: str
    started_at: str | None
    total: float
    grade: int


class DealFieldValues(_Ledger):
    """What the deal's fields hold (the names too: renamed fields are written again)."""

    score_field: str
    score: float
    grade_field: str
    grade: int
    calls_field: str
    calls: int

    def fields(self) -> dict[str, float | int]:
        return {self.score_field: self.score, self.grade_field: self.grade, self.calls_field: self.calls}


class DealFieldsLedger(_Ledger):
    """A deal's scored calls (every one callqa published, so the count and the latest call come out the same on
    every run) and the values last written to it (`bitrix24/deal-fields/<deal_id>.json`)."""

    deal_id: str
    calls: dict[str, DealCall] = {}
    written: DealFieldValues | None = None
    written_at: str | None = None


L = TypeVar("L", bound=BaseModel)


def read_ledger(store: ArtifactStore, key: str, model: type[L]) -> L | None:
    """The entry, or None (raises StoreError when the store cannot be read)."""
    data = store.read(key)
    return model.model_validate_json(data) if data else None


def write_ledger(store: ArtifactStore, key: str, entry: BaseModel) -> None:
    store.write(key, entry.model_dump_json(indent=2).encode())
