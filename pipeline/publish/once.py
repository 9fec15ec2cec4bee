"""Writes that cannot be read back (a transcript on a call, a notification): sent at most once, whatever happens.

The ledger entry is written *before* the request ("sending"), then settled by the answer: "sent" with the id the
portal gave, "failed" after a clear refusal (nothing happened: the next run may send it), or "ambiguous" after
an answer that may mean either (no answer, INTERNAL_SERVER_ERROR after sending, a batch silent on the command).
An entry that is not "failed" stops every later send; a run that dies mid-request leaves "sending", which does
the same. Losing one such write is the price of never doubling it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from pipeline.bitrix24.client import Bitrix24Client
from pipeline.bitrix24.errors import AmbiguousWrite, Bitrix24Error
from pipeline.publish.ledgers import SendStatus, write_ledger
from pipeline.publish.outcomes import Kind, WriteOutcome, WriteStatus, command_size, packed
from pipeline.schema import CallResult
from pipeline.stores import ArtifactStore, StoreError, concurrently

__all__ = ["OnceWrite", "plan_each", "send_once"]

logger = logging.getLogger(__name__)

_OUTCOME: dict[SendStatus, WriteStatus] = {"sent": "written", "ambiguous": "ambiguous", "failed": "failed",
                                           "sending": "ambiguous"}


@dataclass(frozen=True)
class OnceWrite:
    """One write: the command, and how its ledger entry looks in each state."""

    kind: Kind
    key: str  # the call id
    ledger_key: str
    method: str
    params: dict
    entry: Callable[[SendStatus, int | None, str], BaseModel]  # (status, id from the answer, reason) -> entry


def plan_each(kind: Kind, results: list[CallResult],
              plan: Callable[[CallResult], OnceWrite | WriteOutcome | None]) -> tuple[list[WriteOutcome],
                                                                                      list[OnceWrite]]:
    """Each call's plan: an outcome now (nothing to send; the ledger could not be read), a write to send, or
    nothing at all (None: this kind does not concern the call)."""
    def plan_or_fail(result: CallResult) -> OnceWrite | WriteOutcome | None:
        try:
            return plan(result)
        except StoreError as error:
            return WriteOutcome(kind, result.call_id, "failed", str(error))

    outcomes: list[WriteOutcome] = []
    writes: list[OnceWrite] = []
    for planned in concurrently(plan_or_fail, results):  # each plan reads the call's ledger
        if isinstance(planned, WriteOutcome):
            outcomes.append(planned)
        elif planned is not None:
            writes.append(planned)
    return outcomes, writes


def send_once(client: Bitrix24Client, store: ArtifactStore, writes: list[OnceWrite],
              answer_id: Callable[[Any], int | None]) -> list[WriteOutcome]:
    """Send these writes in batches, each at most once; `answer_id` reads the new object's id from an answer."""
    outcomes: list[WriteOutcome] = []
    for chunk in packed(writes, lambda w: command_size(w.method, w.params)):
        outcomes += _send(client, store, chunk, answer_id)
    return outcomes


def _send(client: Bitrix24Client, store: ArtifactStore, writes: list[OnceWrite],
          answer_id: Callable[[Any], int | None]) -> list[WriteOutcome]:
    def remember(write: OnceWrite) -> WriteOutcome | None:
        try:
            write_ledger(store, write.ledger_key, write.entry("sending", None, ""))
            return None
        except StoreError as error:  # not remembered, so not sent
            return WriteOutcome(write.kind, write.key, "failed", f"not sent: {error}")

    # every "sending" entry is written (or has failed) before the batch goes out
    refused = concurrently(remember, writes)
    outcomes = [outcome for outcome in refused if outcome is not None]
    ready = [write for write, outcome in zip(writes, refused) if outcome is None]
    if not ready:
        return outcomes
    commands = {f"w{index}": (write.method, write.params) for index, write in enumerate(ready)}
    try:
        batch = client.batch(commands, write=True)
    except AmbiguousWrite as error:
        logger.warning("a batch of %d %ss got an answer that may mean it was applied: recorded as ambiguous, "
                       "never sent again", len(ready), ready[0].kind.replace("_", " "))
        reason = str(error)
        return outcomes + concurrently(lambda w: _settle(store, w, "ambiguous", None, reason), ready)
    except Bitrix24Error as error:
        reason = str(error)
        return outcomes + concurrently(lambda w: _settle(store, w, "failed", None, reason), ready)

    def settle(item: tuple[str, OnceWrite]) -> WriteOutcome:
        key, write = item
        if key in batch.errors:
            return _settle(store, write, "failed", None, str(batch.errors[key]))
        if key in batch.results:
            return _settle(store, write, "sent", answer_id(batch.results[key]), "")
        # the batch ran but says nothing of this command: it may have run
        return _settle(store, write, "ambiguous", None, "no result in the batch")

    return outcomes + concurrently(settle, list(zip(commands, ready)))


def _settle(store: ArtifactStore, write: OnceWrite, status: SendStatus, new_id: int | None,
            reason: str) -> WriteOutcome:
    try:
        write_ledger(store, write.ledger_key, write.entry(status, new_id, reason))
    except StoreError as error:
        # "sending" stays: never sent again, which is right unless the portal refused it (then deleting the
        # entry lets the next run send it).
        logger.warning("%s of %s: %s, but the ledger still says sending: %s", write.kind, write.key, status, error)
    return WriteOutcome(write.kind, write.key, _OUTCOME[status], reason)
