"""Writing into Bitrix24, exactly once per call: the score comment (here), and through `publish_stored` the
transcript on the call (transcript.py), the deal's fields (deal_fields.py) and auto-fail notifications (notify.py).

- A ledger in the artifact store (`bitrix24/comments/<call_id>.json`: comment id, target, content hash) says
  what was posted. A call already posted with the same text is left alone; a re-scored call whose text changed
  gets its comment updated in place (`crm.timeline.comment.update`); a new call gets one comment.
- Comments go out 50 to a `batch`: one request for 50 comments keeps a night's posting far below the portal's
  2 requests a second.
- A write sent without an answer (a timeout) is never repeated blindly: the target's comments are read back and
  the call's marker (comment.py) searched for; only if it is not there is the comment posted again.
- Calls with no score, with failed quality gates (too short, no speech, not Russian) or with nowhere to post get
  no comment, with the reason.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.bitrix24.client import PAGE, Bitrix24Client
from pipeline.bitrix24.errors import AmbiguousWrite, Bitrix24Error
from pipeline.publish.comment import has_marker, render_comment
from pipeline.publish.deal_fields import DealFieldsPublisher, deal_of
from pipeline.publish.notify import NotifyPublisher
from pipeline.publish.outcomes import Kind, WriteOutcome, WriteStatus
from pipeline.publish.transcript import TranscriptPublisher
from pipeline.schema import CallResult
from pipeline.stores import ArtifactStore, StoreError, concurrently

if TYPE_CHECKING:
    from pipeline.settings import Settings

__all__ = ["CommentPublisher", "LedgerEntry", "PublishOutcome", "PublishReport", "PublishStatus", "ledger_key",
           "publish_stored"]

logger = logging.getLogger(__name__)


def ledger_key(call_id: str) -> str:
    return f"bitrix24/comments/{call_id}.json"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class LedgerEntry(BaseModel):
    """`bitrix24/comments/<call_id>.json`: the comment a call has in the CRM, and the hash of its text."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    comment_id: int
    target: str = Field(description='where it is: "deal:456"')
    sha256: str = Field(description="of the comment's text: the same text is not posted again")
    scorecard_version: str | None = None
    posted_at: str
    updated_at: str


PublishStatus = Literal["posted", "updated", "unchanged", "skipped", "failed", "dry-run"]


@dataclass(frozen=True)
class PublishOutcome:
    call_id: str
    status: PublishStatus
    reason: str = ""
    comment_id: int | None = None
    target: str | None = None


@dataclass
class _Write:
    result: CallResult
    text: str
    target: str  # "deal:456"
    comment_id: int | None  # set: an update of this comment
    ledger: LedgerEntry | None = None  # the call's entry as planning read it

    @property
    def entity(self) -> tuple[str, str]:
        kind, _, entity_id = self.target.partition(":")
        return kind, entity_id

    def command(self) -> tuple[str, dict]:
        if self.comment_id is not None:
            return "crm.timeline.comment.update", {"id": self.comment_id, "fields": {"COMMENT": self.text}}
        kind, entity_id = self.entity
        return "crm.timeline.comment.add", {"fields": {"ENTITY_ID": entity_id, "ENTITY_TYPE": kind,
                                                       "COMMENT": self.text}}


