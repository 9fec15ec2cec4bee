"""Reading recordings: probe, stream-decode to 16 kHz float32 per channel, and decide the channel layout.

Any format ffmpeg reads (mp3, wav, ogg/opus, m4a/aac, flac, ...) at any rate, decoded with PyAV as faster-whisper
does. Long recordings are decoded as a stream of blocks (10 minutes by default, cut in the quietest moment near
the block's end), so memory stays bounded however long the call is. While the blocks pass, `LevelTrack` keeps
each channel's level per 10 ms frame: small (a 2-hour stereo call is 6 MB) and enough to attribute words to
channels and to tell a real stereo call from dual mono or a dead leg afterwards.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.errors import AudioError
from pipeline.support.fileio import sha256_of_file

__all__ = [
    "FRAME_SAMPLES",
    "FRAMES_PER_S",
    "SAMPLE_RATE_HZ",
    "AudioBlock",
    "AudioGap",
    "AudioInfo",
    "ChannelLayout",
    "LevelTrack",
    "decide_layout",
    "decode_all",
    "iter_blocks",
    "iter_frames",
    "probe",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
FRAME_SAMPLES = 160  # 10 ms level frames
_POWER_FRAMES = 6000  # frames whose power is computed at once (one minute)
FRAMES_PER_S = SAMPLE_RATE_HZ // FRAME_SAMPLES
SILENCE_DB = -100.0  # floor for digital silence, so levels stay finite

# A decoded stream this much shorter than the container declares is a truncated file, not encoder padding.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_RATIO = 0.02


@dataclass(frozen=True)
class AudioInfo:
    """What a recording is, read from its header (and its bytes, for the hash)."""

    path: Path
    size_bytes: int
    sha256: str
    container: str
    codec: str
    sample_rate_hz: int
    channels: int
    declared_duration_s: float | None


@dataclass(frozen=True)
class AudioGap:
    """A stretch of the call the decoder could not read, filled with silence so that what follows stays in place.

    `start_s`/`end_s` are on the call's timeline; `size_bytes` is how much of the file was unreadable there. Its
    length is estimated from those bytes at the stream's bit rate (damaged bytes usually replace audio) or, when
    the bit rate is unknown, from the packets' own durations.
    """

    start_s: float
    end_s: float
    size_bytes: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class AudioBlock:
    """A stretch of the recording: `samples` has shape (channels, n) at 16 kHz; `start_s` is its place in the call.

    Blocks start on a 10 ms frame boundary so that level frames line up across blocks. `gaps` are the damaged
    stretches inside this block (silence in `samples`).
    """

    start_s: float
    samples: np.ndarray
    gaps: tuple[AudioGap, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / SAMPLE_RATE_HZ

    def mix(self) -> np.ndarray:
        """The channels averaged into one (n,) signal: what a listener on the line hears."""
        return self.samples[0] if self.samples.shape[0] == 1 else self.samples.mean(axis=0)


def _ffmpeg_reason(error: Exception) -> str:
    # PyAV's messages end with ": '<path>'"; the path is already at the front of ours.
    text = getattr(error, "strerror", None) or str(error)
    return str(text).split(": '")[0]


def probe(path: str | Path) -> AudioInfo:
    """Check that `path` is a readable audio file and read its header.

    Raises:
        AudioError: the file is missing, empty, not audio or has no audio stream.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(path, f"no audio stream (container: {container.format.name})")
            stream = container.streams.audio[0]
            codec = stream.codec_context
            declared = None
            if stream.duration is not None and stream.time_base is not None:
                declared = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                declared = container.duration / av.time_base
            info = AudioInfo(
                path=path,
                size_bytes=size,
                sha256=sha256_of_file(path),
                container=container.format.name,
                codec=codec.name,
                sample_rate_hz=int(codec.sample_rate or 0),
                channels=int(codec.channels or 0),
                declared_duration_s=declared,
            )
    except av.error.FFmpegError as error:
        raise AudioError(path, f"not a readable audio file ({_ffmpeg_reason(error)})") from error
    if info.sample_rate_hz <= 0 or info.channels <= 0:
        raise AudioError(path, "audio stream without a sample rate or channels")
    return info


