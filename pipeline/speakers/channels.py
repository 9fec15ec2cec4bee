"""Stereo calls: each channel is one party. Attribute every word of the mixed transcript to its channel.

Why the mix is transcribed and not each leg on its own: Whisper needs the conversation around a short reply to
hear it right ("Да, четверг подходит." after the manager's question), and a leg transcribed alone loses that
context (bench/stereo_strategies.py measures both ways). The channels then decide who said each word: the
channel whose level stands highest above its own noise floor during the word wins. Comparing levels above each
leg's floor, not raw levels, keeps a quiet but clean leg from losing to a loud noisy one.

A leg is *speaking* in a 10 ms frame when it is well above its floor and not far below the other leg: the
second condition rejects cross-talk and the leak of mp3 joint-stereo coding, which sit 20-30 dB under the party
who actually speaks (measured on the sample calls: cross-talk reaches 14 dB above the floor, speech 30-40 dB).
When both legs are speaking during a word, both parties talk at once: the word goes to the louder one and is
marked `overlap`.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.asr import AsrWord
from pipeline.audio import FRAMES_PER_S
from pipeline.speakers.base import SpeakerWord

__all__ = [
    "CHANNEL_SPEAKERS",
    "ChannelOptions",
    "attribute_by_channel",
    "channel_activity",
    "levels_above_floor",
    "mark_overlaps",
    "noise_floors",
    "speaking_frames",
    "span_frames",
]

CHANNEL_SPEAKERS = ("left", "right")
Interval = tuple[float, float]


class ChannelOptions(BaseModel):
    """
    Attributes:
        active_snr_db: a leg is speaking in a frame only when at least this far above its noise floor.
        crosstalk_margin_db: ... and not more than this far below the other leg (above their floors).
        overlap_share: share of a word's frames in which both legs speak for the word to be marked `overlap`.
        widen_s: a word whose span holds no clear speech on any leg (Whisper's word times are off by a
            few hundred ms at times) is judged on its span widened by this much on each side.
        floor_percentile: the percentile of a leg's frame levels taken as its noise floor.
        activity_fill_gap_s: in a leg's voice activity, quieter gaps up to this long are bridged.
        activity_min_s: active stretches shorter than this (a click, a breath) are ignored.
        retranscribe_overlaps: transcribe each leg on its own where both parties talk at once (see overlaps.py).
        overlap_min_s: both legs speaking at least this long is an overlap worth re-transcribing.
        overlap_window_pad_s: padding around a re-transcribed overlap window.
        redecode_pad_s: `stereo_strategy: mix_redecode` hears the client's turns again on the client's leg alone
            (redecode.py): each turn padded by this much on each side.
        redecode_join_s: ... stretches of the client's speech closer than this are one turn.
        redecode_gap_s: ... the turns are heard back to back with this much silence between them (0.3 s heard the
            client better than 1 s at the same cost: bench/README.md).
        redecode_logprob_slack: ... and a turn's words from the leg replace the mix's when their mean word
            log-probability is at most this much below the mix's (or above it), and they are at least half as many.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    active_snr_db: float = 18.0
    crosstalk_margin_db: float = 20.0
    overlap_share: float = Field(0.5, ge=0, le=1)
    widen_s: float = 0.25
    floor_percentile: float = 10.0
    activity_fill_gap_s: float = 0.3
    activity_min_s: float = 0.15
    retranscribe_overlaps: bool = True
    overlap_min_s: float = 0.3
    overlap_window_pad_s: float = 0.2
    redecode_pad_s: float = Field(0.3, ge=0)
    redecode_join_s: float = Field(1.0, ge=0)
    redecode_gap_s: float = Field(0.3, ge=0)
    redecode_logprob_slack: float = Field(0.3, ge=0)


def noise_floors(frame_db: np.ndarray, percentile: float = 10.0) -> np.ndarray:
    """Each channel's noise floor in dB: a low percentile of its frame levels (calls are mostly pauses)."""
    if frame_db.shape[1] == 0:
        return np.zeros(frame_db.shape[0], np.float32)
    return np.percentile(frame_db, percentile, axis=1).astype(np.float32)


def levels_above_floor(frame_db: np.ndarray, options: ChannelOptions) -> np.ndarray:
    """(2, n) dB above each leg's own noise floor."""
    if frame_db.shape[0] != 2:
        raise ValueError(f"channel attribution needs two channels, got {frame_db.shape[0]}")
    return frame_db - noise_floors(frame_db, options.floor_percentile)[:, None]


def speaking_frames(snr: np.ndarray, options: ChannelOptions) -> np.ndarray:
    """(2, n) booleans: is each leg's own party speaking in each frame (see the module docstring)."""
    return (snr >= options.active_snr_db) & (snr >= snr[::-1] - options.crosstalk_margin_db)