class CommentPublisher:
    def __init__(self, client: Bitrix24Client, store: ArtifactStore, *, protect_personal_data: bool = True,
                 dry_run: bool = False, show: Callable[[str, str], None] | None = None) -> None:
        self.client, self.store = client, store
        self.protect = protect_personal_data
        self.dry_run = dry_run
        self.show = show or (lambda call_id, text: None)

    def _ledger(self, call_id: str) -> LedgerEntry | None:
        data = self.store.read(ledger_key(call_id))
        return LedgerEntry.model_validate_json(data) if data else None

    def _record(self, write: _Write, comment_id: int, *, created: bool) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        previous = write.ledger
        entry = LedgerEntry(call_id=write.result.call_id, comment_id=comment_id, target=write.target,
                            sha256=_sha(write.text), scorecard_version=write.result.scorecard_version,
                            posted_at=previous.posted_at if previous else now, updated_at=now)
        self.store.write(ledger_key(write.result.call_id), entry.model_dump_json(indent=2).encode(),
                         only_if_absent=created and previous is None)

    def _plan(self, result: CallResult) -> _Write | PublishOutcome:
        call_id = result.call_id
        if result.score is None:
            return PublishOutcome(call_id, "skipped", "no score")
        if not result.quality.passed:
            failed = ", ".join(gate.id for gate in result.quality.gates if not gate.passed)
            return PublishOutcome(call_id, "skipped", f"quality gates failed: {failed}")
        target = result.metadata.crm_target
        if not target:
            return PublishOutcome(call_id, "skipped", "no deal, contact or lead to comment on")
        text = render_comment(result, protect_personal_data=self.protect)
        ledger = self._ledger(call_id)
        if ledger and ledger.sha256 == _sha(text) and ledger.target == target:
            return PublishOutcome(call_id, "unchanged", "already posted", ledger.comment_id, target)
        comment_id = ledger.comment_id if ledger and ledger.target == target else None
        return _Write(result, text, target, comment_id, ledger)

    def _plan_or_fail(self, result: CallResult) -> _Write | PublishOutcome:
        try:
            return self._plan(result)
        except StoreError as error:
            return PublishOutcome(result.call_id, "failed", str(error))

    def publish(self, results: list[CallResult]) -> list[PublishOutcome]:
        """Post or update the comment of every call that needs it; one outcome per call."""
        outcomes: list[PublishOutcome] = []
        writes: list[_Write] = []
        for planned in concurrently(self._plan_or_fail, results):  # each plan reads the call's ledger
            if isinstance(planned, PublishOutcome):
                outcomes.append(planned)
            else:
                writes.append(planned)
        if self.dry_run:
            for write in writes:
                self.show(write.result.call_id, write.text)
            return outcomes + [PublishOutcome(w.result.call_id, "dry-run", target=w.target) for w in writes]
        for first in range(0, len(writes), PAGE):
            outcomes += self._send(writes[first: first + PAGE])
        return outcomes

    def _send(self, writes: list[_Write]) -> list[PublishOutcome]:
        commands = {f"c{index}": write.command() for index, write in enumerate(writes)}
        try:
            batch = self.client.batch(commands, write=True)
        except AmbiguousWrite:
            logger.warning("a batch of %d comments got no answer: checking what reached the portal", len(writes))
            return [self._resolve(write) for write in writes]
        except Bitrix24Error as error:
            return [PublishOutcome(w.result.call_id, "failed", str(error), target=w.target) for w in writes]

        def outcome(item: tuple[str, _Write]) -> PublishOutcome:
            key, write = item
            if key in batch.errors:
                return PublishOutcome(write.result.call_id, "failed", str(batch.errors[key]), target=write.target)
            if key in batch.results:
                return self._done(write, int(batch.results[key]))  # writes the ledger
            return PublishOutcome(write.result.call_id, "failed", "no result in the batch", target=write.target)

        return concurrently(outcome, list(zip(commands, writes)))

    def _done(self, write: _Write, comment_id: int) -> PublishOutcome:
        status: PublishStatus = "updated" if write.comment_id is not None else "posted"
        try:
            self._record(write, comment_id, created=write.comment_id is None)
        except StoreError as error:
            # Posted, but not remembered: the marker finds it on the next run, so nothing is posted twice.
            return PublishOutcome(write.result.call_id, "failed", f"posted, ledger not written: {error}",
                                  comment_id, write.target)
        return PublishOutcome(write.result.call_id, status, "", comment_id, write.target)

    def _find(self, write: _Write) -> dict | None:
        """The comment with this call's marker on the target, if any."""
        kind, entity_id = write.entity
        start = 0
        while True:
            page = self.client.call("crm.timeline.comment.list", {
                "filter": {"ENTITY_ID": entity_id, "ENTITY_TYPE": kind}, "select": ["ID", "COMMENT"],
                "order": {"ID": "DESC"}, "start": start})
            for comment in page.get("result") or []:
                if has_marker(str(comment.get("COMMENT", "")), write.result.call_id):
                    return comment
            if "next" not in page:
                return None
            start = int(page["next"])

    def _resolve(self, write: _Write, attempts: int = 3) -> PublishOutcome:
        """After a write without an answer: look, then write only what is missing; again if that write gets no
        answer either (a bad night can lose two answers in a row)."""
        error: Bitrix24Error | None = None
        for _ in range(attempts):
            try:
                found = self._find(write)
                if found is not None:
                    if str(found.get("COMMENT", "")).strip() == write.text.strip():
                        return self._done(write, int(found["ID"]))
                    retry = _Write(write.result, write.text, write.target, int(found["ID"]), write.ledger)
                else:
                    retry = write
                method, params = retry.command()
                comment_id = self.client.result(method, params, write=True)
                return self._done(retry, int(comment_id))
            except AmbiguousWrite as ambiguous:
                error = ambiguous
                continue
            except Bitrix24Error as failure:
                return PublishOutcome(write.result.call_id, "failed", str(failure), target=write.target)
        return PublishOutcome(write.result.call_id, "failed", f"{error}; the next run checks again",
                              target=write.target)


