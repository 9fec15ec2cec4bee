"""Overlapping speech in stereo calls: where both parties talk at once, hear each leg on its own.

Transcribing the mixed call keeps the context short replies need, but where two people talk at once Whisper
writes one voice and drops the other ("А сколько займёт по времени?" under the manager's answer became "А сколько
за ее?"). The legs tell exactly where that happens, so those windows, and only those, are transcribed once more
per channel, and their words replace the mixed transcript's there.

Per-leg words are kept only where their leg is really speaking (not the other party leaking into it), and when
both legs produced the same word at the same moment (echo), only the louder leg's copy stays.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from pipeline.asr import AsrWord
from pipeline.lexicon.text import normalise_words
from pipeline.speakers.base import SpeakerWord
from pipeline.speakers.channels import (
    CHANNEL_SPEAKERS,
    ChannelOptions,
    channel_activity,
    levels_above_floor,
    mark_overlaps,
    span_frames,
    speaking_frames,
)

__all__ = ["OverlapPatch", "apply_overlap_patches", "find_overlap_windows"]

Interval = tuple[float, float]


class OverlapPatch(BaseModel):
    """The words each leg said, transcribed on its own, inside a window where both parties spoke."""

    model_config = ConfigDict(frozen=True)

    start: float
    end: float
    words: list[AsrWord]


def _intersections(first: list[Interval], second: list[Interval]) -> list[Interval]:
    found = []
    for a_start, a_end in first:
        for b_start, b_end in second:
            start, end = max(a_start, b_start), min(a_end, b_end)
            if end > start:
                found.append((start, end))
    return found


def find_overlap_windows(frame_db: np.ndarray, *, offset_s: float = 0.0, min_overlap_s: float = 0.3,
                         pad_s: float = 0.2, options: ChannelOptions | None = None) -> list[Interval]:
    """Windows (call time, seconds) around each stretch where both legs speak for at least `min_overlap_s`.

    A window spans both parties' whole stretches of speech that meet there (so each leg's transcription gets
    the full phrase, not a fragment), padded by `pad_s`.

    Args:
        frame_db: (2, n) levels per 10 ms frame of the stretch being looked at.
        offset_s: where that stretch starts in the call.
    """
    activity = channel_activity(frame_db, options)
    left, right = activity[CHANNEL_SPEAKERS[0]], activity[CHANNEL_SPEAKERS[1]]
    duration_s = frame_db.shape[1] / 100.0
    windows: list[list[float]] = []
    for start, end in _intersections(left, right):
        if end - start < min_overlap_s:
            continue
        touching = [span for span in left + right if span[0] <= end and start <= span[1]]
        window = [max(0.0, min(s for s, _ in touching) - pad_s), min(duration_s, max(e for _, e in touching) + pad_s)]
        if windows and window[0] <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], window[1])
        else:
            windows.append(window)
    return [(round(start + offset_s, 3), round(end + offset_s, 3)) for start, end in windows]


def _inside(word: AsrWord, patch: OverlapPatch) -> bool:
    middle = (word.start + word.end) / 2
    return patch.start <= middle <= patch.end


def _leg_strength(snr: np.ndarray, word: AsrWord) -> np.ndarray:
    span = snr[:, span_frames(word.start, word.end, snr.shape[1])]
    return np.clip(span, 0, None).mean(axis=1) if span.shape[1] else np.zeros(2)


def apply_overlap_patches(words: list[SpeakerWord], patches: list[OverlapPatch], frame_db: np.ndarray,
                          options: ChannelOptions | None = None) -> list[SpeakerWord]:
    """Replace the mixed transcript's words inside each patch window by the legs' own words.

    Args:
        words: the mixed transcript's words, already attributed by channel.
        patches: per-leg transcriptions of the overlap windows.
        frame_db: (2, n) levels of the whole call.
    """
    if not patches:
        return words
    options = options or ChannelOptions()
    snr = levels_above_floor(frame_db, options)
    speaking = speaking_frames(snr, options)
    kept = [w for w in words if not any(_inside(w.word, patch) for patch in patches)]
    added: list[SpeakerWord] = []
    for patch in patches:
        candidates: list[tuple[AsrWord, int, np.ndarray]] = []
        for word in patch.words:
            if word.channel is None:  # not from a leg's own transcription: nowhere to put it
                continue
            span = span_frames(word.start, word.end, snr.shape[1])
            if speaking[word.channel, span].any():  # the leg's own party speaks here, not a leak of the other
                candidates.append((word, word.channel, _leg_strength(snr, word)))
        for word, channel, strength in candidates:
            echo_of_louder = any(
                other_channel != channel and abs(other.start - word.start) < 0.3
                and normalise_words(other.text) == normalise_words(word.text)
                and other_strength[other_channel] > strength[channel]
                for other, other_channel, other_strength in candidates
            )
            if not echo_of_louder:
                added.append(SpeakerWord(word=word, speaker=CHANNEL_SPEAKERS[channel], channel=channel))
    return kept + mark_overlaps(added, frame_db, options)
