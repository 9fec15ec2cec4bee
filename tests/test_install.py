"""Locked installs: what `make` installs is exactly what requirements.lock says (issue 11)."""

from __future__ import annotations

import re
from importlib import metadata

from tests.conftest import REPO

LOCK = REPO / "requirements.lock"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not a NAME==VERSION pin"
            pins[_canonical(name)] = version.strip()
    return pins


def test_every_installed_package_is_the_locked_version() -> None:
    locked = _locked()
    installed = {_canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    installed.pop("callqa")
    installed.pop("pip")  # the venv's installer: `make` upgrades it first, before the constraints apply
    unlocked = sorted(set(installed) - set(locked))
    assert not unlocked, f"installed but not in requirements.lock (run make lock): {unlocked}"
    drifted = {name: (locked[name], version) for name, version in installed.items() if locked[name] != version}
    assert not drifted, f"installed versions differ from requirements.lock (locked, installed): {drifted}"


def test_the_model_runtime_is_locked() -> None:
    """The packages whose drift changed ASR output once are pinned exactly."""
    locked = _locked()
    for name in ("numpy", "onnxruntime", "ctranslate2", "faster-whisper", "av", "torch"):
        assert name in locked, name