_KIND_TITLES: dict[Kind, str] = {"transcript": "transcripts", "deal_fields": "deal fields",
                                 "notification": "notifications"}
_WRITE_STATUSES: tuple[WriteStatus, ...] = ("written", "unchanged", "ambiguous", "skipped", "failed", "dry-run")


@dataclass(frozen=True)
class PublishReport:
    """One comment outcome per call, the outcomes of the other kinds (per call, or per deal for deal fields),
    the run's warnings (e.g. no admin to create the deal fields), and how many requests the portal saw."""

    outcomes: list[PublishOutcome]
    requests: int
    writes: list[WriteOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, status: PublishStatus) -> int:
        """Comments with this status."""
        return sum(outcome.status == status for outcome in self.outcomes)

    def count_writes(self, kind: Kind, status: WriteStatus) -> int:
        return sum(write.kind == kind and write.status == status for write in self.writes)

    @property
    def failed(self) -> int:
        """Comments and other writes that failed (an ambiguous transcript or notification is not a failure: it
        is recorded and never sent again)."""
        return self.count("failed") + sum(write.status == "failed" for write in self.writes)

    def kind_lines(self) -> list[str]:
        """A line per failed or ambiguous write, then one summary line per kind that had anything to do, e.g.
        "Bitrix24 transcripts: written 3, unchanged 5"."""
        lines = [f"{write.kind.replace('_', ' ')} {write.key}: {write.status}: {write.reason}"
                 for write in self.writes if write.status in ("failed", "ambiguous")]
        for kind, title in _KIND_TITLES.items():
            counts = {status: self.count_writes(kind, status) for status in _WRITE_STATUSES}
            if any(counts.values()):
                lines.append(f"Bitrix24 {title}: " + ", ".join(f"{status} {count}" for status, count
                                                               in counts.items() if count))
        return lines


def publish_stored(store: ArtifactStore, call_ids: list[str], settings: Settings, *,
                   client: Bitrix24Client | None = None, dry_run: bool = False,
                   show: Callable[[str, str], None] | None = None) -> PublishReport:
    """Write what these stored calls have to say into Bitrix24, each kind exactly once: the score comment,
    then (as `settings.publish` switches them) the transcript on the call, the deal's fields, and a
    notification of an auto-failed call. A dry run passes what would be written to `show` and writes nothing.

        report = publish_stored(store, ["externalCall.1f2e.1764316800"], load_settings())
        print(report.count("posted"), report.kind_lines())
    """
    from pipeline.bitrix24.settings import make_client
    from pipeline.stores import result_key

    def read_result(call_id: str) -> CallResult | None:
        data = store.read(result_key(call_id))
        return CallResult.from_json(data) if data else None

    results = [result for result in concurrently(read_result, call_ids) if result is not None]
    client = client or make_client(settings.bitrix24)
    options, protect = settings.publish, settings.bitrix24.protect_personal_data
    warnings: list[str] = []
    deals = DealFieldsPublisher(client, store, options, dry_run=dry_run, show=show)
    fields_ready = False
    if options.deal_fields and any(deal_of(result) for result in results):
        # the fields first: a run without an admin's webhook says so once, before anything else is written
        warning = deals.ensure_fields()
        if warning:
            logger.warning("%s", warning)
            warnings.append(warning)
        fields_ready = warning is None
    comments = CommentPublisher(client, store, protect_personal_data=protect, dry_run=dry_run, show=show)
    outcomes = comments.publish(results)
    writes: list[WriteOutcome] = []
    if options.transcripts:
        writes += TranscriptPublisher(client, store, protect_personal_data=protect, dry_run=dry_run,
                                      show=show).publish(results)
    if options.deal_fields:
        writes += deals.publish(results) if fields_ready else deals.skip(results, "the deal fields are missing")
    if options.notify_auto_fail:
        writes += NotifyPublisher(client, store, notify_user=options.notify_user, deal_url=settings.report.deal_url,
                                  dry_run=dry_run, show=show).publish(results)
    return PublishReport(outcomes=outcomes, requests=client.requests, writes=writes, warnings=warnings)