def span_frames(start: float, end: float, n_frames: int) -> slice:
    """The 10 ms frames a time span covers (at least one, clipped to the call)."""
    first = min(max(0, int(np.floor(start * FRAMES_PER_S))), max(n_frames - 1, 0))
    last = min(n_frames, max(first + 1, int(np.ceil(end * FRAMES_PER_S))))
    return slice(first, last)


def _both_speaking(speaking: np.ndarray, span: slice, options: ChannelOptions) -> bool:
    frames = speaking[:, span]
    return frames.shape[1] > 0 and bool(frames.all(axis=0).mean() >= options.overlap_share)


def _trim_to_speech(word: AsrWord, speaking: np.ndarray) -> AsrWord:
    """Shrink a word's span to the frames where its leg speaks.

    Whisper stretches a word over the silence before it (most at the start of a chunk); the leg shows where the
    word really begins and ends. A word with no speaking frames of its leg keeps Whisper's times.
    """
    span = span_frames(word.start, word.end, speaking.shape[0])
    active = np.flatnonzero(speaking[span])
    if active.size == 0:
        return word
    start = round(max(word.start, (span.start + active[0]) / FRAMES_PER_S), 3)
    end = round(min(word.end, (span.start + active[-1] + 1) / FRAMES_PER_S), 3)
    return word if end <= start else word.model_copy(update={"start": start, "end": end})


def _with_channel(word: AsrWord, channel: int, speaking: np.ndarray, options: ChannelOptions) -> SpeakerWord:
    word = _trim_to_speech(word, speaking[channel])
    return SpeakerWord(word=word, speaker=CHANNEL_SPEAKERS[channel], channel=channel,
                       overlap=_both_speaking(speaking, span_frames(word.start, word.end, speaking.shape[1]),
                                              options))


def attribute_by_channel(words: list[AsrWord], frame_db: np.ndarray,
                         options: ChannelOptions | None = None) -> list[SpeakerWord]:
    """Give each word of a stereo call to the channel that carried it.

    Args:
        words: ASR words of the mixed channels, in time order.
        frame_db: (2, n_frames) level of each channel per 10 ms frame (`audio.LevelTrack.frame_db`).
        options: thresholds.

    Returns:
        One `SpeakerWord` per input word, speaker "left" or "right", its times trimmed to its leg's speech.
    """
    options = options or ChannelOptions()
    snr = levels_above_floor(frame_db, options)
    speaking = speaking_frames(snr, options)
    n_frames = snr.shape[1]
    attributed = []
    for word in words:
        span = snr[:, span_frames(word.start, word.end, n_frames)]
        channel = 0
        if span.shape[1]:
            if np.clip(span, 0, None).mean(axis=1).max() < options.active_snr_db:
                span = snr[:, span_frames(word.start - options.widen_s, word.end + options.widen_s, n_frames)]
            channel = int(np.argmax(np.clip(span, 0, None).mean(axis=1)))
        attributed.append(_with_channel(word, channel, speaking, options))
    return attributed


def mark_overlaps(words: list[SpeakerWord], frame_db: np.ndarray,
                  options: ChannelOptions | None = None) -> list[SpeakerWord]:
    """Trim and set `overlap` on words whose channel is already known (each leg transcribed on its own)."""
    options = options or ChannelOptions()
    speaking = speaking_frames(levels_above_floor(frame_db, options), options)
    marked = []
    for word in words:
        if word.channel is None:  # a caller's mistake: without its leg a word cannot be trimmed or marked
            raise TypeError(f"mark_overlaps: the word {word.word.text!r} at {word.word.start} s has no channel")
        marked.append(_with_channel(word.word, word.channel, speaking, options))
    return marked


def channel_activity(frame_db: np.ndarray, options: ChannelOptions | None = None) -> dict[str, list[Interval]]:
    """When each leg is speaking: (start, end) seconds per speaker ("left", "right").

    Word times from the mixed transcript cannot show two people talking at once (Whisper writes one word after
    another), so overlaps and interruptions in stereo calls are measured on these intervals.
    """
    options = options or ChannelOptions()
    speaking = speaking_frames(levels_above_floor(frame_db, options), options)
    activity = {}
    for channel, speaker in enumerate(CHANNEL_SPEAKERS):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], speaking[channel].astype(np.int8), [0]])))
        runs: list[list[float]] = []
        for first, last in zip(edges[::2], edges[1::2], strict=True):
            start, end = first / FRAMES_PER_S, last / FRAMES_PER_S
            if runs and start - runs[-1][1] <= options.activity_fill_gap_s:
                runs[-1][1] = end
            else:
                runs.append([start, end])
        activity[speaker] = [(start, end) for start, end in runs if end - start >= options.activity_min_s]
    return activity
