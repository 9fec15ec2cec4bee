"""What a batch run carries to its workers, and what comes back for each call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.schema import CallResult
from pipeline.settings import Settings
from pipeline.sources.base import CallRecord

__all__ = ["AsrIdentity", "BatchJob", "CallOutcome", "Prepared", "RunSummary", "Transcribed"]


class AsrIdentity(BaseModel):
    """Which ASR model a run uses: a stored result made with another one is redone."""

    model_config = ConfigDict(frozen=True)

    name: str
    sha256: str | None


class BatchJob(BaseModel):
    """Everything a worker needs to process calls of one run (sent to each worker once)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    run_id: str
    settings: Settings
    source: str
    store: str
    asr: AsrIdentity
    lexicon_version: str | None
    scorecard_version: str | None
    force: bool = False
    rescore_only: bool = False


class Prepared(BaseModel):
    """The first step's verdict on a call: done already, re-scored, or to be transcribed (with its audio)."""

    model_config = ConfigDict(frozen=True)

    record: CallRecord
    action: Literal["skip", "rescored", "analyze", "failed", "claimed"]  # claimed: another run holds the call
    reason: str = ""
    audio: bytes | None = Field(None, repr=False)
    suffix: str = ""
    sha256: str | None = None
    duration_s: float = 0.0


class Transcribed(BaseModel):
    """A call's analysis before scoring, with what the store records about its audio."""

    model_config = ConfigDict(frozen=True)

    record: CallRecord
    sha256: str | None
    size_bytes: int
    result: CallResult
    manager_voice: list[float] | None = None  # a stereo call's manager leg, for the manager's voiceprint
    manager_speech_s: float = 0.0


class CallOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    call_id: str
    status: Literal["processed", "rescored", "skipped", "failed"]
    reason: str = ""
    audio_s: float = 0.0
    score: float | None = None
    worker: str | None = None


class RunSummary(BaseModel):
    run_id: str
    source: str
    store: str
    started_at: str
    finished_at: str
    wall_s: float
    calls: list[CallOutcome]

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.calls)

    @property
    def audio_s(self) -> float:
        return sum(o.audio_s for o in self.calls if o.status == "processed")
