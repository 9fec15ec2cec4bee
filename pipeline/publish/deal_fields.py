"""The score in the deal's own fields, so that Bitrix24's filters, reports and BI can use it: the latest scored
call's score (0-100) and grade (1-5), and how many of the deal's calls were scored.

- The fields are deal user fields, created at the start of publishing when missing (listed first, then only
  the missing ones added). Creating them needs a CRM administrator's webhook: without one, one warning line says
  so and no deal field is written this run; everything else goes on.
- The values come from the deal's ledger (`bitrix24/deal-fields/<deal_id>.json`), which keeps every scored call
  of the deal that was published: the count and the latest call (by start time) are the same on every run.
- Writing the same values again is harmless, so the ledger only saves requests: a deal whose ledger says it
  holds these values is left alone. After an ambiguous answer the deals are read back (`crm.item.get`); one that
  does not show the values yet is written on the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.bitrix24.client import Bitrix24Client
from pipeline.bitrix24.errors import AccessDenied, AmbiguousWrite, Bitrix24Error
from pipeline.publish.ledgers import (
    DealCall,
    DealFieldsLedger,
    DealFieldValues,
    deal_fields_ledger_key,
    now_iso,
    read_ledger,
    write_ledger,
)
from pipeline.publish.outcomes import WriteOutcome, command_size, packed
from pipeline.publish.settings import PublishSettings, UserField
from pipeline.schema import CallResult
from pipeline.stores import ArtifactStore, StoreError, concurrently

__all__ = ["DealFieldsPublisher", "deal_of", "latest_values"]

logger = logging.getLogger(__name__)

DEAL = 2  # entityTypeId of deals
_TYPES = ("double", "integer", "integer")  # score, grade, calls: as PublishSettings.fields lists them


def deal_of(result: CallResult) -> str | None:
    """The deal the call belongs to, if any."""
    if result.metadata.deal_id:
        return result.metadata.deal_id
    target = result.metadata.crm_target or ""
    return (target.partition(":")[2] or None) if target.startswith("deal:") else None


def _scored(result: CallResult) -> bool:
    """A call that counts: scored, quality gates passed (as for the comment)."""
    return result.score is not None and result.quality.passed


def _start(call: DealCall) -> tuple[float, str]:
    moment = datetime.fromisoformat(call.started_at).timestamp() if call.started_at else float("-inf")
    return moment, call.call_id


def latest_values(calls: dict[str, DealCall], settings: PublishSettings) -> DealFieldValues:
    """The latest call's score and grade (by start time, then call id) and the number of calls."""
    latest = max(calls.values(), key=_start)
    return DealFieldValues(score_field=settings.score_field.name, score=round(latest.total, 1),
                           grade_field=settings.grade_field.name, grade=latest.grade,
                           calls_field=settings.calls_field.name, calls=len(calls))


def _camel(name: str) -> str:
    """UF_CRM_CALLQA_SCORE -> ufCrmCallqaScore, the way crm.item.* spells user fields by default."""
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _holds(item: Any, values: DealFieldValues) -> bool:
    """Whether a deal read back (crm.item.get) holds these values."""
    if not isinstance(item, dict):
        return False
    for name, wanted in values.fields().items():
        held = item.get(name, item.get(_camel(name)))
        try:
            if held is None or abs(float(held) - float(wanted)) > 1e-6:
                return False
        except (TypeError, ValueError):
            return False
    return True


def _definition(field: UserField, user_type: str) -> dict:
    definition: dict[str, Any] = {
        "FIELD_NAME": field.name, "USER_TYPE_ID": user_type, "LABEL": field.title, "XML_ID": field.name,
        "SHOW_FILTER": "Y", "SHOW_IN_LIST": "Y", "EDIT_IN_LIST": "N", "MULTIPLE": "N", "MANDATORY": "N"}
    if user_type == "double":
        definition["SETTINGS"] = {"PRECISION": 1}  # scores are kept to a tenth
    return {"fields": definition}


@dataclass
class _Update:
    deal_id: str
    ledger: DealFieldsLedger  # with this run's calls merged in
    values: DealFieldValues

    def params(self) -> dict:
        return {"entityTypeId": DEAL, "id": int(self.deal_id), "useOriginalUfNames": "Y",
                "fields": self.values.fields()}