class _Damage:
    """Undecodable packets in a row, until audio decodes again: one gap."""

    def __init__(self) -> None:
        self.size_bytes = 0
        self.packet_s = 0.0  # what the demuxer says those packets last

    def add(self, packet) -> None:
        self.size_bytes += packet.size
        if packet.duration and packet.time_base:
            self.packet_s += float(packet.duration * packet.time_base)

    def estimate_s(self, byte_rate: float) -> float:
        return max(self.packet_s, self.size_bytes / byte_rate if byte_rate else 0.0)


def _decode_frames(info: AudioInfo, layout: str,
                   rate: int = SAMPLE_RATE_HZ) -> Iterator[tuple[np.ndarray, AudioGap | None]]:
    """Yield (channels, n) float32 arrays at `rate` (16 kHz) as the decoder produces them, each with the gap it fills
    (None for decoded audio).

    Packets are demuxed and decoded one by one, so an undecodable one is skipped and the demuxer resyncs on the
    next readable one, as ffmpeg does; the damaged stretch comes out as silence of its estimated length.
    """
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    emitted = 0  # samples at `rate` so far, gaps included
    gap_s = 0.0
    damage: _Damage | None = None
    n_channels = 2 if layout == "stereo" else 1
    try:
        with av.open(str(info.path), metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            byte_rate = (stream.bit_rate or stream.codec_context.bit_rate or 0) / 8
            for packet in _packets(container, stream, info):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    damage = damage or _Damage()
                    damage.add(packet)
                    continue
                if damage is not None and frames:
                    # Audio decodes again: the damage before it becomes silence of its length.
                    n = int(round(damage.estimate_s(byte_rate) * rate))
                    gap = AudioGap(start_s=round(emitted / rate, 3),
                                   end_s=round((emitted + n) / rate, 3), size_bytes=damage.size_bytes)
                    logger.warning("%s: %d undecodable bytes at %.1f s, analysed as %.1f s of silence", info.path,
                                   damage.size_bytes, gap.start_s, gap.duration_s)
                    yield np.zeros((n_channels, n), np.float32), gap
                    emitted, gap_s, damage = emitted + n, gap_s + gap.duration_s, None
                for frame in frames:
                    frame.pts = None  # resample by sample count; some files carry broken timestamps
                    for out in resampler.resample(frame):
                        array = out.to_ndarray()
                        emitted += array.shape[1]
                        yield array, None
            for out in resampler.resample(None):
                array = out.to_ndarray()
                emitted += array.shape[1]
                yield array, None
    except av.error.FFmpegError as error:
        raise AudioError(info.path, f"corrupt audio after {emitted / rate:.1f} s "
                                    f"({_ffmpeg_reason(error)})") from error
    finally:
        # PyAV's resampler holds native buffers until a collection runs (faster-whisper issue #390).
        del resampler
        gc.collect()
    decoded_s = emitted / rate - gap_s
    if decoded_s == 0.0:
        raise AudioError(info.path, "no audio could be decoded")
    declared = info.declared_duration_s
    # Damage that runs to the end of the file (nothing decoded after it) is part of what is missing.
    total_s = emitted / rate
    if declared and declared - total_s > max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_RATIO * declared):
        raise AudioError(info.path, f"truncated: decoded {total_s:.1f} s of the {declared:.1f} s its header "
                                    "declares")


def _packets(container, stream, info: AudioInfo) -> Iterator:
    """The stream's packets, ending with the flush packet; a demuxer error ends the stream where it happens (the
    duration check then says whether the file ended early)."""
    try:
        yield from container.demux(stream)
    except av.error.InvalidDataError as error:
        logger.warning("%s: the container stops being readable (%s)", info.path, _ffmpeg_reason(error))


