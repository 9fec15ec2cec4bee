"""The pyannote.audio backend: real loading from a local folder and real inference on a waveform.

The pipeline is built here from pyannote's own classes with UNTRAINED weights (tests/pyannote_pipeline.py): the
trained pipelines are gated on a hub this machine cannot reach. So these tests check the plumbing (loading the
folder the way the GPU box does, feeding a preloaded 16 kHz waveform, bounded speaker counts, the result's
shape and naming, clear refusals) and not who speaks when; diarization quality is measured on the embedded
backend (test_mono.py) and, on a GPU box with the real pipeline, by bench/diarization.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.audio import SAMPLE_RATE_HZ, decode_all
from pipeline.errors import ConfigError
from pipeline.speakers import load_diarizer
from pipeline.speakers.diarization import PyannoteOptions, SpeakerOptions
from pipeline.speakers.pyannote import PyannoteDiarizer, check_pipeline_dir
from tests.audio_write import write_audio
from tests.cli_helpers import run_callqa
from tests.conftest import SAMPLE_CALLS
from tests.pyannote_pipeline import build_untrained_pipeline

# VBx clustering averages empty slices when the weights are untrained: noise of the stand-in pipeline, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    return build_untrained_pipeline(tmp_path_factory.mktemp("pyannote") / "untrained-community-layout")


@pytest.fixture(scope="module")
def short_mono() -> np.ndarray:
    """The first 24 s of a two-party sample call, as the analyzer decodes it (16 kHz float32)."""
    _, samples = decode_all(SAMPLE_CALLS[0].mono)
    return samples[0][: 24 * SAMPLE_RATE_HZ]


class _Recording:
    """Passes every call through to the real pipeline and keeps what it was given."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.calls: list[tuple[object, dict]] = []

    def __call__(self, file, **options):
        self.calls.append((file, options))
        return self.pipeline(file, **options)


def test_loads_the_folder_and_diarizes_a_preloaded_waveform(pipeline_dir: Path, short_mono: np.ndarray) -> None:
    diarizer = PyannoteDiarizer.load(PyannoteOptions(pipeline_dir=pipeline_dir, device="auto", max_speakers=3))
    assert diarizer.device == "cpu"  # no CUDA here; "auto" picks it on the GPU box
    assert diarizer.version.startswith("pyannote.audio-4.0.7/")
    recording = diarizer.pipeline = _Recording(diarizer.pipeline)
    session = diarizer.session()
    half = len(short_mono) // 2
    session.add(short_mono[:half], offset_s=0.0)  # two blocks, as a long call streams through
    session.add(short_mono[half:], offset_s=half / SAMPLE_RATE_HZ)
    diarization = session.finish()

    (file, options), = recording.calls
    assert isinstance(file, dict) and file["sample_rate"] == SAMPLE_RATE_HZ  # a waveform, not a path
    assert tuple(file["waveform"].shape) == (1, len(short_mono))
    assert options == {"min_speakers": 1, "max_speakers": 3}  # bounded, not forced to two
    assert diarization.backend == "pyannote"
    assert diarization.segments, "the untrained pipeline still labels some frames as speech"
    assert all(0 <= s.start < s.end <= len(short_mono) / SAMPLE_RATE_HZ + 0.1 for s in diarization.segments)
    assert diarization.speakers == [f"S{i + 1}" for i in range(len(diarization.speakers))]
    assert set(diarization.voices) <= set(diarization.speakers)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in diarization.voices.values())


def test_the_analyzer_runs_pyannote_on_mono_calls(analyzer, derive_setup, settings, pipeline_dir: Path,
                                                   short_mono: np.ndarray, tmp_path: Path) -> None:
    from pipeline.analyze import CallAnalyzer

    path = write_audio(tmp_path / "short.wav", short_mono, SAMPLE_RATE_HZ)
    configured = settings.model_copy(update={"speakers": SpeakerOptions(
        diarizer="auto", pyannote=PyannoteOptions(pipeline_dir=pipeline_dir))})
    result = CallAnalyzer(configured, asr_model=analyzer.asr_model, setup=derive_setup).analyze(path)
    assert result.model.speakers.name == "pyannote"
    assert result.model.speakers.version.startswith("pyannote.audio-4.0.7/")
    assert result.layout == "mono" and result.words
    assert {w.speaker for w in result.words} <= {s.id for s in result.speakers}
    assert result.role_detection is not None


def test_the_embedded_diarizer_is_the_default() -> None:
    assert SpeakerOptions().backend == "embedded"
    assert load_diarizer(SpeakerOptions()).name == "embedded"
    assert load_diarizer(SpeakerOptions(diarizer="none")) is None


def _copy(pipeline_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pipeline_dir, tmp_path / "copy"))


def test_a_missing_or_incomplete_folder_is_refused_saying_what_is_missing(pipeline_dir: Path,
                                                                         tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_pipeline_dir(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.yaml"):
        check_pipeline_dir(tmp_path / "empty")
    folder = _copy(pipeline_dir, tmp_path)
    (folder / "plda" / "plda.npz").unlink()
    with pytest.raises(ConfigError, match=r"plda: .*plda lacks plda.npz"):
        PyannoteDiarizer.load(PyannoteOptions(pipeline_dir=folder))


def test_a_config_naming_a_hub_model_is_refused_before_any_download(pipeline_dir: Path, tmp_path: Path) -> None:
    folder = _copy(pipeline_dir, tmp_path)
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    config["pipeline"]["params"]["embedding"] = "pyannote/wespeaker-voxceleb-resnet34-LM"
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ConfigError, match="hub model cannot be fetched"):
        check_pipeline_dir(folder)


def test_the_cli_refuses_a_missing_pipeline_in_one_line(tmp_path: Path) -> None:
    done = run_callqa("analyze", str(SAMPLE_CALLS[0].mono),
                      env={"CALLQA_SPEAKERS__PYANNOTE__PIPELINE_DIR": str(tmp_path / "not-prepared")})
    assert done.returncode == 3
    assert done.stderr.strip().count("\n") == 0 and "pyannote pipeline folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_each_window_takes_the_speaker_covering_half_of_it() -> None:
    from pipeline.speakers.pyannote import _labels_of

    exclusive = [(2.0, 4.0, "SPEAKER_01"), (0.0, 2.0, "SPEAKER_00"), (4.5, 9.0, "SPEAKER_00")]
    names = {"SPEAKER_00": "S1", "SPEAKER_01": "S2"}
    windows = [(0.0, 1.6), (1.5, 3.1), (3.6, 5.2), (9.5, 11.1), (4.6, 6.2)]
    assert _labels_of(windows, exclusive, names) == ["S1", "S2", None, None, "S1"]
