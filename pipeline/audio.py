"""Reading recordings: probe, stream-decode to 16 kHz float32 per channel, and decide the channel layout.

Any format ffmpeg reads (mp3, wav, ogg/opus, m4a/aac, flac, ...) at any rate, decoded with PyAV as faster-whisper
does. Long recordings are decoded as a stream of blocks (10 minutes by default, cut in the quietest moment near
the block's end), so memory stays bounded however long the call is. While the blocks pass, `LevelTrack` keeps
each channel's level per 10 ms frame: small (a 2-hour stereo call is 6 MB) and enough to attribute words to
channels and to tell a real stereo call from dual mono or a dead leg afterwards.
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.errors import AudioError

__all__ = [
    "FRAME_SAMPLES",
    "FRAMES_PER_S",
    "SAMPLE_RATE_HZ",
    "AudioBlock",
    "AudioInfo",
    "ChannelLayout",
    "LevelTrack",
    "decide_layout",
    "decode_all",
    "iter_blocks",
    "probe",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
FRAME_SAMPLES = 160  # 10 ms level frames
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
class AudioBlock:
    """A stretch of the recording: `samples` has shape (channels, n) at 16 kHz; `start_s` is its place in the call.

    Blocks start on a 10 ms frame boundary so that level frames line up across blocks.
    """

    start_s: float
    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / SAMPLE_RATE_HZ

    def mix(self) -> np.ndarray:
        """The channels averaged into one (n,) signal: what a listener on the line hears."""
        return self.samples[0] if self.samples.shape[0] == 1 else self.samples.mean(axis=0)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


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
                sha256=_sha256_of(path),
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


def _decode_frames(info: AudioInfo, layout: str, *, max_bad_packets: int = 50) -> Iterator[np.ndarray]:
    """Yield (channels, n) float32 arrays at 16 kHz as the decoder produces them.

    A few undecodable packets in a long stream are skipped as faster-whisper does (a scratch in the recording);
    more than `max_bad_packets` means the file is corrupt.
    """
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE_HZ)
    decoded_s = 0.0
    bad_packets = 0
    try:
        with av.open(str(info.path), metadata_errors="ignore") as container:
            frames = container.decode(container.streams.audio[0])
            while True:
                try:
                    frame = next(frames, None)
                except av.error.InvalidDataError:
                    bad_packets += 1
                    if bad_packets > max_bad_packets:
                        raise
                    continue
                if frame is not None:
                    frame.pts = None  # resample by sample count; some files carry broken timestamps
                for out in resampler.resample(frame):
                    array = out.to_ndarray()
                    decoded_s += array.shape[1] / SAMPLE_RATE_HZ
                    yield array
                if frame is None:
                    break
    except av.error.FFmpegError as error:
        raise AudioError(info.path, f"corrupt audio after {decoded_s:.1f} s ({_ffmpeg_reason(error)})") from error
    finally:
        # PyAV's resampler holds native buffers until a collection runs (faster-whisper issue #390).
        del resampler
        gc.collect()
    if bad_packets:
        logger.warning("%s: skipped %d undecodable packets", info.path, bad_packets)
    if decoded_s == 0.0:
        raise AudioError(info.path, "no audio could be decoded")
    declared = info.declared_duration_s
    if declared and declared - decoded_s > max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_RATIO * declared):
        raise AudioError(info.path, f"truncated: decoded {decoded_s:.1f} s of the {declared:.1f} s its header declares")


def _output_layout(info: AudioInfo) -> str:
    # Stereo keeps its two legs; anything with more channels is mixed down (no PBX records 5.1 calls).
    return "stereo" if info.channels == 2 else "mono"


def _quietest_cut(samples: np.ndarray, search_from: int) -> int:
    """Index, a multiple of FRAME_SAMPLES, of the quietest 200 ms after `search_from` (where to end a block)."""
    mix = samples.mean(axis=0)
    n_frames = (len(mix) - search_from) // FRAME_SAMPLES
    if n_frames <= 20:
        return (len(mix) // FRAME_SAMPLES) * FRAME_SAMPLES
    start = search_from - search_from % FRAME_SAMPLES
    frames = mix[start : start + n_frames * FRAME_SAMPLES].reshape(n_frames, FRAME_SAMPLES)
    power = (frames**2).mean(axis=1)
    smoothed = np.convolve(power, np.ones(20) / 20, mode="same")
    return start + int(np.argmin(smoothed[10:-10]) + 10) * FRAME_SAMPLES


def iter_blocks(info: AudioInfo, *, block_s: float = 600.0, cut_search_s: float = 15.0) -> Iterator[AudioBlock]:
    """Decode the recording as consecutive blocks of about `block_s` seconds, cut in the quietest moment of
    their last `cut_search_s` seconds so that words are not split between blocks.

    Raises:
        AudioError: the stream is corrupt or shorter than its header says.
    """
    block_samples = int(block_s * SAMPLE_RATE_HZ)
    search_samples = int(min(cut_search_s, block_s / 2) * SAMPLE_RATE_HZ)
    pending: list[np.ndarray] = []
    pending_samples = 0
    start_sample = 0
    for array in _decode_frames(info, _output_layout(info)):
        pending.append(array)
        pending_samples += array.shape[1]
        while pending_samples >= block_samples + search_samples:
            buffer = np.concatenate(pending, axis=1)
            cut = _quietest_cut(buffer[:, : block_samples + search_samples], block_samples - search_samples)
            yield AudioBlock(start_s=start_sample / SAMPLE_RATE_HZ, samples=buffer[:, :cut])
            start_sample += cut
            pending, pending_samples = [buffer[:, cut:]], buffer.shape[1] - cut
    if pending_samples:
        yield AudioBlock(start_s=start_sample / SAMPLE_RATE_HZ, samples=np.concatenate(pending, axis=1))


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
        power = (framed.astype(np.float64) ** 2).mean(axis=2)
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
                  silent_peak_dbfs: float = -50.0, silent_below_other_db: float = 40.0) -> ChannelLayout:
    """Stereo only when both channels carry a different, audible party; otherwise analyse the call as mono.

    A channel is silent when its loud frames (99th percentile of the level) stay under `silent_peak_dbfs`, or
    more than `silent_below_other_db` under the other channel's: a leg the PBX failed to record. Then the other
    channel may hold both parties, so treating it as one party's leg would invent roles.
    """
    if info.channels > 2:
        return ChannelLayout("mono", "downmixed")
    if info.channels == 1:
        return ChannelLayout("mono", "mono")
    levels = track.frame_db
    peaks = np.percentile(levels, 99, axis=1) if levels.shape[1] else np.full(2, SILENCE_DB)
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
