"""Stereo calls: each channel is one party. Attribute every word of the mixed transcript to its channel.

Why the mix is transcribed and not each leg on its own: Whisper needs the conversation around a short reply to
hear it right ("Да, четверг подходит." after the manager's question), and a leg transcribed alone loses that
context (bench/stereo_strategies.py measures both ways). The channels then decide who said each word: the
channel whose level stands highest above its own noise floor during the word wins. Comparing levels above each
leg's floor, not raw levels, keeps a quiet but clean leg from losing to a loud noisy one, and cross-talk (the
other party leaking into a leg 20-30 dB down) from stealing words.

When both legs are well above their floors during a word, both parties were speaking: the word goes to the
louder one and is marked `overlap`.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.asr import AsrWord
from pipeline.audio import FRAMES_PER_S
from pipeline.speakers.base import SpeakerWord

__all__ = ["CHANNEL_SPEAKERS", "ChannelOptions", "attribute_by_channel", "channel_activity", "mark_overlaps",
           "noise_floors"]

CHANNEL_SPEAKERS = ("left", "right")


class ChannelOptions(BaseModel):
    """
    Attributes:
        active_snr_db: a leg is speaking in a 10 ms frame when its level is this far above its noise floor.
        overlap_snr_db: both legs this far above their floors means both parties speak at once.
        overlap_share: share of a word's frames that must have both parties speaking to mark it `overlap`.
        widen_s: a word whose span holds no clear speech on any leg (Whisper's word times are off by a
            few hundred ms at times) is judged on its span widened by this much on each side.
        floor_percentile: the percentile of a leg's frame levels taken as its noise floor.
        activity_fill_gap_s: in a leg's voice activity, quieter gaps up to this long are bridged.
        activity_min_s: active stretches shorter than this (a click, a breath) are ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    active_snr_db: float = 12.0
    overlap_snr_db: float = 18.0
    overlap_share: float = Field(0.5, ge=0, le=1)
    widen_s: float = 0.25
    floor_percentile: float = 10.0
    activity_fill_gap_s: float = 0.3
    activity_min_s: float = 0.15


def noise_floors(frame_db: np.ndarray, percentile: float = 10.0) -> np.ndarray:
    """Each channel's noise floor in dB: a low percentile of its frame levels (calls are mostly pauses)."""
    if frame_db.shape[1] == 0:
        return np.zeros(frame_db.shape[0], np.float32)
    return np.percentile(frame_db, percentile, axis=1).astype(np.float32)


def _span_frames(start: float, end: float, n_frames: int) -> slice:
    first = min(max(0, int(np.floor(start * FRAMES_PER_S))), max(n_frames - 1, 0))
    last = min(n_frames, max(first + 1, int(np.ceil(end * FRAMES_PER_S))))
    return slice(first, last)


def _levels_above_floor(frame_db: np.ndarray, options: ChannelOptions) -> np.ndarray:
    if frame_db.shape[0] != 2:
        raise ValueError(f"channel attribution needs two channels, got {frame_db.shape[0]}")
    return frame_db - noise_floors(frame_db, options.floor_percentile)[:, None]


def _both_speaking(span: np.ndarray, options: ChannelOptions) -> bool:
    return span.shape[1] > 0 and bool((span >= options.overlap_snr_db).all(axis=0).mean() >= options.overlap_share)


def attribute_by_channel(words: list[AsrWord], frame_db: np.ndarray,
                         options: ChannelOptions | None = None) -> list[SpeakerWord]:
    """Give each word of a stereo call to the channel that carried it.

    Args:
        words: ASR words of the mixed channels, in time order.
        frame_db: (2, n_frames) level of each channel per 10 ms frame (`audio.LevelTrack.frame_db`).
        options: thresholds.

    Returns:
        One `SpeakerWord` per input word, speaker "left" or "right".
    """
    options = options or ChannelOptions()
    snr = _levels_above_floor(frame_db, options)
    n_frames = snr.shape[1]
    attributed = []
    for word in words:
        span = snr[:, _span_frames(word.start, word.end, n_frames)]
        channel = 0
        if span.shape[1]:
            if np.clip(span, 0, None).mean(axis=1).max() < options.active_snr_db:
                span = snr[:, _span_frames(word.start - options.widen_s, word.end + options.widen_s, n_frames)]
            channel = int(np.argmax(np.clip(span, 0, None).mean(axis=1)))
        attributed.append(SpeakerWord(word=word, speaker=CHANNEL_SPEAKERS[channel], channel=channel,
                                      overlap=_both_speaking(span, options)))
    return attributed


def mark_overlaps(words: list[SpeakerWord], frame_db: np.ndarray,
                  options: ChannelOptions | None = None) -> list[SpeakerWord]:
    """Set `overlap` on words whose channel is already known (each leg transcribed on its own)."""
    options = options or ChannelOptions()
    snr = _levels_above_floor(frame_db, options)
    return [word.model_copy(update={"overlap": _both_speaking(
        snr[:, _span_frames(word.word.start, word.word.end, snr.shape[1])], options)}) for word in words]


def channel_activity(frame_db: np.ndarray, options: ChannelOptions | None = None) -> dict[str, list[tuple[float, float]]]:
    """When each leg is speaking, from its levels: (start, end) seconds per speaker ("left", "right").

    Word times from the mixed transcript cannot show two people talking at once (Whisper writes one word after
    another), so overlaps and interruptions in stereo calls are measured on these intervals.
    """
    options = options or ChannelOptions()
    snr = _levels_above_floor(frame_db, options)
    activity = {}
    for channel, speaker in enumerate(CHANNEL_SPEAKERS):
        active = np.concatenate([[False], snr[channel] >= options.active_snr_db, [False]])
        edges = np.flatnonzero(np.diff(active.astype(np.int8)))
        runs: list[list[float]] = []
        for first, last in zip(edges[::2], edges[1::2]):
            start, end = first / FRAMES_PER_S, last / FRAMES_PER_S
            if runs and start - runs[-1][1] <= options.activity_fill_gap_s:
                runs[-1][1] = end
            else:
                runs.append([start, end])
        activity[speaker] = [(start, end) for start, end in runs if end - start >= options.activity_min_s]
    return activity
