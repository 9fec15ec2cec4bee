"""pyannote.audio (4.x) diarization for the GPU box, from a pipeline folder prepared beforehand.

The folder is what `pyannote/speaker-diarization-community-1` looks like on disk (docs/speakers.md tells how to
copy it onto an offline box): `config.yaml` naming its sub-models as `$model/segmentation`, `$model/embedding`,
`$model/plda`, and those sub-folders beside it. Nothing is fetched from a hub: a config that names a hub model
is refused before anything runs, and so is a folder with a part missing, saying which.

The call's 16 kHz mono audio is gathered while it streams through the analyzer and handed to pyannote as one
preloaded waveform (about 230 MB per audio hour), never as a path: pyannote would decode the file again, slowly.
Speaker counts are bounded (`min_speakers`, `max_speakers`), not forced to two. pyannote's usage telemetry is
switched off before it is imported.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from pathlib import Path

import numpy as np

from pipeline.audio import SAMPLE_RATE_HZ
from pipeline.errors import ConfigError, DiarizationError
from pipeline.speakers.diarization import Diarization, DiarizationSegment, PyannoteOptions, speaker_names
from pipeline.speakers.voices import VoiceOptions, VoiceWindows, embed_speech, speaker_voices

__all__ = ["PyannoteDiarizer", "check_pipeline_dir"]

logger = logging.getLogger(__name__)

# What each kind of sub-model folder must hold (pyannote's own file names).
_SUBMODEL_FILES = {"segmentation": ("pytorch_model.bin",), "embedding": ("pytorch_model.bin",),
                   "plda": ("xvec_transform.npz", "plda.npz")}


def _pyannote_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyannote-audio")
    except PackageNotFoundError:
        return "missing"


def check_pipeline_dir(folder: Path) -> dict:
    """Read and check a local pyannote pipeline folder; returns its config.

    Raises:
        ConfigError: the folder, its config.yaml or a sub-model it names is missing, or it names a hub model.
    """
    import yaml

    config_path = folder / "config.yaml"
    if not folder.is_dir():
        raise ConfigError(f"pyannote pipeline folder {folder} does not exist (speakers.pyannote.pipeline_dir; "
                          "docs/speakers.md tells how to prepare it)")
    if not config_path.is_file():
        raise ConfigError(f"{folder} has no config.yaml: not a pyannote pipeline folder")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        params = config["pipeline"].get("params", {}) or {}
    except (yaml.YAMLError, KeyError, AttributeError, TypeError) as error:
        raise ConfigError(f"{config_path}: not a pyannote pipeline config ({error})") from error
    problems = []
    for key, files in _SUBMODEL_FILES.items():
        value = params.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(f"{key}: expected '$model/<folder>' or a local path, got {value!r}")
        elif value.startswith("$model/"):
            sub = folder / value.removeprefix("$model/").split("@")[0]
            missing = [name for name in files if not (sub / name).is_file()]
            if missing:
                problems.append(f"{key}: {sub} lacks {', '.join(missing)}")
        elif not Path(value).exists():
            problems.append(f"{key}: {value!r} is neither in the folder nor a local path (a hub model cannot be "
                            "fetched here: copy it into the folder and name it '$model/<folder>')")
    if problems:
        raise ConfigError(f"pyannote pipeline {folder} is incomplete: " + "; ".join(problems))
    return config


def _device(choice: str):
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("speakers.pyannote.device is cuda but no CUDA device is visible")
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu")


class _PyannoteSession:
    def __init__(self, diarizer: PyannoteDiarizer) -> None:
        self.diarizer = diarizer
        self.blocks: list[np.ndarray] = []
        self.windows = VoiceWindows()

    def add(self, samples: np.ndarray, *, offset_s: float) -> None:
        self.blocks.append(np.asarray(samples, dtype=np.float32))
        # Voices in resemblyzer's space, for voiceprints and confidence (cheap next to pyannote itself).
        self.windows.add(*embed_speech(samples, offset_s=offset_s, options=self.diarizer.voices))

    def finish(self) -> Diarization:
        diarizer = self.diarizer
        waveform = np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)
        self.blocks = []
        if len(waveform) < SAMPLE_RATE_HZ // 2:
            return Diarization(segments=[], voices={}, confidence={}, backend=diarizer.name,
                               version=diarizer.version)
        output = diarizer.run(waveform)
        turns = [(turn.start, turn.end, label) for turn, _, label in output.speaker_diarization.itertracks(
            yield_label=True)]
        exclusive = [(turn.start, turn.end, label) for turn, _, label
                     in output.exclusive_speaker_diarization.itertracks(yield_label=True)]
        names = speaker_names([label for _, _, label in sorted(turns)])
        segments = [DiarizationSegment(round(start, 3), round(end, 3), names[label])
                    for start, end, label in sorted(turns)]
        labels = _labels_of(self.windows.times, exclusive, names)
        voices, confidence = speaker_voices(self.windows, labels, clear_margin=diarizer.voices.clear_margin)
        notes = []
        if len(names) > 2:
            notes.append(f"pyannote heard {len(names)} voices")
        return Diarization(segments=segments, voices=voices, confidence=confidence, backend=diarizer.name,
                           version=diarizer.version, notes=notes)


def _labels_of(windows: list[tuple[float, float]], exclusive: list[tuple[float, float, str]],
               names: dict) -> list[str | None]:
    """For each embedding window, the speaker covering at least half of it in the exclusive diarization (whose
    segments do not overlap), else None."""
    exclusive = sorted(exclusive)
    ends = [end for _, end, _ in exclusive]
    labels: list[str | None] = []
    for start, end in windows:
        covered: dict[str, float] = {}
        index = bisect.bisect_right(ends, start)  # the first segment ending after the window starts
        while index < len(exclusive) and exclusive[index][0] < end:
            seg_start, seg_end, label = exclusive[index]
            speaker = names.get(label, label)
            covered[speaker] = covered.get(speaker, 0.0) + min(end, seg_end) - max(start, seg_start)
            index += 1
        best = max(covered, key=covered.__getitem__) if covered else None
        labels.append(best if best is not None and covered[best] >= 0.5 * (end - start) else None)
    return labels


class PyannoteDiarizer:
    """A loaded pyannote pipeline; `session()` per call."""

    name = "pyannote"

    def __init__(self, pipeline, options: PyannoteOptions, *, voices: VoiceOptions, device) -> None:
        self.pipeline = pipeline
        self.options = options
        self.voices = voices
        self.device = str(device)
        if options.pipeline_dir is None:  # `load` checks and resolves the folder before building one
            raise TypeError("PyannoteDiarizer needs options.pipeline_dir; build it with PyannoteDiarizer.load")
        self.version = f"pyannote.audio-{_pyannote_version()}/{Path(options.pipeline_dir).name}"
        # A GPU worker transcribes several calls at once; pyannote's pipeline keeps per-call state, so calls
        # take turns on it (it is the short part of a call's work on a GPU).
        self._lock = threading.Lock()

    @classmethod
    def load(cls, options: PyannoteOptions, *, voices: VoiceOptions | None = None) -> PyannoteDiarizer:
        """Check the folder, then load the pipeline onto the configured device.

        Raises:
            ConfigError: pyannote.audio is not installed, or the folder is incomplete (see check_pipeline_dir).
            ModelError: pyannote could not build the pipeline from the folder.
        """
        from pipeline.errors import ModelError

        if options.pipeline_dir is None:
            raise ConfigError("the pyannote diarizer needs speakers.pyannote.pipeline_dir (a local pipeline "
                              "folder; see docs/speakers.md)")
        folder = Path(options.pipeline_dir).expanduser().resolve()
        check_pipeline_dir(folder)
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")  # no telemetry from an offline box
        try:
            from pyannote.audio import Pipeline
        except ImportError as error:
            raise ConfigError("pyannote.audio is not installed: pip install 'callqa[pyannote]'") from error
        device = _device(options.device)
        try:
            pipeline = Pipeline.from_pretrained(folder)
        except Exception as error:  # pyannote raises anything from KeyError to RuntimeError on a bad folder
            raise ModelError(f"pyannote could not load the pipeline in {folder}: {type(error).__name__}: "
                             f"{error}") from error
        if pipeline is None:
            raise ModelError(f"pyannote could not load the pipeline in {folder}")
        for attribute, size in (("segmentation_batch_size", options.segmentation_batch_size),
                                ("embedding_batch_size", options.embedding_batch_size)):
            if hasattr(pipeline, attribute):
                setattr(pipeline, attribute, size)
        pipeline.to(device)
        logger.info("pyannote pipeline %s loaded on %s", folder, device)
        return cls(pipeline, options.model_copy(update={"pipeline_dir": folder}),
                   voices=voices or VoiceOptions(), device=device)

    def session(self) -> _PyannoteSession:
        return _PyannoteSession(self)

    def run(self, waveform: np.ndarray):
        """pyannote's DiarizeOutput for one call's waveform (float32, 16 kHz, mono).

        Raises:
            DiarizationError: pyannote failed (a CUDA out-of-memory error says which batch sizes to lower).
        """
        import torch

        options = self.options
        audio = {"waveform": torch.from_numpy(waveform).unsqueeze(0), "sample_rate": SAMPLE_RATE_HZ}
        try:
            with self._lock, torch.inference_mode():
                return self.pipeline(audio, min_speakers=options.min_speakers, max_speakers=options.max_speakers)
        except torch.cuda.OutOfMemoryError as error:
            raise DiarizationError(
                f"pyannote ran out of GPU memory: lower speakers.pyannote.segmentation_batch_size "
                f"({options.segmentation_batch_size}) or embedding_batch_size ({options.embedding_batch_size})"
            ) from error
        except Exception as error:
            raise DiarizationError(f"pyannote failed: {type(error).__name__}: {error}") from error
