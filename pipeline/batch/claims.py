"""Claims: one run at a time transcribes a call, even when two runs share a store.

Cron may start the next night while the last one still runs, or an operator may start a run by hand beside the
nightly one. Before a run transcribes a call it claims it in the store (`calls/<id>/claim.json`); a second run
that finds a live claim of another run leaves the call to it. A claim is a lease: it lapses `ttl_s` after it was
taken or last renewed, so a run that crashed blocks its calls only until then; the run that holds it renews it
from its own process while the call is in flight (runner.py), and removes it when the call is stored or has
failed (a failed call leaves nothing in the store). A run that found a call held waits for that claim to go or
lapse, then tries the call again: it is done by then, or this run does it.

Taking and renewing a claim are conditional writes (create if absent, or replace if unchanged since read), so of
two runs racing for the same call exactly one wins, on a folder as on S3. Removing it is a read, then a delete
if it is still this run's: only a claim that lapsed in between could be lost, and its call is stored by then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.stores import ArtifactStore, StoreError, claim_key

__all__ = ["Claim", "ClaimRefused", "Claims"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Claim(BaseModel):
    """What `calls/<id>/claim.json` holds."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_id: Literal["callqa.claim/1"] = Field("callqa.claim/1", alias="schema")
    call_id: str
    run_id: str
    worker: str | None = None
    claimed_at: datetime
    expires_at: datetime

    def live(self, now: datetime) -> bool:
        return self.expires_at > now

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, indent=2).encode()


class ClaimRefused(Exception):
    """Another run holds a live claim on the call."""

    def __init__(self, holder: Claim) -> None:
        super().__init__(f"being analysed by run {holder.run_id} (its claim lapses at "
                         f"{holder.expires_at.isoformat(timespec='seconds')})")
        self.holder = holder


class Claims:
    """The claims of one run in one store.

    Args:
        store: the artifact store.
        run_id: the run that claims.
        ttl_s: how long a claim lives without renewal.
        worker: recorded in the claim, for people.
        clock: the time (injected in tests).
    """

    def __init__(self, store: ArtifactStore, run_id: str, *, ttl_s: float, worker: str | None = None,
                 clock: Clock = _utc_now) -> None:
        self.store, self.run_id, self.ttl_s, self.worker, self.clock = store, run_id, ttl_s, worker, clock

    def _mine(self, call_id: str, claimed_at: datetime | None = None) -> Claim:
        now = self.clock()
        return Claim(call_id=call_id, run_id=self.run_id, worker=self.worker, claimed_at=claimed_at or now,
                     expires_at=now + timedelta(seconds=self.ttl_s))

    def acquire(self, call_id: str) -> Claim:
        """Claim the call for this run (again, if this run held it: a task that is run a second time).

        Raises:
            ClaimRefused: another run holds a live claim.
            StoreError: the store cannot be read or written.
        """
        key = claim_key(call_id)
        for _ in range(5):  # each round loses only to a writer that changed the claim meanwhile
            mine = self._mine(call_id)
            if self.store.write(key, mine.to_bytes(), only_if_absent=True):
                return mine
            current = self.store.read_versioned(key)
            if current is None:
                continue  # released and deleted between our two steps: try to create it again
            held = _parse(current.data, call_id)
            if held is not None and held.run_id != self.run_id and held.live(self.clock()):
                raise ClaimRefused(held)
            if held is not None and held.run_id != self.run_id:
                logger.warning("call %s: taking over the lapsed claim of run %s", call_id, held.run_id)
            if self.store.write(key, mine.to_bytes(), if_version=current.version):
                return mine
        raise StoreError(f"{key}: the claim kept changing while run {self.run_id} tried to take it")

    def holder(self, call_id: str) -> Claim | None:
        """The call's claim as it is now (None: nobody's, or unreadable)."""
        data = self.store.read(claim_key(call_id))
        return _parse(data, call_id) if data else None

    def renew(self, call_id: str) -> bool:
        """Push this run's claim's lapse back by `ttl_s`; False when the claim is no longer this run's."""
        key = claim_key(call_id)
        current = self.store.read_versioned(key)
        if current is None:
            return False
        held = _parse(current.data, call_id)
        if held is None or held.run_id != self.run_id:
            return False
        renewed = self._mine(call_id, claimed_at=held.claimed_at)
        return self.store.write(key, renewed.to_bytes(), if_version=current.version)

    def release(self, call_id: str) -> bool:
        """Remove this run's claim (the call is stored, or failed); False when it was no longer this run's."""
        key = claim_key(call_id)
        current = self.store.read(key)
        held = _parse(current, call_id) if current else None
        if held is None or held.run_id != self.run_id:
            return False
        self.store.delete(key)
        return True


def _parse(data: bytes, call_id: str) -> Claim | None:
    try:
        return Claim.model_validate_json(data)
    except ValueError:
        logger.warning("call %s: unreadable claim, treated as lapsed", call_id)
        return None