class DealFieldsPublisher:
    def __init__(self, client: Bitrix24Client, store: ArtifactStore, settings: PublishSettings, *,
                 dry_run: bool = False, show: Callable[[str, str], None] | None = None) -> None:
        self.client, self.store, self.settings = client, store, settings
        self.dry_run = dry_run
        self.show = show or (lambda key, text: None)

    # --- the fields themselves ------------------------------------------------------------------------------
    def ensure_fields(self) -> str | None:
        """Create the missing user fields; None when all are there, else the one warning line to show (the
        deal fields are then not written this run)."""
        try:
            missing = self._missing()
        except Bitrix24Error as error:
            return f"deal fields are not written this run: cannot list the deal's user fields: {error}"
        if not missing or self.dry_run:
            for field, _ in missing:
                self.show("deal fields", f"would create the deal field {field.name} «{field.title}»")
            return None
        commands = {f"f{index}": ("crm.deal.userfield.add", _definition(field, user_type))
                    for index, (field, user_type) in enumerate(missing)}
        names = ", ".join(field.name for field, _ in missing)
        try:
            batch = self.client.batch(commands, write=True)
            refused = [error for error in batch.errors.values()]
        except AmbiguousWrite:
            refused = []  # the listing below tells
        except Bitrix24Error as error:
            refused = [error]
        if any(isinstance(error, AccessDenied) for error in refused):
            return (f"Bitrix24 deal fields {names} do not exist and this webhook may not create them: "
                    "crm.deal.userfield.add needs a CRM administrator's webhook; deal fields are not written "
                    "this run (comments, transcripts and notifications go on)")
        try:
            still = self._missing()
        except Bitrix24Error as error:
            return f"deal fields are not written this run: cannot list the deal's user fields: {error}"
        if still:
            detail = "; ".join(str(error) for error in refused) or "they did not appear"
            return (f"Bitrix24 deal fields {', '.join(f.name for f, _ in still)} could not be created ({detail}); "
                    "deal fields are not written this run")
        logger.info("created the Bitrix24 deal fields %s", names)
        return None

    def _missing(self) -> list[tuple[UserField, str]]:
        """The fields not on the portal yet, with their USER_TYPE_ID."""
        fields = list(zip(self.settings.fields, _TYPES))
        commands = {f"l{index}": ("crm.deal.userfield.list", {"filter": {"FIELD_NAME": field.name}})
                    for index, (field, _) in enumerate(fields)}
        batch = self.client.batch(commands)
        if batch.errors:
            raise next(iter(batch.errors.values()))
        return [(field, user_type) for key, (field, user_type) in zip(commands, fields)
                if not any(row.get("FIELD_NAME") == field.name for row in batch.results.get(key) or [])]

    # --- the values -----------------------------------------------------------------------------------------
    def _plan(self, deal_id: str, results: list[CallResult]) -> _Update | WriteOutcome:
        key = f"deal:{deal_id}"
        ledger = read_ledger(self.store, deal_fields_ledger_key(deal_id), DealFieldsLedger) \
            or DealFieldsLedger(deal_id=deal_id)
        calls = dict(ledger.calls)
        for result in results:
            if _scored(result) and result.score is not None:
                calls[result.call_id] = DealCall(call_id=result.call_id, started_at=result.metadata.started_at,
                                                 total=result.score.total, grade=result.score.grade)
            else:
                calls.pop(result.call_id, None)  # re-scored into no score: it no longer counts
        if calls != ledger.calls:
            ledger = ledger.model_copy(update={"calls": calls})
            if not self.dry_run:  # the calls are remembered even if the write below fails
                write_ledger(self.store, deal_fields_ledger_key(deal_id), ledger)
        if not calls:
            return WriteOutcome("deal_fields", key, "skipped", "no scored call")
        values = latest_values(calls, self.settings)
        if ledger.written == values:
            return WriteOutcome("deal_fields", key, "unchanged", "the deal holds these values")
        return _Update(deal_id, ledger, values)

    def publish(self, results: list[CallResult]) -> list[WriteOutcome]:
        """Write the fields of every deal these calls belong to whose values changed; one outcome per deal."""
        by_deal: dict[str, list[CallResult]] = {}
        for result in results:
            if (deal_id := deal_of(result)) is not None:
                by_deal.setdefault(deal_id, []).append(result)
        def plan_or_fail(deal: tuple[str, list[CallResult]]) -> _Update | WriteOutcome:
            deal_id, own = deal
            try:
                return self._plan(deal_id, own)
            except StoreError as error:
                return WriteOutcome("deal_fields", f"deal:{deal_id}", "failed", str(error))

        outcomes: list[WriteOutcome] = []
        updates: list[_Update] = []
        for planned in concurrently(plan_or_fail, list(by_deal.items())):  # each reads and writes its ledger
            if isinstance(planned, WriteOutcome):
                outcomes.append(planned)
            else:
                updates.append(planned)
        if self.dry_run:
            for update in updates:
                self.show(f"deal:{update.deal_id}", "deal fields: " + ", ".join(
                    f"{name}={value:g}" for name, value in update.values.fields().items()))
            return outcomes + [WriteOutcome("deal_fields", f"deal:{u.deal_id}", "dry-run") for u in updates]
        for chunk in packed(updates, lambda u: command_size("crm.item.update", u.params())):
            outcomes += self._send(chunk)
        return outcomes

    def skip(self, results: list[CallResult], reason: str) -> list[WriteOutcome]:
        """An outcome per deal when the fields cannot be written this run."""
        deals = dict.fromkeys(deal_id for result in results if (deal_id := deal_of(result)) is not None)
        return [WriteOutcome("deal_fields", f"deal:{deal_id}", "skipped", reason) for deal_id in deals]

    def _send(self, updates: list[_Update]) -> list[WriteOutcome]:
        commands = {f"d{index}": ("crm.item.update", update.params()) for index, update in enumerate(updates)}
        try:
            batch = self.client.batch(commands, write=True)
        except AmbiguousWrite:
            logger.warning("a batch of %d deal field updates got an answer that may mean it was applied: reading "
                           "the deals back", len(updates))
            return self._read_back(updates)
        except Bitrix24Error as error:
            return [WriteOutcome("deal_fields", f"deal:{u.deal_id}", "failed", str(error)) for u in updates]

        def outcome(item: tuple[str, _Update]) -> WriteOutcome:
            key, update = item
            if key in batch.errors:
                return WriteOutcome("deal_fields", f"deal:{update.deal_id}", "failed", str(batch.errors[key]))
            if key in batch.results:
                return self._done(update)  # writes the ledger
            # nothing said: the next run writes it again, which is harmless
            return WriteOutcome("deal_fields", f"deal:{update.deal_id}", "ambiguous",
                                "no result in the batch; written again next run")

        return concurrently(outcome, list(zip(commands, updates)))

    def _read_back(self, updates: list[_Update]) -> list[WriteOutcome]:
        commands = {f"g{index}": ("crm.item.get", {"entityTypeId": DEAL, "id": int(update.deal_id),
                                                   "useOriginalUfNames": "Y"})
                    for index, update in enumerate(updates)}
        try:
            batch = self.client.batch(commands)
        except Bitrix24Error as error:
            return [WriteOutcome("deal_fields", f"deal:{u.deal_id}", "ambiguous",
                                 f"cannot read back ({error}); written again next run") for u in updates]
        outcomes = []  # one after another: a rare path (an answer lost), and its ledgers are few
        for key, update in zip(commands, updates):
            item = (batch.results.get(key) or {}).get("item") if isinstance(batch.results.get(key), dict) else None
            if _holds(item, update.values):
                outcomes.append(self._done(update))
            else:
                reason = str(batch.errors[key]) if key in batch.errors else "not applied"
                outcomes.append(WriteOutcome("deal_fields", f"deal:{update.deal_id}", "ambiguous",
                                             f"{reason}; written again next run"))
        return outcomes

    def _done(self, update: _Update) -> WriteOutcome:
        key = f"deal:{update.deal_id}"
        try:
            write_ledger(self.store, deal_fields_ledger_key(update.deal_id),
                         update.ledger.model_copy(update={"written": update.values, "written_at": now_iso()}))
        except StoreError as error:  # written, not remembered: the next run writes the same values again
            return WriteOutcome("deal_fields", key, "written", f"ledger not written: {error}")
        return WriteOutcome("deal_fields", key, "written")

