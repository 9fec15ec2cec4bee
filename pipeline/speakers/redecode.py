"""Stereo calls, `stereo_strategy: mix_redecode` (the default): who spoke from the mix, what the client said from
their own leg.

The mix keeps every word on the right party (bench/stereo_strategies.py), but whisper-base hears the client far
worse in it than alone on the client's leg (issue 13, bench/README.md). So after the mix,
the client's turns are heard once more on the client's leg alone, and for each turn the better of the two
hypotheses is kept, by mean word log-probability. The turns are found by the leg's voice activity (not by the
mix's words, so a reply the mix lost is heard too), padded, and joined into one stream with 0.3 s of silence
between them: Whisper decodes them as a few 30 s windows instead of one window per turn (a turn alone would cost
a whole 30 s encoder pass), and hears the client's own earlier words as context. Each word then returns to its
turn's place on the call's timeline, on the client's leg, so attribution stays as right as the mix's.

Re-decoded words are kept only where their leg is speaking (not the other party leaking into it). The mix's
word probabilities run high (it heard the manager's question), so the leg wins unless it is clearly less
probable (`redecode_logprob_slack`); on the sample calls any slack from 0.2 up gave the same words.

On the nine sample calls: client-word lemma WER 0.279 -> 0.168, no word on the wrong party, at 1.28x the mix's
compute (the client's speech decoded twice): the default, since the client's short replies carry the objections
and agreements the scorecard judges; `stereo_strategy: mix` is the cheaper way (bench/README.md, 2026-12-05).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from pipeline.asr import AsrWord
from pipeline.audio import SAMPLE_RATE_HZ
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
from pipeline.support.russian import NEGATIONS

__all__ = ["LegPatch", "PackedTurns", "apply_leg_patches", "leg_turns", "mean_log_prob", "pack_turns",
           "unpack_words"]

Interval = tuple[float, float]

_MIN_PROB = 1e-3  # a word's probability floor in log-probabilities (Whisper reports 0.0 at times)
# A negation the mix heard at a turn's edge, where the leg's hypothesis begins or ends without it, stays: heard
# again alone, a turn can lose its first short word ("Не знаю, надо подумать" became "знаю, надо подумать"), and
# a lost "не" turns an objection into agreement. Other edge words of the mix are more often the other party's
# leaking in, and keeping them all made the client's words worse (bench/README.md).
_NEGATION_MIN_PROB = 0.5


class LegPatch(BaseModel):
    """One turn of a leg, heard on that leg alone: the words replace the mix's words of that leg in [start, end]."""

    model_config = ConfigDict(frozen=True)

    start: float
    end: float
    channel: int
    words: list[AsrWord]


class PackedTurns(BaseModel):
    """Where each turn of a leg sits in the packed stream (`packed_start_s`) and in the call (`turns`), seconds."""

    model_config = ConfigDict(frozen=True)

    turns: list[Interval]
    packed_start_s: list[float]


def leg_turns(frame_db: np.ndarray, channel: int, *, offset_s: float = 0.0,
              options: ChannelOptions | None = None) -> list[Interval]:
    """The stretches (call time, seconds) where one leg speaks, runs closer than `redecode_join_s` joined and
    padded by `redecode_pad_s` (clipped to the stretch looked at).

    Args:
        frame_db: (2, n) levels per 10 ms frame of the stretch looked at (a block).
        channel: the leg, 0 left or 1 right.
        offset_s: where that stretch starts in the call.
    """
    options = options or ChannelOptions()
    runs: list[list[float]] = []
    for start, end in channel_activity(frame_db, options)[CHANNEL_SPEAKERS[channel]]:
        if runs and start - runs[-1][1] <= options.redecode_join_s:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    duration_s = frame_db.shape[1] / 100.0
    return [(round(max(0.0, start - options.redecode_pad_s) + offset_s, 3),
             round(min(duration_s, end + options.redecode_pad_s) + offset_s, 3)) for start, end in runs]


