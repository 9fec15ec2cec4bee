"""The embedded CPU diarizer: who speaks when in a mono call, with no model to download.

Speech regions come from Silero VAD (shipped with faster-whisper); speaker embeddings from resemblyzer's encoder
(voices.py) on 1.6 s windows, 1.5 per second of speech; the windows are clustered into the likely number of
speakers (two in a sales call, one when the two centroids are as alike as one voice on different words); isolated
flips are smoothed away. Words get their speaker afterwards (assign.py), so a turn change inside a Whisper
segment is kept.

Windows are embedded block by block while the call streams through (bounded memory: 1 KB per window) and
clustered once at the end.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from pipeline.speakers.diarization import Diarization, DiarizationSegment, EmbeddedOptions, speaker_names
from pipeline.speakers.voices import ENCODER, VoiceOptions, VoiceWindows, embed_speech, normalised, speaker_voices

__all__ = ["EmbeddedDiarizer", "cluster_windows", "segments_from_windows"]

logger = logging.getLogger(__name__)

VERSION = f"{ENCODER}/kmeans/1"


def _smooth(labels: np.ndarray, width: int) -> np.ndarray:
    """Flip a window whose `width` neighbours on each side all agree on another label."""
    if width < 1 or len(labels) < 2 * width + 1:
        return labels
    smoothed = labels.copy()
    for index in range(width, len(labels) - width):
        around = np.concatenate([labels[index - width: index], labels[index + 1: index + 1 + width]])
        if (around != labels[index]).all() and (around == around[0]).all():
            smoothed[index] = around[0]
    return smoothed


def cluster_windows(matrix: np.ndarray, options: EmbeddedOptions, *, min_windows: int = 1) -> np.ndarray:
    """A label (0 or 1) per window of `matrix` (n, 256), all 0 when the windows sound like one voice or the
    second voice has fewer than `min_windows` windows."""
    labels = np.zeros(len(matrix), dtype=int)
    if len(matrix) < 4 or options.max_speakers < 2:
        return labels
    from sklearn.cluster import KMeans

    fitted = KMeans(n_clusters=2, n_init=10, random_state=0).fit(matrix)
    centroids = normalised(fitted.cluster_centers_)
    similarity = float(centroids[0] @ centroids[1])
    logger.debug("two clusters, centroid similarity %.3f", similarity)
    if similarity >= options.one_speaker_similarity:
        return labels
    smoothed = _smooth(fitted.labels_, options.smoothing_windows)
    if min(np.bincount(smoothed, minlength=2)) < min_windows:
        return labels
    return smoothed


def segments_from_windows(times: list[tuple[float, float]], labels: list[str]) -> list[DiarizationSegment]:
    """Consecutive windows of one speaker merged; a change of speaker placed halfway between the two windows'
    centres (windows overlap, so their edges would put the change too early or too late)."""
    centres = [(start + end) / 2 for start, end in times]
    segments: list[DiarizationSegment] = []
    for index, ((start, end), speaker) in enumerate(zip(times, labels)):
        if index and segments[-1].speaker != speaker:
            boundary = (centres[index - 1] + centres[index]) / 2
            last = segments[-1]
            segments[-1] = DiarizationSegment(last.start, min(last.end, boundary), last.speaker)
            start = max(start, boundary)
        if segments and segments[-1].speaker == speaker and start <= segments[-1].end + 0.05:
            segments[-1] = DiarizationSegment(segments[-1].start, max(segments[-1].end, end), speaker)
        else:
            segments.append(DiarizationSegment(start, end, speaker))
    return segments


class _EmbeddedSession:
    def __init__(self, diarizer: EmbeddedDiarizer) -> None:
        self.diarizer = diarizer
        self.windows = VoiceWindows()

    def add(self, samples: np.ndarray, *, offset_s: float) -> None:
        self.windows.add(*embed_speech(samples, offset_s=offset_s, options=self.diarizer.voices))

    def finish(self) -> Diarization:
        windows = self.windows
        options, voice_options = self.diarizer.options, self.diarizer.voices
        min_windows = max(1, math.ceil(options.min_speaker_s * voice_options.windows_per_s))
        raw = cluster_windows(windows.matrix(), options, min_windows=min_windows).tolist()
        names = speaker_names(raw)
        labels = [names[label] for label in raw]
        voices, confidence = speaker_voices(windows, labels, clear_margin=voice_options.clear_margin)
        return Diarization(segments=segments_from_windows(windows.times, labels), voices=voices,
                           confidence=confidence, backend=self.diarizer.name, version=self.diarizer.version)


class EmbeddedDiarizer:
    """resemblyzer windows + k-means, on the CPU; the default where no pyannote pipeline is configured."""

    name = "embedded"
    version = VERSION

    def __init__(self, options: EmbeddedOptions | None = None, *, voices: VoiceOptions | None = None) -> None:
        self.options = options or EmbeddedOptions()
        self.voices = voices or VoiceOptions()

    def session(self) -> _EmbeddedSession:
        return _EmbeddedSession(self)
