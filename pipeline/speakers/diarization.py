"""Who speaks when in a mono call: the diarizer interface both backends implement.

A `Diarizer` is loaded once per process (its models stay in memory); for each call it opens a session, which is
fed the call's 16 kHz mono audio block by block as the call streams through the analyzer and, at the end, returns
a `Diarization`:

    diarizer = speakers.load_diarizer(settings.speakers)      # embedded (CPU) or pyannote (GPU box)
    session = diarizer.session()
    for block in blocks:
        session.add(block.mix(), offset_s=block.start_s)
    diarization = session.finish()                     # segments, voices, confidence

Speakers are named "S1", "S2", ... in order of first speech, whichever backend ran. Every backend also gives
each speaker a voice in resemblyzer's space (voices.py), which role detection compares with the manager's
voiceprint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.speakers.voices import VoiceOptions

__all__ = ["Diarization", "DiarizationSegment", "Diarizer", "DiarizerSession", "EmbeddedOptions",
           "PyannoteOptions", "SpeakerOptions", "speaker_names"]


@dataclass(frozen=True)
class DiarizationSegment:
    """A stretch of one speaker's speech; segments of different speakers may overlap (both talking)."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Diarization:
    """What a diarizer found in one call.

    Attributes:
        segments: speech of each speaker, in time order.
        voices: speaker -> voice embedding (256,), unit length, in resemblyzer's space.
        confidence: speaker -> share of its speech attributed with a clear margin (None with one speaker).
        backend, version: which diarizer ran.
        notes: what a reader of the result should know (e.g. a third voice folded away).
    """

    segments: list[DiarizationSegment]
    voices: dict[str, np.ndarray]
    confidence: dict[str, float | None]
    backend: str
    version: str
    notes: list[str] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(segment.speaker for segment in sorted(self.segments, key=lambda s: s.start)))


class DiarizerSession(Protocol):
    def add(self, samples: np.ndarray, *, offset_s: float) -> None:
        """Feed the next block of the call: float32 16 kHz mono samples starting at `offset_s` in the call."""

    def finish(self) -> Diarization:
        """Diarize what was fed.

        Raises:
            DiarizationError: the backend failed on this call.
        """


class Diarizer(Protocol):
    name: str
    version: str

    def session(self) -> DiarizerSession:
        """A new call."""


class EmbeddedOptions(BaseModel):
    """The embedded CPU diarizer (docs/speakers.md).

    Attributes:
        one_speaker_similarity: two cluster centroids at least this similar (cosine) are one voice. Measured on
            the sample calls: one synthetic voice split in two 0.94, one real telephone voice 0.90; two voices
            0.76-0.85.
        max_speakers: a sales call has two parties; a third voice (a transfer) is folded into the nearer one.
        smoothing_windows: a window whose label differs from this many neighbours on each side is flipped.
        min_speaker_s: a second voice needs at least this much speech; less is folded into the first (one
            party's "А" split off as a voice of its own made a one-party recording look like two).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    one_speaker_similarity: float = Field(0.875, gt=0, lt=1)
    max_speakers: int = Field(2, ge=1, le=2)
    smoothing_windows: int = Field(1, ge=0)
    min_speaker_s: float = Field(2.0, ge=0)


class PyannoteOptions(BaseModel):
    """pyannote.audio on the GPU box (docs/speakers.md).

    Attributes:
        pipeline_dir: a local copy of a pyannote 4 diarization pipeline (a folder with `config.yaml` and the
            sub-models it names as `$model/...`), prepared beforehand: nothing is fetched from a hub.
        device: "auto" (CUDA when there is one), "cuda" or "cpu".
        min_speakers, max_speakers: bounds for the clustering. A two-party call is not forced to exactly two
            (that merges or swaps voices when one party barely speaks); a third voice (a transfer) may appear.
        segmentation_batch_size, embedding_batch_size: inference batch sizes (lower them on a small GPU).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pipeline_dir: Path | None = None
    device: Literal["auto", "cuda", "cpu"] = "auto"
    min_speakers: int = Field(1, ge=1)
    max_speakers: int = Field(3, ge=1)
    segmentation_batch_size: int = Field(32, ge=1)
    embedding_batch_size: int = Field(32, ge=1)


class SpeakerOptions(BaseModel):
    """Which diarizer runs on mono calls, and its options.

    Attributes:
        diarizer: "auto" (pyannote when `pyannote.pipeline_dir` is set, else embedded), "embedded", "pyannote",
            or "none" (mono calls keep one voice and unknown roles).
        sentence_run_s: at a change of speaker, a run of words shorter than this that the diarizer gave to the
            other party of the sentence around it goes to the sentence's speaker (sentences.py); 0: never. The
            embedded diarizer's window is 1.6 s.
        short_sentence_s: a sentence no longer than this is heard on its own and goes to the speaker whose voice
            it clearly matches (by `voices.clear_margin`); 0: never.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    diarizer: Literal["auto", "embedded", "pyannote", "none"] = "auto"
    sentence_run_s: float = Field(1.6, ge=0)
    short_sentence_s: float = Field(2.0, ge=0)
    voices: VoiceOptions = VoiceOptions()
    embedded: EmbeddedOptions = EmbeddedOptions()
    pyannote: PyannoteOptions = PyannoteOptions()

    @property
    def backend(self) -> Literal["embedded", "pyannote", "none"]:
        if self.diarizer == "auto":
            return "pyannote" if self.pyannote.pipeline_dir is not None else "embedded"
        return self.diarizer


def speaker_names(labels: list) -> dict:
    """Backend label -> "S1", "S2", ... in the order the labels first occur."""
    names: dict = {}
    for label in labels:
        if label is not None and label not in names:
            names[label] = f"S{len(names) + 1}"
    return names
