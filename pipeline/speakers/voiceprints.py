"""Manager voiceprints: how each manager sounds, to tell manager from client in mono calls.

A voiceprint is the mean of voice samples, each a resemblyzer embedding of one recording's manager speech:

- enrolled automatically from stereo calls, where the channel map says which leg is the manager's (the nightly
  run adds one sample per good stereo call of a manager with a known id);
- or explicitly, `callqa voice enroll --manager ID AUDIO...`, from recordings of the manager alone or the
  manager's leg of stereo recordings.

Samples live in the artifact store, one object each, `voiceprints/<manager>/<sample>.json`, so workers enrolling
at once never overwrite each other and a sample is added once however often a call is re-run. Voiceprints are
biometric personal data: `callqa voice forget` removes a manager's samples.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import CallError, ConfigError
from pipeline.speakers.voices import ENCODER, VoiceOptions, VoiceWindows, embed_speech, normalised
from pipeline.stores import ArtifactStore

__all__ = ["VoiceSample", "Voiceprint", "VoiceprintOptions", "VoiceprintStore", "manager_key", "mean_voice",
           "sample_from_recording"]

PREFIX = "voiceprints"


class VoiceprintOptions(BaseModel):
    """Attributes:
        enroll_from_stereo: the nightly run adds a sample from each good stereo call of a known manager.
        min_speech_s: a sample needs at least this much of the manager's speech.
        max_samples: a voiceprint is the mean of the manager's latest samples, at most this many (voices
            and lines change; old samples fade out).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enroll_from_stereo: bool = True
    min_speech_s: float = Field(8.0, ge=0)
    max_samples: int = Field(20, ge=1)


class VoiceSample(BaseModel):
    """One recording's manager voice (the stored object)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manager_id: str
    manager_name: str | None = None
    encoder: str = ENCODER
    embedding: list[float] = Field(min_length=1)
    speech_s: float
    kind: Literal["stereo", "explicit"]
    source: str = Field(description="the call id, or the enrolled file's sha256")
    enrolled_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class Voiceprint:
    manager_id: str
    manager_name: str | None
    embedding: np.ndarray  # (256,), unit length
    samples: int
    speech_s: float


def manager_key(manager_id: str) -> str:
    """A store-safe folder name for a manager id (Bitrix24 user ids are digits; names may be anything)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", manager_id)[:40]
    if safe == manager_id:
        return safe
    return f"{safe}-{hashlib.sha256(manager_id.encode()).hexdigest()[:10]}"


def mean_voice(embeddings: np.ndarray) -> np.ndarray:
    """A voice sample's embedding from its windows (n, 256): their unit mean."""
    return normalised(normalised(np.asarray(embeddings, dtype=np.float32)).mean(axis=0))


class VoiceprintStore:
    """Voice samples in an artifact store, and the voiceprints made of them."""

    def __init__(self, store: ArtifactStore, options: VoiceprintOptions | None = None) -> None:
        self.store = store
        self.options = options or VoiceprintOptions()

    def add(self, sample: VoiceSample) -> bool:
        """Store a sample; False when the same source is already enrolled for this manager (nothing twice)."""
        key = f"{PREFIX}/{manager_key(sample.manager_id)}/{sample.kind}-{manager_key(sample.source)}.json"
        return self.store.write(key, sample.model_dump_json().encode(), only_if_absent=True)

    def samples(self, manager_id: str) -> list[VoiceSample]:
        """The manager's samples, oldest first.

        Raises:
            ConfigError: a sample was made by another encoder (its voice space does not match).
        """
        samples = []
        for key in self.store.list(f"{PREFIX}/{manager_key(manager_id)}/"):
            data = self.store.read(key)
            if not data:
                continue
            sample = VoiceSample.model_validate_json(data)
            if sample.encoder != ENCODER:
                raise ConfigError(f"{self.store.describe()}/{key}: voice sample of encoder {sample.encoder!r}, "
                                  f"this version uses {ENCODER!r}: enroll the manager again")
            samples.append(sample)
        return sorted(samples, key=lambda s: s.enrolled_at)

    def get(self, manager_id: str) -> Voiceprint | None:
        """The manager's voiceprint (weighted by speech), or None when nothing is enrolled."""
        samples = self.samples(manager_id)[-self.options.max_samples:]
        if not samples:
            return None
        weights = np.array([s.speech_s for s in samples], dtype=np.float32)
        stacked = normalised(np.array([s.embedding for s in samples], dtype=np.float32))
        embedding = normalised((stacked * weights[:, None]).sum(axis=0))
        name = next((s.manager_name for s in reversed(samples) if s.manager_name), None)
        return Voiceprint(manager_id=manager_id, manager_name=name, embedding=embedding, samples=len(samples),
                          speech_s=round(float(weights.sum()), 1))

    def managers(self) -> list[str]:
        """Ids of the managers with samples."""
        ids = set()
        for key in self.store.list(f"{PREFIX}/"):
            data = self.store.read(key)
            if data:
                ids.add(VoiceSample.model_validate_json(data).manager_id)
        return sorted(ids)

    def forget(self, manager_id: str) -> int:
        """Remove every sample of a manager; returns how many."""
        keys = self.store.list(f"{PREFIX}/{manager_key(manager_id)}/")
        for key in keys:
            self.store.delete(key)
        return len(keys)


def sample_from_recording(path: str | Path, *, manager_id: str, manager_name: str | None = None,
                          channel: int | None = None, options: VoiceprintOptions | None = None,
                          voices: VoiceOptions | None = None) -> VoiceSample:
    """A voice sample from a recording of the manager alone, or from one channel of a stereo recording.

    Raises:
        AudioError: the recording cannot be decoded.
        CallError: it holds too little speech for a voiceprint, or names a channel it does not have.
    """
    from pipeline.audio import iter_blocks, probe

    options = options or VoiceprintOptions()
    info = probe(path)
    if channel is not None and info.channels != 2:
        raise CallError(path, f"--channel needs a stereo recording, this one has {info.channels} channel(s)")
    windows = VoiceWindows()
    for block in iter_blocks(info):
        samples = block.samples[channel] if channel is not None else block.mix()
        windows.add(*embed_speech(samples, offset_s=block.start_s, options=voices))
    speech_s = round(len(windows) / (voices or VoiceOptions()).windows_per_s, 1)
    if speech_s < options.min_speech_s or not len(windows):
        raise CallError(path, f"only {speech_s:g} s of speech, a voiceprint needs at least "
                              f"{options.min_speech_s:g} s (voiceprints.min_speech_s)")
    return VoiceSample(manager_id=manager_id, manager_name=manager_name,
                       embedding=[round(float(x), 6) for x in mean_voice(windows.matrix())], speech_s=speech_s,
                       kind="explicit", source=info.sha256)
