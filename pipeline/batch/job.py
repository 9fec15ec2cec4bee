"""What a batch run carries to its workers, and what comes back for each call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.settings import Settings
from pipeline.sources.base import CallRecord
from pipeline.transcript import Transcript

__all__ = ["AsrIdentity", "AudioFacts", "BatchJob", "CallOutcome", "FetchedRecording", "Prepared", "RunSummary",
           "Transcribed"]


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


class AudioFacts(BaseModel):
    """`calls/<id>/audio.json`: the recording's identity, written last, so it marks the call complete.

    The fingerprint (size and time, or an ETag, at the source) lets the next run skip the call without fetching
    it; the sha256 lets it skip a file that was touched but not changed.
    """

    model_config = ConfigDict(frozen=True)

    call_id: str
    uri: str
    fingerprint: str | None
    sha256: str | None
    size_bytes: int
    duration_s: float
    run_id: str
    stored_at: str
    record: CallRecord

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


class FetchedRecording(BaseModel):
    """Where the first step left a recording it fetched: a file on the machine that fetched it.

    Only the file's place travels between the steps, never its bytes: a four-hour WAV is 230 MB, and a worker
    holds several calls in flight. A step on another machine fetches the recording again.
    """

    model_config = ConfigDict(frozen=True)

    host: str
    path: str
    size_bytes: int
    scratch: str | None = None  # the folder the recording was downloaded into (None: the source's own file)


class Prepared(BaseModel):
    """The first step's verdict on a call: done already, re-scored, or to be transcribed (with its recording)."""

    model_config = ConfigDict(frozen=True)

    record: CallRecord
    action: Literal["skip", "rescored", "analyze", "failed", "claimed"]  # claimed: another run holds the call
    reason: str = ""
    fetched: FetchedRecording | None = None
    suffix: str = ""
    sha256: str | None = None
    duration_s: float = 0.0
    stage_s: dict[str, float] = {}  # seconds this step spent (fetch), carried to the call's outcome


class Transcribed(BaseModel):
    """A call's transcript, with what the store records about its audio."""

    model_config = ConfigDict(frozen=True)

    record: CallRecord
    sha256: str | None
    size_bytes: int
    transcript: Transcript
    stage_s: dict[str, float] = {}
    transcribing: tuple[float, float] | None = None  # see CallOutcome


class CallOutcome(BaseModel):
    """What became of one call in a run.

    Attributes:
        stage_s: wall seconds the call spent per stage on its workers (support/stages.py: fetch, decode, vad, asr,
            overlaps, redecode, speakers, audio_copy, derive, store); empty for calls that were not transcribed.
        transcribing: when its transcription step began and ended (Unix seconds, the worker's clock): how many
            calls a GPU worker had in flight at a time.
    """

    model_config = ConfigDict(frozen=True)

    call_id: str
    status: Literal["processed", "rescored", "skipped", "failed"]
    reason: str = ""
    audio_s: float = 0.0
    score: float | None = None
    worker: str | None = None
    stage_s: dict[str, float] = {}
    transcribing: tuple[float, float] | None = None


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
