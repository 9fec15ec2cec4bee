"""The pure parts of bench/gpu_carry.py and bench/gpu_box.py, on real small files: packing, splitting and
joining, receiving, sizing the tree.

The parts that need pip, the network or the lent GPU machine are rehearsed by hand (see the script's docstring).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_script(name: str):
    # bench/ is no package: load the script by path. dataclasses look the module up in sys.modules.
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gpu_box = _load_script("gpu_box")  # the machine's side
gpu_carry = _load_script("gpu_carry")  # this side


def _write_random(path: Path, size: int, *, seed: int) -> Path:
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_packing_respects_the_budget_and_keeps_every_file(tmp_path: Path) -> None:
    sizes = [9_000, 7_500, 5_000, 5_000, 3_100, 2_000, 1_999, 800, 10, 1, 10_000]
    files = [_write_random(tmp_path / f"f{index}.whl", size, seed=index) for index, size in enumerate(sizes)]
    by_name = {path.name: path.stat().st_size for path in files}
    loads = gpu_box.pack(by_name, 10_000)

    packed = [name for load in loads for name in load]
    assert sorted(packed) == sorted(by_name)  # every file, once
    assert all(sum(by_name[name] for name in load) <= 10_000 for load in loads)
    assert len(loads) == -(-sum(sizes) // 10_000)  # these sizes pack without waste
    assert gpu_box.pack(by_name, 10_000) == loads  # deterministic
    with pytest.raises(ValueError, match="larger than a load"):
        gpu_box.pack(by_name, 9_999)


def test_a_split_file_joins_back_byte_identical_and_a_corrupt_part_is_refused(tmp_path: Path) -> None:
    model = _write_random(tmp_path / "model.bin", 100_003, seed=7)
    parts = gpu_box.split_file(model, tmp_path / "parts", part_bytes=30_000)
    assert [part.name for part in parts] == [f"model.bin.part{index}" for index in range(1, 5)]
    assert [part.stat().st_size for part in parts] == [30_000, 30_000, 30_000, 10_003]

    joined = gpu_box.join_parts(parts, tmp_path / "out" / "model.bin", size=100_003, sha256=_sha256(model))
    assert joined.read_bytes() == model.read_bytes()

    damaged = bytearray(parts[2].read_bytes())
    damaged[123] ^= 0xFF
    parts[2].write_bytes(bytes(damaged))
    target = tmp_path / "again" / "model.bin"
    with pytest.raises(gpu_box.CarryError, match="not the expected file"):
        gpu_box.join_parts(parts, target, size=100_003, sha256=_sha256(model))
    assert list(target.parent.iterdir()) == []  # no half-joined file, no temporary left


def _load(folder: Path, files: dict[str, bytes], *, claimed: dict[str, str] | None = None,
          elsewhere: int = 0) -> Path:
    """A load folder as `prepare` writes it: the files and a manifest that also lists `elsewhere` bytes in load 2."""
    folder.mkdir(parents=True)
    entries = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        sha = (claimed or {}).get(name, hashlib.sha256(data).hexdigest())
        entries.append({"name": name, "size": len(data), "sha256": sha, "load": 1, "kind": "wheel", "group": "main"})
    if elsewhere:
        entries.append({"name": "other.whl", "size": elsewhere, "sha256": "0" * 64, "load": 2, "kind": "wheel",
                        "group": "main"})
    manifest = {"plan": "test", "load": 1, "loads": 2 if elsewhere else 1, "files": entries,
                "groups": {"main": [1, 2] if elsewhere else [1]}, "python": "{}.{}".format(*sys.version_info[:2])}
    (folder / gpu_box.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_receive_copies_a_load_and_says_what_is_still_missing(tmp_path: Path) -> None:
    load = _load(tmp_path / "load-1", {"a.whl": b"alpha" * 100, "b.whl": b"beta"}, elsewhere=4096)
    report = gpu_box.receive(load, into=tmp_path / "box")
    assert sorted(report["received"]) == ["a.whl", "b.whl"]
    assert report["missing_loads"] == [2] and report["missing_bytes"] == 4096
    assert (tmp_path / "box" / "incoming" / "a.whl").read_bytes() == b"alpha" * 100


def test_install_refuses_while_a_load_is_missing(tmp_path: Path) -> None:
    gpu_box.receive(_load(tmp_path / "load-1", {"a.whl": b"alpha"}, elsewhere=10), into=tmp_path / "box")
    with pytest.raises(gpu_box.CarryError, match=r"not received \(loads 2\)"):
        gpu_box.install(into=tmp_path / "box")
    assert not (tmp_path / "box" / "site").exists()


def test_receive_refuses_a_file_whose_sha256_differs(tmp_path: Path) -> None:
    load = _load(tmp_path / "load-1", {"a.whl": b"alpha"}, claimed={"a.whl": hashlib.sha256(b"other").hexdigest()})
    with pytest.raises(gpu_box.CarryError, match="differs from the manifest"):
        gpu_box.receive(load, into=tmp_path / "box")
    assert not any(path.name.endswith("a.whl") for path in (tmp_path / "box" / "incoming").iterdir())


def test_working_tree_size_counts_tracked_and_unignored_files_only(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/ignored.bin\n")
    _write_random(tmp_path / "tracked.py", 1_000, seed=1)
    (tmp_path / "sub").mkdir()
    _write_random(tmp_path / "sub" / "tracked.dat", 2_345, seed=2)
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.py", "sub/tracked.dat"], check=True)
    _write_random(tmp_path / "untracked.txt", 300, seed=3)
    _write_random(tmp_path / "ignored.bin", 50_000, seed=4)

    expected = 1_000 + 2_345 + 300 + len("/ignored.bin\n")
    assert gpu_box.working_tree_bytes(tmp_path) == expected


def test_the_walk_stops_at_the_machine_and_carries_numerics(tmp_path: Path) -> None:
    def resolved(name: str, version: str, *requires: str):
        return gpu_carry.Resolved(name=name, version=version, filename=f"{name}.whl", url="", sha256=None,
                                  requires=requires)

    graph = {item.name: item for item in (
        resolved("app", "1.0", "numpy>=1.26", "rich>=13", "helper; extra == 'x'", "torch"),
        resolved("numpy", "2.4.6"),
        resolved("helper", "0.1", "huggingface-hub<1"),
        resolved("huggingface-hub", "0.36.0"),
        resolved("resemblyzer", "0.1.4", "webrtcvad>=2.0.10", "typing", "torch"),
        resolved("webrtcvad-wheels", "2.0.14.post1"),
        resolved("librosa", "0.11.0"),
    )}
    carried, from_box = gpu_carry.select(["app[x]==1.0", "resemblyzer==0.1.4"], graph, group="main")
    names = {item.name for item in carried}
    # numpy travels although the machine has it; rich stays; the machine's huggingface-hub 1.33 fails "<1";
    # resemblyzer's declared webrtcvad/typing/torch give way to the stand-ins in NO_DEPS.
    assert names == {"app", "numpy", "helper", "huggingface-hub", "resemblyzer", "webrtcvad-wheels", "librosa"}
    assert "rich" in from_box and "scipy" in from_box and "torch" not in from_box


def test_nearest_version_prefers_the_pin_or_just_below() -> None:
    assert gpu_carry.nearest_version("2.0.10", ["2.0.9", "2.0.14", "1.0"]) == "2.0.9"
    assert gpu_carry.nearest_version("1.0", ["1.2", "1.1"]) == "1.1"
    assert gpu_carry.nearest_version(None, ["1.2", "1.10"]) == "1.10"


def test_cuda_compat_links_cublas_12_names_to_the_machines_cublas_13(tmp_path: Path, monkeypatch) -> None:
    lib = tmp_path / "site-packages" / "nvidia" / "cu13" / "lib"
    lib.mkdir(parents=True)
    for name in ("libcublas.so.13.1.0", "libcublas.so.13", "libcublasLt.so.13"):
        (lib / name).write_bytes(b"\x7fELF")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site-packages")])

    report = gpu_box.make_cuda_compat(tmp_path / "box")

    compat = tmp_path / "box" / "cuda-compat"
    assert (compat / "libcublas.so.12").readlink() == lib / "libcublas.so.13"  # the soname, not the patch level
    assert (compat / "libcublasLt.so.12").readlink() == lib / "libcublasLt.so.13"
    assert report["dirs"] == [str(compat), str(lib)]
