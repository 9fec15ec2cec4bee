"""The transcript on the call itself (`telephony.call.attachTranscription`), so that Bitrix24's call card shows
who said what: one message per turn, SIDE "User" for the manager and "Client" for the client, times in whole
seconds (START_TIME >= 0, STOP_TIME >= 1, as the method's docs require), personal data redacted as in comments.

The method has no read-back (nothing lists a call's transcripts), so the ledger alone decides: its entry is
written before the request, and a transcript whose answer was lost or ambiguous is recorded as "ambiguous" and
never sent again; a second one would show in the card as a second transcript.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from pipeline.bitrix24.client import Bitrix24Client
from pipeline.publish.ledgers import SendStatus, TranscriptLedger, now_iso, read_ledger, transcript_ledger_key
from pipeline.publish.once import OnceWrite, plan_each, send_once
from pipeline.publish.outcomes import WriteOutcome
from pipeline.publish.pii import redact
from pipeline.schema import CallResult
from pipeline.stores import ArtifactStore
from pipeline.support.russian import call_time

__all__ = ["METHOD", "TranscriptMessage", "TranscriptPublisher", "is_bitrix24_call", "transcript_messages"]

METHOD = "telephony.call.attachTranscription"
SIDES = {"manager": "User", "client": "Client"}


class TranscriptMessage(BaseModel):
    """One message of MESSAGES, as the method takes it."""

    model_config = ConfigDict(frozen=True)

    SIDE: str
    START_TIME: int
    STOP_TIME: int
    MESSAGE: str


def is_bitrix24_call(result: CallResult) -> bool:
    """Whether the call came from a Bitrix24 portal, so that its call id is the portal's CALL_ID."""
    return result.source.uri.startswith("bitrix24://")


def transcript_messages(result: CallResult, *, protect_personal_data: bool = True) -> list[TranscriptMessage]:
    """The call's turns as messages; turns of an unknown speaker are left out (the method knows two sides)."""
    messages = []
    for turn in result.turns:
        side = SIDES.get(turn.role)
        text = (redact(turn.text) if protect_personal_data else turn.text).strip()
        if side is None or not text:
            continue
        start = max(0, math.floor(turn.start))
        # whole seconds, and a turn shorter than a second still spans one: STOP_TIME must exceed zero
        stop = max(math.ceil(turn.end), start + 1)
        messages.append(TranscriptMessage(SIDE=side, START_TIME=start, STOP_TIME=stop, MESSAGE=text))
    return messages


def _sha(messages: list[TranscriptMessage]) -> str:
    data = json.dumps([m.model_dump() for m in messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


def _answer_id(answer: object) -> int | None:
    value = answer.get("TRANSCRIPT_ID") if isinstance(answer, dict) else None
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def render_transcript(messages: list[TranscriptMessage]) -> str:
    """The messages as a person reads them (a dry run)."""
    return "\n".join(f"{call_time(m.START_TIME)}–{call_time(m.STOP_TIME)} {m.SIDE}: {m.MESSAGE}" for m in messages)


class TranscriptPublisher:
    def __init__(self, client: Bitrix24Client, store: ArtifactStore, *, protect_personal_data: bool = True,
                 dry_run: bool = False, show: Callable[[str, str], None] | None = None) -> None:
        self.client, self.store = client, store
        self.protect, self.dry_run = protect_personal_data, dry_run
        self.show = show or (lambda key, text: None)

    def _plan(self, result: CallResult) -> OnceWrite | WriteOutcome:
        call_id = result.call_id
        if not is_bitrix24_call(result):
            return WriteOutcome("transcript", call_id, "skipped", "not a call from the Bitrix24 portal")
        if not result.quality.passed:
            return WriteOutcome("transcript", call_id, "skipped", "quality gates failed")
        messages = transcript_messages(result, protect_personal_data=self.protect)
        if not messages:
            return WriteOutcome("transcript", call_id, "skipped", "no turns of a known manager or client")
        ledger = read_ledger(self.store, transcript_ledger_key(call_id), TranscriptLedger)
        if ledger is not None and ledger.settled:
            reason = "attached" if ledger.status == "sent" else f"{ledger.status} earlier: never sent again"
            return WriteOutcome("transcript", call_id, "unchanged", reason)
        params = {"CALL_ID": call_id, "MESSAGES": [message.model_dump() for message in messages]}
        digest = _sha(messages)

        def entry(status: SendStatus, transcript_id: int | None, reason: str) -> TranscriptLedger:
            return TranscriptLedger(call_id=call_id, status=status, transcript_id=transcript_id,
                                    messages=len(messages), sha256=digest, sent_at=now_iso(), reason=reason)

        return OnceWrite("transcript", call_id, transcript_ledger_key(call_id), METHOD, params, entry)

    def publish(self, results: list[CallResult]) -> list[WriteOutcome]:
        """Attach the transcript of every call that has none yet; one outcome per call."""
        outcomes, writes = plan_each("transcript", results, self._plan)
        if self.dry_run:
            for write in writes:
                messages = [TranscriptMessage.model_validate(m) for m in write.params["MESSAGES"]]
                self.show(write.key, f"transcript, {len(messages)} messages:\n" + render_transcript(messages))
            return outcomes + [WriteOutcome("transcript", w.key, "dry-run") for w in writes]
        return outcomes + send_once(self.client, self.store, writes, _answer_id)
