"""Decoding any common format and rate, channel layouts, streaming blocks, and refusing broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE_HZ,
    LevelTrack,
    decide_layout,
    decode_all,
    iter_blocks,
    probe,
)
from pipeline.errors import AudioError
from tests.audio_write import write_audio
from tests.conftest import SAMPLE_CALLS

LEFT_HZ, RIGHT_HZ = 440.0, 1250.0


def _tones(sample_rate_hz: int, channels: int, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(sample_rate_hz * seconds)) / sample_rate_hz
    left = 0.3 * np.sin(2 * np.pi * LEFT_HZ * t)
    right = 0.3 * np.sin(2 * np.pi * RIGHT_HZ * t)
    return np.stack([left, right] if channels == 2 else [left]).astype(np.float32)


def _dominant_hz(signal: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(signal))
    return float(np.argmax(spectrum) * SAMPLE_RATE_HZ / len(signal))


@pytest.mark.parametrize(("suffix", "rate", "channels"), [
    (".mp3", 8000, 2), (".mp3", 44100, 1), (".ogg", 48000, 2), (".ogg", 16000, 1), (".m4a", 16000, 1),
    (".m4a", 44100, 2), (".flac", 8000, 2), (".flac", 48000, 1), (".wav", 22050, 2), (".wav", 8000, 1),
])
def test_common_formats_decode_to_16k_per_channel(tmp_path: Path, suffix: str, rate: int, channels: int) -> None:
    path = write_audio(tmp_path / f"tone{suffix}", _tones(rate, channels), rate)
    info, samples = decode_all(path)
    assert info.channels == channels
    assert samples.shape[0] == channels
    # AAC and Opus add a few hundred ms of encoder priming; the rest is exact.
    assert samples.shape[1] / SAMPLE_RATE_HZ == pytest.approx(4.0, abs=0.3)
    middle = slice(SAMPLE_RATE_HZ, 3 * SAMPLE_RATE_HZ)
    assert _dominant_hz(samples[0, middle]) == pytest.approx(LEFT_HZ, abs=5)
    if channels == 2:
        assert _dominant_hz(samples[1, middle]) == pytest.approx(RIGHT_HZ, abs=5)


def _layout_of(path: Path):
    info = probe(path)
    track = LevelTrack(2 if info.channels == 2 else 1)
    for block in iter_blocks(info):
        track.add(block)
    return decide_layout(info, track)


def test_a_real_stereo_call_is_stereo() -> None:
    layout = _layout_of(SAMPLE_CALLS[0].stereo)
    assert layout.layout == "stereo"
    assert layout.dual_mono_correlation < 0.5


@pytest.mark.parametrize(("delay_samples", "gain"), [(0, 1.0), (24, 0.5)])
def test_dual_mono_is_detected_and_treated_as_mono(tmp_path: Path, delay_samples: int, gain: float) -> None:
    _, mono = decode_all(SAMPLE_CALLS[0].mono)
    right = gain * np.roll(mono[0], delay_samples)
    path = write_audio(tmp_path / "dual.flac", np.stack([mono[0], right]), SAMPLE_RATE_HZ)
    layout = _layout_of(path)
    assert (layout.layout, layout.reason) == ("mono", "dual_mono")
    assert layout.dual_mono_correlation > 0.95


def test_a_silent_leg_makes_the_call_mono(tmp_path: Path) -> None:
    _, stereo = decode_all(SAMPLE_CALLS[0].stereo)
    stereo[1] = np.random.default_rng(0).normal(0, 1e-4, stereo.shape[1])  # line hiss, nobody there
    path = write_audio(tmp_path / "one-leg.flac", stereo, SAMPLE_RATE_HZ)
    layout = _layout_of(path)
    assert (layout.layout, layout.reason, layout.silent_channels) == ("mono", "silent_channel", (1,))


def test_a_call_followed_by_hours_of_an_open_line_keeps_both_legs() -> None:
    """Speech in 0.3 % of the frames (a 45-s call, then four hours of hiss): both legs are still audible; a leg
    that is hiss all along is still silent."""
    info = probe(SAMPLE_CALLS[0].stereo)
    track = LevelTrack(2)
    for block in iter_blocks(info):
        track.add(block)
    call_levels = track.frame_db
    hiss = np.random.default_rng(2).normal(-62.0, 1.5, (2, 4 * 3600 * 100)).astype(np.float32)
    long = LevelTrack(2)
    long.dual_mono_correlation = track.dual_mono_correlation
    long._levels = [call_levels, hiss]
    assert (decide_layout(info, long).layout, decide_layout(info, long).reason) == ("stereo", "stereo")
    one_leg = np.concatenate([call_levels, hiss], axis=1)
    one_leg[1] = hiss[1, 0]
    long._levels = [one_leg]
    assert decide_layout(info, long).silent_channels == (1,)


def test_blocks_cover_the_call_exactly_and_cut_in_pauses() -> None:
    call = SAMPLE_CALLS[0]
    _, whole = decode_all(call.stereo)
    blocks = list(iter_blocks(probe(call.stereo), block_s=15.0, cut_search_s=5.0))
    assert len(blocks) >= 3
    joined = np.concatenate([block.samples for block in blocks], axis=1)
    np.testing.assert_array_equal(joined, whole)
    for block in blocks[1:]:
        first_sample = round(block.start_s * SAMPLE_RATE_HZ)
        assert first_sample % FRAME_SAMPLES == 0
        # The cut lies in a pause: no scripted utterance is running there.
        assert not any(u.start < block.start_s < u.end for u in call.utterances), block.start_s


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="file not found") as error:
        probe(tmp_path / "nope.mp3")
    assert str(error.value).startswith(str(tmp_path / "nope.mp3"))


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty file \(0 bytes\)"):
        probe(tmp_path / "empty.mp3")


def test_text_named_mp3(tmp_path: Path) -> None:
    (tmp_path / "notes.mp3").write_text("Позвонить клиенту в четверг\n", encoding="utf-8")
    with pytest.raises(AudioError, match="not a readable audio file"):
        probe(tmp_path / "notes.mp3")


def test_truncated_mp3(tmp_path: Path) -> None:
    data = SAMPLE_CALLS[0].stereo.read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 3])
    info = probe(tmp_path / "cut.mp3")
    with pytest.raises(AudioError, match=r"truncated: decoded \d+\.\d s of the \d+\.\d s its header declares"):
        list(iter_blocks(info))
