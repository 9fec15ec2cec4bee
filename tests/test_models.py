"""The model registry: the packaged whisper-base is assembled and checked; everything else is refused clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import models
from models.registry import STAMP_FILE, PackagePart
from pipeline.errors import ModelError

SPEC = models.REGISTRY["whisper-base"]


def test_packaged_model_assembles_with_the_published_hash(tmp_path: Path) -> None:
    model_dir = models.assemble(SPEC, tmp_path)
    assert (model_dir / "model.bin").stat().st_size == SPEC.size_bytes
    assert models.registry._sha256_of(model_dir / "model.bin") == SPEC.sha256
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (model_dir / name).is_file()
    assert json.loads((model_dir / STAMP_FILE).read_text())["sha256"] == SPEC.sha256
    # A second call trusts the stamp and returns at once; a verify re-hashes and still agrees.
    assert models.assemble(SPEC, tmp_path) == model_dir
    assert models.assemble(SPEC, tmp_path, verify=True) == model_dir


def test_a_corrupted_part_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    parts = [part.locate() for part in SPEC.parts]
    corrupted = tmp_path / "part1"
    shutil.copyfile(parts[0], corrupted)
    with corrupted.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="do not match the expected file"):
        models.assemble(SPEC, cache, part_paths=[corrupted, parts[1]])
    assert not (cache / "whisper-base" / "model.bin").exists()
    assert not list((cache / "whisper-base").glob(".model.bin.*"))


def test_a_missing_part_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="do not match"):
        models.assemble(SPEC, tmp_path, part_paths=[SPEC.parts[0].locate()])
    missing = PackagePart("callqa-no-such-package", "1.0", "callqa_no_such_package", "data/x")
    with pytest.raises(ModelError, match=r"package callqa-no-such-package is not installed \(pip install"):
        missing.locate()


def test_hub_model_not_present_says_how_to_provide_it(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        models.resolve("large-v3", cache_dir=tmp_path)
    message = str(error.value)
    assert "callqa model fetch large-v3" in message
    assert "Systran/faster-whisper-large-v3" in message
    assert "--model" in message


def test_a_model_directory_is_accepted_and_checked(tmp_path: Path) -> None:
    assembled = models.resolve("whisper-base")
    resolved = models.resolve(str(assembled.path))
    assert resolved.path == assembled.path
    assert resolved.sha256 == SPEC.sha256
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="missing model.bin, tokenizer.json"):
        models.resolve(str(tmp_path))


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ModelError, match="expected one of whisper-base, large-v3, large-v3-turbo"):
        models.resolve("whisper-gigantic")
