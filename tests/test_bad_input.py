"""The bad-input matrix (issue 11): every kind of odd recording or setting a night can bring, each with its
expected outcome — a clear per-call error, or a result that carries the right warning or failed quality gate.

Kinds tested elsewhere, each in the place of its subject:
    missing, empty, text named .mp3, truncated (one clear line, no JSON)   test_cli.py::test_bad_input_is_...
    silence (no words, "no speech recognised")                             test_asr.py, test_cli.py
    English speech (the language gate fails)                               test_asr.py::test_speech_in_another_...
    a bad config value (exit 3, the key named)                              test_cli.py::test_configuration_errors_...
    a lexicon folder with one broken file (file and line, before any audio) test_lexicon_files.py
    an HTML page served as a recording, a download that stalls             test_bitrix24_e2e.py::test_a_recording_...
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import SAMPLE_RATE_HZ, decode_all
from pipeline.errors import AudioError
from tests.audio_write import write_audio, write_audio_chunks
from tests.conftest import SAMPLE_CALLS
from tests.evaluation import normalised_wer

CALL = min(SAMPLE_CALLS, key=lambda call: call.duration_s)


def _text(result) -> str:
    return " ".join(word.text for word in result.words)


def _gate(result, gate_id: str):
    return next(gate for gate in result.quality.gates if gate.id == gate_id)


# --- recordings that cannot be analysed: one clear reason, naming the file ----------------------------------------

def _random_bytes(tmp: Path) -> Path:
    path = tmp / "noise.mp3"
    path.write_bytes(random.Random(5).randbytes(64_000))
    return path


def _directory(tmp: Path) -> Path:
    path = tmp / "folder.mp3"
    path.mkdir()
    return path


def _dangling_symlink(tmp: Path) -> Path:
    path = tmp / "link.mp3"
    path.symlink_to(tmp / "gone.mp3")
    return path


def _damaged_to_the_end(tmp: Path) -> Path:
    data = CALL.stereo.read_bytes()
    path = tmp / "rotten-tail.mp3"
    path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    return path


@pytest.mark.parametrize(("make", "reason"), [
    (_random_bytes, "not a readable audio file"),
    (_directory, "not a regular file"),
    (_dangling_symlink, "file not found"),
    (_damaged_to_the_end, "truncated: decoded"),  # nothing decodes after the damage: the call really ends early
], ids=["random bytes", "a directory", "a dangling symlink", "zeros from the middle to the end"])
def test_unreadable_recordings_fail_with_their_reason(analyzer, tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioError) as error:
        analyzer.analyze(path)
    assert str(error.value).startswith(f"{path}: ") and reason in str(error.value)


# --- recordings damaged in places: analysed around the damage, with a warning --------------------------------------

def _with_zeros(data: bytes, at: float, size: int) -> bytes:
    middle = int(len(data) * at)
    return data[:middle] + bytes(size) + data[middle + size:]


def test_zeros_in_the_middle_are_a_gap_and_the_rest_is_analysed(analyzer, stereo_results, tmp_path: Path) -> None:
    """5 000 zero bytes over the middle of an mp3: ffmpeg resyncs after them, and so do we."""
    path = tmp_path / "scratched.mp3"
    path.write_bytes(_with_zeros(CALL.stereo.read_bytes(), 0.5, 5000))
    result = analyzer.analyze(path, manager_channel=CALL.manager_channel)
    intact = stereo_results[CALL.call_id]
    assert len(result.audio_gaps) == 1
    gap = result.audio_gaps[0]
    assert gap.size_bytes >= 5000 and 0.4 * intact.duration_s < gap.start < gap.end < 0.6 * intact.duration_s
    # The gap is as long as the audio the zeros replaced (32 kbit/s: 5 000 bytes are 1.25 s), so what follows
    # keeps its place on the call's timeline.
    assert gap.end - gap.start == pytest.approx(1.25, abs=0.2)
    assert result.duration_s == pytest.approx(intact.duration_s, abs=0.2)
    assert f"damaged audio {gap.start:.1f}-{gap.end:.1f} s" in " ".join(result.warnings)
    assert _gate(result, "audio_intact").passed and result.quality.passed
    assert any(word.start > gap.end for word in result.words) and any(word.end < gap.start for word in result.words)
    # Heard as well as the intact call, against the script: the 1.4 s of lost audio held about 3 of the call's
    # 56 words, and they pull their neighbours with them (0.07 measured). Against the intact call's transcript
    # the same file measured 0.07 or 0.28 by decoding setting, at the same WER against the script: after the gap
    # the beam takes another path without hearing worse, so the script is the measure.
    assert normalised_wer(CALL.text, _text(result)) <= normalised_wer(CALL.text, _text(intact)) + 0.12
    late = [word for word in result.words if word.start > gap.end + 1.0]
    assert late and min(word.start for word in late) == pytest.approx(
        min(word.start for word in intact.words if word.start > gap.end + 1.0), abs=0.3)


def test_damage_over_a_large_share_fails_the_audio_gate(analyzer, tmp_path: Path) -> None:
    data = CALL.stereo.read_bytes()
    for at in (0.2, 0.45, 0.7):  # three scratches of 2 s each: 6 s of a 45 s call
        data = _with_zeros(data, at, 8000)
    path = tmp_path / "scratched-badly.mp3"
    path.write_bytes(data)
    result = analyzer.analyze(path, manager_channel=CALL.manager_channel)
    assert len(result.audio_gaps) == 3
    gate = _gate(result, "audio_intact")
    assert not gate.passed and gate.value > 0.1 and not result.quality.passed
    assert any("could not be decoded (analysed as silence)" in warning for warning in result.warnings)
    assert result.words  # the rest was still analysed


# --- recordings that decode but hold no conversation: a result whose gates say so ----------------------------------

def test_a_pure_tone_gives_no_words_and_fails_the_speech_gate(analyzer, tmp_path: Path) -> None:
    t = np.arange(SAMPLE_RATE_HZ * 15) / SAMPLE_RATE_HZ
    path = write_audio(tmp_path / "beep.wav", 0.3 * np.sin(2 * np.pi * 425 * t), SAMPLE_RATE_HZ)
    result = analyzer.analyze(path)
    assert result.words == [] and not _gate(result, "speech_present").passed


def test_a_file_of_a_third_of_a_second_fails_the_duration_gate(analyzer, tmp_path: Path) -> None:
    _, samples = decode_all(CALL.stereo)
    path = write_audio(tmp_path / "blip.wav", samples[:, : int(0.3 * SAMPLE_RATE_HZ)], SAMPLE_RATE_HZ)
    result = analyzer.analyze(path)
    gate = _gate(result, "min_duration")
    assert not gate.passed and gate.value == pytest.approx(0.3, abs=0.01)


def test_six_channels_are_mixed_down_and_analysed_as_mono(analyzer, tmp_path: Path) -> None:
    _, samples = decode_all(CALL.mono)
    six = np.zeros((6, samples.shape[1]), np.float32)
    six[0], six[1] = samples[0], samples[0]  # front left and right carry the call, the rest is silent
    path = write_audio(tmp_path / "surround.flac", six, SAMPLE_RATE_HZ)
    result = analyzer.analyze(path)
    assert (result.channels, result.layout) == (6, "mono")
    assert len(result.words) > 20


# --- other formats of the same call: the same conversation ----------------------------------------------------------

@pytest.fixture(scope="module")
def reference_excerpt(analyzer, tmp_path_factory) -> tuple[np.ndarray, object]:
    """The first 25 s of a stereo call, as lossless 16 kHz FLAC, and its analysis."""
    _, samples = decode_all(CALL.stereo)
    excerpt = samples[:, : 25 * SAMPLE_RATE_HZ]
    path = write_audio(tmp_path_factory.mktemp("formats") / "reference.flac", excerpt, SAMPLE_RATE_HZ)
    return excerpt, analyzer.analyze(path, manager_channel=CALL.manager_channel)


def _resampled(samples: np.ndarray, rate: int) -> np.ndarray:
    positions = np.arange(int(samples.shape[1] * rate / SAMPLE_RATE_HZ)) * SAMPLE_RATE_HZ / rate
    return np.stack([np.interp(positions, np.arange(samples.shape[1]), channel) for channel in samples])


def _frame_levels_db(samples: np.ndarray) -> np.ndarray:
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    return 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-10)


@pytest.mark.parametrize(("name", "rate", "codec"), [
    ("звонок №1 (клиент).ogg", 48000, None),   # Opus, and a file name that is not ASCII
    ("call.m4a", 16000, None),                # AAC
    ("call-alaw.wav", 8000, "pcm_alaw"),      # G.711 as PBXs store it
    ("call-mulaw.wav", 8000, "pcm_mulaw"),
    ("call.flac", 48000, None),
])
def test_other_formats_of_the_call_give_the_same_conversation(analyzer, reference_excerpt, tmp_path: Path,
                                                              name: str, rate: int, codec: str | None) -> None:
    excerpt, reference = reference_excerpt
    path = write_audio(tmp_path / name, _resampled(excerpt, rate), rate, codec=codec)
    # Decoded, it is the same sound: the loudness of every 10 ms follows the original's, once the codec's
    # priming delay (AAC and Opus: tens of ms) is allowed for.
    _, decoded = decode_all(path)
    for channel in (0, 1):
        ours, theirs = _frame_levels_db(decoded[channel]), _frame_levels_db(excerpt[channel])
        assert abs(len(ours) - len(theirs)) < 40
        n = min(len(ours), len(theirs)) - 40
        best = max(np.corrcoef(ours[lag : lag + n], theirs[:n])[0, 1] for lag in range(40))
        assert best > 0.9
    # Analysed, it is the same conversation, with nothing to warn about. whisper-base's words move a little with
    # any change of the signal (measured here: WER against the script 0.27-0.53 across these formats, 0.32 for
    # the lossless reference), so the words are held to the script loosely and the measures tightly.
    result = analyzer.analyze(path, manager_channel=CALL.manager_channel)
    assert result.layout == "stereo" and result.source.uri == str(path)
    assert result.quality.passed and result.warnings == [] and result.audio_gaps == []
    assert result.metrics.talk_ratio_manager == pytest.approx(reference.metrics.talk_ratio_manager, abs=0.03)
    assert abs(len(result.words) - len(reference.words)) <= 0.2 * len(reference.words)
    script = " ".join(u.text for u in CALL.utterances if u.end <= 25.5)
    assert normalised_wer(script, _text(result)) < 0.65


# --- a long call: memory stays flat block after block (the four-hour call in a batch: test_batch.py) ------------

def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_long_call_holds_the_same_memory_after_each_block(analyzer, tmp_path: Path) -> None:
    """The sample call, then 100 minutes of line hiss (a line left open), as a PBX stores it (G.711 a-law, 8 kHz,
    stereo), through the batch worker's analyzer. What the process holds after the first half hour is what it
    holds after each later block (measured at each block's end: a leak of 10 MB a block would show); the batch
    test takes a four-hour call through a worker and bounds its peak."""
    rate = 8000
    _, call = decode_all(CALL.stereo)
    call = _resampled(call, rate).astype(np.float32)
    hiss = np.random.default_rng(1).normal(0, 1e-3, (2, rate * 60)).astype(np.float32)
    path = write_audio_chunks(tmp_path / "long.wav", [call, *[hiss] * 100], rate, channels=2, codec="pcm_alaw")
    before = _resident_mb()
    resident: list[tuple[float, float]] = []  # (seconds of the call done, MB resident)

    def hook(step: str, artifact=None, *, completed: float | None = None, total: float | None = None) -> None:
        if step == "asr":
            resident.append((completed, _resident_mb()))

    result = analyzer.analyze(path, manager_channel=CALL.manager_channel, hook=hook)
    assert result.duration_s == pytest.approx(100 * 60 + CALL.duration_s, abs=2)
    assert len(result.words) > 20
    assert all(word.end < CALL.duration_s + 1 for word in result.words)
    assert len(resident) >= 10
    first_half_hour = max(mb for done, mb in resident if done <= 1800)
    assert max(mb for _, mb in resident) - before < 1000, (before, resident)
    assert max(mb for done, mb in resident if done > 1800) < first_half_hour + 100, resident