def iter_frames(info: AudioInfo, rate: int = SAMPLE_RATE_HZ) -> Iterator[tuple[np.ndarray, AudioGap | None]]:
    """The recording as the decoder hands it out, for consumers that stream and need no blocks (the audio copy):
    (channels, n) float32 arrays at `rate` (16 kHz unless asked otherwise) in order, each with the damaged
    stretch it stands in for as silence (None for decoded audio). Channels as `iter_blocks` gives them: two stay
    two, any other count becomes one.

    Raises:
        AudioError: as `iter_blocks`, after the frames decoded before the problem.
    """
    return _decode_frames(info, _output_layout(info), rate)


def _output_layout(info: AudioInfo) -> str:
    # Stereo keeps its two legs; anything with more channels is mixed down (no PBX records 5.1 calls).
    return "stereo" if info.channels == 2 else "mono"


def _quietest_cut(samples: np.ndarray, search_from: int) -> int:
    """Index, a multiple of FRAME_SAMPLES, of the quietest 200 ms after `search_from` (where to end a block)."""
    n_frames = (samples.shape[1] - search_from) // FRAME_SAMPLES
    if n_frames <= 20:
        return (samples.shape[1] // FRAME_SAMPLES) * FRAME_SAMPLES
    start = search_from - search_from % FRAME_SAMPLES
    # Only the searched stretch is mixed: a mix of the whole block would cost another 40 MB per 10 minutes.
    mix = samples[:, start : start + n_frames * FRAME_SAMPLES].mean(axis=0)
    power = (mix.reshape(n_frames, FRAME_SAMPLES) ** 2).mean(axis=1)
    smoothed = np.convolve(power, np.ones(20) / 20, mode="same")
    return start + int(np.argmin(smoothed[10:-10]) + 10) * FRAME_SAMPLES


class _BlockBuffer:
    """One block's samples, filled in place as the decoder hands out frames.

    Frames are copied straight into one array of the block's final size, so a block's audio is never held twice
    (a list of frames and their concatenation were 150 MB at once for 10 minutes of stereo). The array is sized
    from what the header says is left of the recording, so a short file does not reserve a whole block; a header
    that says too little makes it grow.
    """

    def __init__(self, channels: int, capacity: int, expected: int | None, head: np.ndarray | None) -> None:
        self.capacity = capacity
        size = max(head.shape[1] if head is not None else 0, min(capacity, capacity if expected is None else expected))
        self.samples = np.empty((channels, size), np.float32)
        self.filled = 0
        if head is not None:
            self._put(head)

    @property
    def full(self) -> bool:
        return self.filled == self.capacity

    def _put(self, array: np.ndarray) -> None:
        self.samples[:, self.filled : self.filled + array.shape[1]] = array
        self.filled += array.shape[1]

    def add(self, array: np.ndarray) -> np.ndarray:
        """Take as much of `array` as fits; return the rest."""
        room = self.capacity - self.filled
        if self.filled + min(room, array.shape[1]) > self.samples.shape[1]:  # the header said too little
            grown = np.empty((self.samples.shape[0], min(self.capacity, 2 * self.samples.shape[1] + array.shape[1])),
                             np.float32)
            grown[:, : self.filled] = self.samples[:, : self.filled]
            self.samples = grown
        self._put(array[:, :room])
        return array[:, room:]


def iter_blocks(info: AudioInfo, *, block_s: float = 600.0, cut_search_s: float = 15.0) -> Iterator[AudioBlock]:
    """Decode the recording as consecutive blocks of about `block_s` seconds, cut in the quietest moment of
    their last `cut_search_s` seconds so that words are not split between blocks. Damaged stretches come as
    silence, each named in its block's `gaps`.

    Memory: one block's samples (77 MB for 10 minutes of stereo at 16 kHz) and the few seconds carried over the
    cut; the caller drops each block before asking for the next.

    Raises:
        AudioError: nothing decodes, or the stream is shorter than its header says.
    """
    block_samples = int(block_s * SAMPLE_RATE_HZ)
    search_samples = int(min(cut_search_s, block_s / 2) * SAMPLE_RATE_HZ)
    capacity = block_samples + search_samples
    # What the header says is left, and a second of slack: a short recording does not reserve a whole block.
    declared = int(info.declared_duration_s * SAMPLE_RATE_HZ) + SAMPLE_RATE_HZ if info.declared_duration_s else None
    start_sample = 0
    gaps: list[AudioGap] = []
    buffer: _BlockBuffer | None = None
    carried: np.ndarray | None = None  # decoded after the last cut, waiting for the next block

    def block(samples: np.ndarray) -> AudioBlock:
        start_s, end_s = start_sample / SAMPLE_RATE_HZ, (start_sample + samples.shape[1]) / SAMPLE_RATE_HZ
        inside = tuple(gap for gap in gaps if gap.start_s < end_s and gap.end_s > start_s)
        return AudioBlock(start_s=start_s, samples=samples, gaps=inside)

    for array, gap in _decode_frames(info, _output_layout(info)):
        if gap is not None:
            gaps.append(gap)
        while array.shape[1]:
            if buffer is None:
                expected = declared - start_sample if declared is not None else None
                buffer = _BlockBuffer(array.shape[0], capacity, expected, carried)
                carried = None
            array = buffer.add(array)
            if buffer.full:
                cut = _quietest_cut(buffer.samples, block_samples - search_samples)
                carried = buffer.samples[:, cut:].copy()  # a copy, so the block's array can go with the block
                samples, buffer = buffer.samples[:, :cut], None
                yield block(samples)
                del samples  # the caller is done with the block: do not hold it while the next one is decoded
                start_sample += cut
    if buffer is not None:
        yield block(buffer.samples[:, : buffer.filled])
    elif carried is not None and carried.shape[1]:
        yield block(carried)


def decode_all(path: str | Path) -> tuple[AudioInfo, np.ndarray]:
    """The whole recording as one (channels, n) 16 kHz array; for short files and tests."""
    info = probe(path)
    blocks = [block.samples for block in iter_blocks(info, block_s=24 * 3600.0)]
    return info, np.concatenate(blocks, axis=1)


class LevelTrack:
    """Per-channel level in dB of each 10 ms frame, accumulated block by block.

    `frame_db` has shape (channels, n_frames). The dual-mono test needs the waveforms, so it runs on the loudest
    20 s of the first block that has any sound (one excerpt is enough: a PBX mixes a whole call the same way).
    """

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._levels: list[np.ndarray] = []
        self.dual_mono_correlation: float | None = None

    def add(self, block: AudioBlock) -> np.ndarray:
        """Take in one block; returns its (channels, n_frames) levels."""
        samples = block.samples
        n_frames = samples.shape[1] // FRAME_SAMPLES
        if n_frames == 0:
            return np.full((samples.shape[0], 0), SILENCE_DB, np.float32)
        framed = samples[:, : n_frames * FRAME_SAMPLES].reshape(samples.shape[0], n_frames, FRAME_SAMPLES)
        # In float64, a minute of frames at a time: the whole 10-minute block at once would hold two float64
        # copies of it (300 MB for stereo) just for this sum.
        power = np.empty((samples.shape[0], n_frames))
        for first in range(0, n_frames, _POWER_FRAMES):
            chunk = framed[:, first : first + _POWER_FRAMES].astype(np.float64)
            power[:, first : first + _POWER_FRAMES] = (chunk**2).mean(axis=2)
        levels = np.maximum(10 * np.log10(power + 1e-30), SILENCE_DB).astype(np.float32)
        self._levels.append(levels)
        if self.channels == 2 and self.dual_mono_correlation is None and power.max() > 1e-8:
            self.dual_mono_correlation = _dual_mono_correlation(samples, power.sum(axis=0))
        return levels

    @property
    def frame_db(self) -> np.ndarray:
        if not self._levels:
            return np.full((self.channels, 0), SILENCE_DB, np.float32)
        return np.concatenate(self._levels, axis=1)


def _dual_mono_correlation(samples: np.ndarray, frame_power: np.ndarray, excerpt_s: float = 20.0,
                           max_lag_s: float = 0.02) -> float:
    """Peak normalised cross-correlation of the two channels within +-20 ms, over the loudest 20 s.

    1.0 means the same signal on both channels (dual mono), whatever the gain; two real legs of a call, even with
    some cross-talk, stay far below (about 0.1 on our samples).
    """
    width = int(excerpt_s * FRAMES_PER_S)
    if len(frame_power) > width:
        window_energy = np.convolve(frame_power, np.ones(width), mode="valid")
        first_frame = int(np.argmax(window_energy))
    else:
        first_frame = 0
    left, right = (samples[:, first_frame * FRAME_SAMPLES : (first_frame + width) * FRAME_SAMPLES]
                   .astype(np.float64))
    norm = np.sqrt((left**2).sum() * (right**2).sum())
    if norm == 0.0:
        return 0.0
    max_lag = int(max_lag_s * SAMPLE_RATE_HZ)
    size = 1 << int(np.ceil(np.log2(len(left) + max_lag + 1)))
    spectrum = np.fft.rfft(left, size) * np.conj(np.fft.rfft(right, size))
    correlation = np.fft.irfft(spectrum, size)
    lags = np.concatenate([correlation[: max_lag + 1], correlation[-max_lag:]])
    return float(np.abs(lags).max() / norm)


@dataclass(frozen=True)
class ChannelLayout:
    """How the call is analysed: `layout` "stereo" (one party per channel) or "mono"; `reason` says why."""

    layout: str
    reason: str  # "stereo" | "mono" | "dual_mono" | "silent_channel" | "silent" | "downmixed"
    silent_channels: tuple[int, ...] = ()
    dual_mono_correlation: float | None = None


DUAL_MONO_THRESHOLD = 0.9


def decide_layout(info: AudioInfo, track: LevelTrack, *, dual_mono_threshold: float = DUAL_MONO_THRESHOLD,
                  silent_peak_dbfs: float = -50.0, silent_below_other_db: float = 40.0,
                  loud_s: float = 2.0) -> ChannelLayout:
    """Stereo only when both channels carry a different, audible party; otherwise analyse the call as mono.

    A channel is silent when its loud frames stay under `silent_peak_dbfs`, or more than `silent_below_other_db`
    under the other channel's: a leg the PBX failed to record. Then the other channel may hold both parties, so
    treating it as one party's leg would invent roles. Its loud frames: the level its loudest 1 % of frames
    reach, or its loudest `loud_s` seconds in a call longer than 100 x that, so that a call followed by hours of
    an open line (speech in a fraction of a percent of it) still has its legs.
    """
    if info.channels > 2:
        return ChannelLayout("mono", "downmixed")
    if info.channels == 1:
        return ChannelLayout("mono", "mono")
    levels = track.frame_db
    frames = levels.shape[1]
    loud_frames = loud_s * SAMPLE_RATE_HZ / FRAME_SAMPLES
    percentile = 99.0 if frames <= 100 * loud_frames else 100.0 * (1.0 - loud_frames / frames)
    peaks = np.percentile(levels, percentile, axis=1) if frames else np.full(2, SILENCE_DB)
    silent = tuple(
        channel for channel in (0, 1)
        if peaks[channel] < silent_peak_dbfs or peaks[channel] < peaks[1 - channel] - silent_below_other_db
    )
    correlation = track.dual_mono_correlation
    if len(silent) == 2:
        return ChannelLayout("mono", "silent", silent, correlation)
    if silent:
        return ChannelLayout("mono", "silent_channel", silent, correlation)
    if correlation is not None and correlation >= dual_mono_threshold:
        return ChannelLayout("mono", "dual_mono", (), correlation)
    return ChannelLayout("stereo", "stereo", (), correlation)
