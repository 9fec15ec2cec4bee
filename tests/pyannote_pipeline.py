"""A pyannote 4 diarization pipeline folder built here from pyannote's own classes, with UNTRAINED weights.

It has the layout of `pyannote/speaker-diarization-community-1` on disk (config.yaml naming `$model/segmentation`,
`$model/embedding`, `$model/plda`) and the same architectures (PyanNet powerset segmentation over 10 s chunks,
WeSpeaker ResNet34 embeddings, VBx clustering with a PLDA), so loading and inference run exactly as with the real
pipeline. The trained weights are gated on a hub this machine cannot reach, so what it says about who speaks when
is meaningless: tests use it for the plumbing only, and bench/diarization.py for the speed of the architecture.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml


def _save(model, path: Path) -> None:
    import torch

    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": "2.5.0"}
    model.on_save_checkpoint(checkpoint)  # pyannote's own metadata: versions, architecture, specifications
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def build_untrained_pipeline(folder: Path, *, seed: int = 0) -> Path:
    """Write the pipeline folder; returns it."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(seed)
    segmentation = PyanNet(sincnet={"stride": 10})
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME, duration=10.0, min_duration=10.0,
        warm_up=(0.0, 0.0), classes=["speaker#1", "speaker#2", "speaker#3"], powerset_max_classes=2,
        permutation_invariant=True)
    segmentation.build()
    _save(segmentation, folder / "segmentation" / "pytorch_model.bin")
    embedding = WeSpeakerResNet34()
    embedding.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK,
                                              duration=5.0)
    _save(embedding, folder / "embedding" / "pytorch_model.bin")
    rng = np.random.default_rng(seed)
    dimension, lda_dimension = 256, 128
    (folder / "plda").mkdir(parents=True, exist_ok=True)
    np.savez(folder / "plda" / "xvec_transform.npz", mean1=rng.normal(size=dimension),
             mean2=rng.normal(size=lda_dimension), lda=rng.normal(size=(dimension, lda_dimension)))
    np.savez(folder / "plda" / "plda.npz", mu=rng.normal(size=lda_dimension), tr=np.eye(lda_dimension),
             psi=np.abs(rng.normal(size=lda_dimension)) + 0.5)
    config = {
        "pipeline": {"name": "pyannote.audio.pipelines.SpeakerDiarization", "params": {
            "segmentation": "$model/segmentation", "embedding": "$model/embedding", "plda": "$model/plda",
            "clustering": "VBxClustering", "segmentation_batch_size": 8, "embedding_batch_size": 8}},
        "params": {"segmentation": {"min_duration_off": 0.0},
                   "clustering": {"threshold": 0.6, "Fa": 0.07, "Fb": 0.8}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder
