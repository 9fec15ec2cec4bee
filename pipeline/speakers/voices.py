"""Voice embeddings: resemblyzer's speaker encoder on windows of speech, in one space for every purpose.

The embedded diarizer clusters these windows; after any diarizer (pyannote included) they give each speaker a
voice and a confidence; manager voiceprints are means of them over the manager's speech in stereo calls. One
encoder for all three means a voiceprint enrolled under one diarizer still works under the other.

resemblyzer's weights ship inside its wheel (17 MB): nothing is downloaded. The encoder expects 16 kHz audio, the
rate every channel is decoded to (telephone audio is upsampled by the decoder).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.audio import SAMPLE_RATE_HZ

__all__ = ["ENCODER", "VoiceOptions", "VoiceWindows", "embed_clips", "embed_speech", "load_encoder", "normalised",
           "speaker_voices"]

ENCODER = "resemblyzer-0.1.4"  # the space voiceprints live in: a voiceprint of another encoder is refused
EMBEDDING_DIM = 256
WINDOW_S = 1.6  # resemblyzer's partial utterance: 160 mel frames of 10 ms


class VoiceOptions(BaseModel):
    """Where the embedding windows go.

    Attributes:
        windows_per_s: embedding windows per second of speech (resemblyzer's `rate`).
        vad_min_silence_ms, vad_speech_pad_ms: Silero VAD settings of the speech regions the windows cover.
        min_region_s: speech regions shorter than this (a click, a breath) get no window.
        clear_margin: a window is clearly its speaker's when its cosine to that speaker's voice beats the next
            speaker's by this much (the speaker's confidence is the share of such windows).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    windows_per_s: float = Field(1.5, gt=0)
    vad_min_silence_ms: int = Field(300, ge=0)
    vad_speech_pad_ms: int = Field(100, ge=0)
    min_region_s: float = Field(0.3, ge=0)
    clear_margin: float = Field(0.05, ge=0, lt=1)


@functools.lru_cache(maxsize=1)
def load_encoder():
    """resemblyzer's VoiceEncoder, loaded once per process (about 0.1 s): on CUDA where there is one (on the GPU
    box beside pyannote it would otherwise cost a CPU as much time as pyannote takes on the GPU), else the CPU."""
    import warnings

    import torch

    with warnings.catch_warnings():  # resemblyzer's webrtcvad imports pkg_resources
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder

    return VoiceEncoder(device="cuda" if torch.cuda.is_available() else "cpu", verbose=False)


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-9)


@dataclass
class VoiceWindows:
    """Embedding windows of one call, in time order: `times[i]` (start, end) in the call, `embeddings[i]` (256,)."""

    times: list[tuple[float, float]] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)

    def add(self, times: list[tuple[float, float]], embeddings: np.ndarray) -> None:
        self.times += times
        self.embeddings += list(embeddings)

    def matrix(self) -> np.ndarray:
        """(n, 256) unit-length embeddings."""
        if not self.embeddings:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return normalised(np.stack(self.embeddings))

    def __len__(self) -> int:
        return len(self.times)


def embed_speech(samples: np.ndarray, *, offset_s: float = 0.0,
                 options: VoiceOptions | None = None) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Embedding windows over the speech in `samples` (float32, 16 kHz, one channel).

    Returns:
        The windows' (start, end) in the call (`offset_s` added) and their embeddings, shape (n, 256).
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = options or VoiceOptions()
    regions = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=options.vad_min_silence_ms,
                                                        speech_pad_ms=options.vad_speech_pad_ms))
    regions = [r for r in regions if r["end"] - r["start"] >= options.min_region_s * SAMPLE_RATE_HZ]
    empty: tuple[list[tuple[float, float]], np.ndarray] = ([], np.zeros((0, EMBEDDING_DIM), np.float32))
    if not regions:
        return empty
    # The encoder runs over the speech alone, pauses cut out, so a window never straddles a long silence.
    speech = np.concatenate([samples[r["start"]: r["end"]] for r in regions]).astype(np.float32)
    if len(speech) < WINDOW_S * SAMPLE_RATE_HZ / 2:
        return empty
    starts = np.cumsum([0] + [r["end"] - r["start"] for r in regions])
    origins = np.array([r["start"] for r in regions])

    def in_call(position: int) -> float:
        index = min(int(np.searchsorted(starts, position, side="right")) - 1, len(regions) - 1)
        return float(origins[index] + position - starts[index]) / SAMPLE_RATE_HZ + offset_s

    _, partials, splits = load_encoder().embed_utterance(speech, return_partials=True, rate=options.windows_per_s)
    times = [(in_call(s.start), in_call(min(s.stop, len(speech)) - 1)) for s in splits]
    return times, np.asarray(partials, dtype=np.float32)


def embed_clips(clips: list[np.ndarray]) -> np.ndarray:
    """Each clip's voice (float32, 16 kHz, one channel), shape (n, 256), unit length: what resemblyzer's
    `embed_utterance` gives for each (the mean of its 1.6 s partials), with every clip's partials through the
    encoder in one batch (a clip at a time costs four to five times more for short clips)."""
    if not clips:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    import torch
    from resemblyzer import audio

    encoder = load_encoder()
    mels: list[np.ndarray] = []
    owners: list[int] = []
    for index, clip in enumerate(clips):
        wav_slices, mel_slices = encoder.compute_partial_slices(len(clip), 1.3, 0.75)  # embed_utterance's defaults
        padded = np.pad(clip, (0, max(0, wav_slices[-1].stop - len(clip))))
        mel = audio.wav_to_mel_spectrogram(padded)
        mels += [mel[piece] for piece in mel_slices]
        owners += [index] * len(mel_slices)
    with torch.no_grad():
        partials = encoder(torch.from_numpy(np.array(mels)).to(encoder.device)).cpu().numpy()
    sums = np.zeros((len(clips), partials.shape[1]), np.float32)
    np.add.at(sums, np.array(owners), partials)
    return normalised(sums)


def speaker_voices(windows: VoiceWindows, labels: list[str | None], *, clear_margin: float = 0.05
                   ) -> tuple[dict[str, np.ndarray], dict[str, float | None]]:
    """Each speaker's voice (the unit mean of its windows) and confidence.

    Args:
        windows: the call's windows.
        labels: the speaker of each window (None: the window belongs to nobody, e.g. overlapped speech).
        clear_margin: see `VoiceOptions.clear_margin`.

    Returns:
        speaker -> voice (256,), and speaker -> share of its windows that are clearly its own (None when the call
        has one speaker: there is nobody to confuse it with).
    """
    matrix = windows.matrix()
    speakers = list(dict.fromkeys(label for label in labels if label is not None))
    voices = {s: normalised(matrix[[label == s for label in labels]].mean(axis=0)) for s in speakers}
    confidence: dict[str, float | None] = dict.fromkeys(speakers)
    if len(speakers) > 1:
        centroids = np.stack([voices[s] for s in speakers])
        similarity = matrix @ centroids.T  # (windows, speakers)
        for index, speaker in enumerate(speakers):
            own = [row for row, label in enumerate(labels) if label == speaker]
            others = np.delete(similarity[own], index, axis=1).max(axis=1)
            confidence[speaker] = round(float(np.mean(similarity[own, index] - others >= clear_margin)), 3)
    return voices, confidence