def pack_turns(samples: np.ndarray, turns: Sequence[Interval], *, offset_s: float = 0.0,
               gap_s: float = 0.3) -> tuple[np.ndarray, PackedTurns]:
    """One leg's turns back to back, `gap_s` of silence after each.

    Args:
        samples: (n,) the leg's 16 kHz audio of the stretch looked at.
        turns: call times of the turns inside it.
        offset_s: where `samples` starts in the call.
        gap_s: the silence after each turn (`channels.redecode_gap_s`).

    Returns:
        The (m,) packed stream and where each turn sits in it.
    """
    silence = np.zeros(int(gap_s * SAMPLE_RATE_HZ), np.float32)
    pieces: list[np.ndarray] = []
    starts: list[float] = []
    position = 0
    for start, end in turns:
        piece = samples[int(round((start - offset_s) * SAMPLE_RATE_HZ)):int(round((end - offset_s) * SAMPLE_RATE_HZ))]
        starts.append(position / SAMPLE_RATE_HZ)
        pieces += [piece.astype(np.float32, copy=False), silence]
        position += len(piece) + len(silence)
    packed = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return packed, PackedTurns(turns=list(turns), packed_start_s=starts)


def unpack_words(words: Sequence[AsrWord], packed: PackedTurns, channel: int) -> list[LegPatch]:
    """The words of the packed stream back on the call's timeline, one patch per turn.

    A word belongs to the turn its middle falls in (or the silence after it); its times are clipped to the turn.
    """
    by_turn: list[list[AsrWord]] = [[] for _ in packed.turns]
    for word in words:
        middle = (word.start + word.end) / 2
        index = max(0, int(np.searchsorted(packed.packed_start_s, middle, side="right")) - 1)
        start, end = packed.turns[index]
        shift = start - packed.packed_start_s[index]
        word_start = min(max(word.start + shift, start), end)
        word_end = min(max(word.end + shift, word_start), end)
        by_turn[index].append(word.model_copy(update={"start": round(word_start, 3), "end": round(word_end, 3),
                                                      "channel": channel}))
    return [LegPatch(start=start, end=end, channel=channel, words=turn_words)
            for (start, end), turn_words in zip(packed.turns, by_turn, strict=True)]


def mean_log_prob(words: Sequence[AsrWord]) -> float:
    """The mean of the words' log-probabilities (-inf for no words)."""
    if not words:
        return -math.inf
    return sum(math.log(max(word.prob, _MIN_PROB)) for word in words) / len(words)


def _prefer_leg(mixed: Sequence[AsrWord], leg: Sequence[AsrWord], options: ChannelOptions) -> bool:
    """Keep the leg's hypothesis? Only a non-empty one that says at least half as many words as the mix (a
    shorter, emptier hypothesis can be more probable), and whose mean log-probability is within the slack of the
    mix's or above it."""
    if not leg or 2 * len(leg) < len(mixed):
        return False
    return mean_log_prob(leg) >= mean_log_prob(mixed) - options.redecode_logprob_slack


def _edge_negation(mixed: AsrWord, leg: Sequence[AsrWord]) -> bool:
    """Whether the mix's word is a negation the leg's words lack at their start or end (see `_NEGATION_MIN_PROB`)."""
    if mixed.prob < _NEGATION_MIN_PROB or mixed.text.strip(" ,.!?;:-–—…").lower() not in NEGATIONS:
        return False
    return mixed.end <= leg[0].start or mixed.start >= leg[-1].end


def apply_leg_patches(words: list[SpeakerWord], patches: Sequence[LegPatch], frame_db: np.ndarray,
                      options: ChannelOptions | None = None) -> list[SpeakerWord]:
    """For each patch, keep the leg's words in place of the mix's words of that leg, where they are better.

    Args:
        words: the mix's words, attributed by channel (and patched where both parties spoke at once).
        patches: turns heard on their leg alone.
        frame_db: (2, n) levels of the whole call.

    Returns:
        The words, those of the replaced turns swapped for the leg's own (trimmed and marked like the mix's).
    """
    if not patches:
        return words
    options = options or ChannelOptions()
    speaking = speaking_frames(levels_above_floor(frame_db, options), options)
    replaced: set[int] = set()
    added: list[SpeakerWord] = []
    for patch in patches:
        inside = [index for index, word in enumerate(words)
                  if word.channel == patch.channel and index not in replaced
                  and patch.start <= (word.word.start + word.word.end) / 2 <= patch.end]
        heard = [word for word in patch.words
                 if speaking[patch.channel, span_frames(word.start - options.widen_s, word.end + options.widen_s,
                                                        speaking.shape[1])].any()]
        if _prefer_leg([words[index].word for index in inside], heard, options):
            replaced.update(index for index in inside if not _edge_negation(words[index].word, heard))
            added += [SpeakerWord(word=word, speaker=CHANNEL_SPEAKERS[patch.channel], channel=patch.channel)
                      for word in heard]
    kept = [word for index, word in enumerate(words) if index not in replaced]
    return kept + mark_overlaps(added, frame_db, options)
