"""The nightly batch on a GPU box (issue 16): audio hours per wall hour of `callqa run`, with what bounds it.

What it runs, for each setting (calls in flight on the GPU worker, `run.gpu_slots` x faster-whisper's batch size,
`asr.batch_size`): the real nightly run, `python -m pipeline run` (which is `callqa run`) on a LocalCluster, over
a folder of copies of the sample calls (stereo and mono spread evenly at --mono-share; the mono ones are diarized
by the embedded resemblyzer backend, on CUDA when torch sees it), into a fresh folder store. Then from the run's
own summary (`runs/<id>.json`: each call's transcription window and seconds per stage) and a GPU sampler:

- throughput: audio seconds per wall second end to end (start-up included) and in steady state (audio
  transcribed between the first call's end and the last call's start, pro rata, over that window);
- start-up apart: from the command's start to the first transcription (cluster, listing), the first call's own
  time (the model's load on the worker included), and the model's load time on the device alone;
- calls in flight over time (mean, max, share of the steady window at the full `gpu_slots`);
- GPU utilisation and memory over time (nvidia-smi every 0.5 s; on the CPU the machine's busy share instead);
- where the time goes: seconds per stage summed over the calls (fetch, decode, vad, asr, overlaps, speakers,
  audio_copy, derive, store). These are wall seconds of the calls' threads: with several calls in flight they
  overlap.

And apart from the batch (after it, in a process of its own), per audio minute: the embedded diarizer
(resemblyzer) and the pyannote backend's plumbing with the UNTRAINED stand-in pipeline (tests/pyannote_pipeline.py;
its labels mean nothing, its time is real), each on the device.

Rehearse on a CPU machine with a handful of calls (this machine, before a GPU box is lent):

    .venv/bin/python bench/gpu.py --device cpu --calls 6 --settings 1x4

On the GPU box after bench/gpu_box.py's install (its env.sh sets PYTHONPATH, the models and cuBLAS):

    . /tmp/callqa-gpu/env.sh && python3 bench/gpu.py --device cuda --calls 300 --settings 2x16,4x16,8x16

Results: a table on stdout and JSON in --out (default $OUT/gpu.json where $OUT is set, else bench/out/gpu.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.batch.job import RunSummary  # noqa: E402
from pipeline.support.stages import STAGES  # noqa: E402

CALLS = REPO / "tests" / "data" / "calls"
SAMPLE_S = 0.5


@dataclass(frozen=True)
class Setting:
    gpu_slots: int
    batch_size: int

    @classmethod
    def parse(cls, text: str) -> Setting:
        slots, _, batch = text.partition("x")
        return cls(gpu_slots=int(slots), batch_size=int(batch))

    def __str__(self) -> str:
        return f"{self.gpu_slots}x{self.batch_size}"


@dataclass
class Measured:
    setting: str
    calls: int
    processed: int
    failed: int
    audio_s: float
    wall_s: float
    startup_s: float  # the command's start to the first transcription's start (cluster, listing, planning)
    first_call_s: float  # the first transcription, the model's load on the worker included
    steady_window_s: float
    realtime_end_to_end: float
    realtime_steady: float
    in_flight_mean: float
    in_flight_max: int
    at_full_slots: float  # share of the steady window with gpu_slots calls in flight
    utilisation_mean: float | None  # GPU (or CPU on a CPU run) busy share over the steady window, percent
    utilisation_p10: float | None
    memory_max_mib: float | None
    sampler_problem: str | None  # why utilisation is missing or partial (None: sampled throughout)
    stage_s: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # Over time, seconds from the command's start: (t, busy %, memory MiB) every SAMPLE_S, (t, calls in flight)
    series_busy: list[tuple[float, float, float | None]] = field(default_factory=list)
    series_in_flight: list[tuple[float, int]] = field(default_factory=list)


# ---- the source: copies of the sample calls ----

def make_source(folder: Path, calls: int, mono_share: float) -> float:
    """`calls` copies of the sample calls (hard links) with a manifest; returns their audio seconds."""
    from pipeline.audio import probe

    with (CALLS / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    stereo = [row for row in rows if row["file"].endswith(".stereo.mp3")]
    mono = [row for row in rows if row["file"].endswith(".mono.mp3")]
    durations = {row["file"]: probe(CALLS / row["file"]).declared_duration_s or 0.0 for row in stereo + mono}
    folder.mkdir(parents=True)
    chosen, audio_s = [], 0.0
    mono_taken = 0
    for index in range(calls):
        # Mono calls spread evenly through the night: the share asked for, never bunched at the end.
        take_mono = mono and mono_taken < round((index + 1) * mono_share)
        pool = mono if take_mono else stereo
        mono_taken += bool(take_mono)
        row = dict(pool[index % len(pool)])
        name = f"{index:05d}-{row['file']}"
        target = folder / name
        try:
            os.link(CALLS / row["file"], target)
        except OSError:  # another file system
            shutil.copy(CALLS / row["file"], target)
        audio_s += durations[row["file"]]
        chosen.append({**row, "file": name, "call_id": f"{row['call_id']}-{index:05d}"})
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(chosen[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return audio_s


# ---- sampling the device while a run goes ----

class Sampler(threading.Thread):
    """(time, busy percent, memory MiB) every SAMPLE_S: nvidia-smi for a GPU, /proc/stat for the CPU."""

    def __init__(self, device: str) -> None:
        super().__init__(name="gpu-bench-sampler", daemon=True)
        self.device = device
        self.samples: list[tuple[float, float, float | None]] = []
        self.stop = threading.Event()
        self.error: str | None = None
        self.skipped: list[str] = []  # lines nvidia-smi printed that were no sample ("[N/A]", messages)

    def problem(self) -> str | None:
        if self.error:
            return self.error
        if self.skipped:
            return f"{len(self.skipped)} line(s) not understood, e.g. {self.skipped[0]!r}"
        return None if self.samples else "no sample taken"

    def run(self) -> None:
        if self.device == "cuda":
            self._nvidia_smi()
        else:
            self._proc_stat()

    def _nvidia_smi(self) -> None:
        command = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                   f"-lms={int(SAMPLE_S * 1000)}"]
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as error:
            self.error = f"nvidia-smi: {error}"
            return
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if self.stop.is_set():
                    break
                try:
                    busy, memory = (float(part) for part in line.split(",")[:2])
                except ValueError:
                    self.skipped.append(line.strip())
                    continue
                self.samples.append((time.time(), busy, memory))
        finally:
            process.terminate()
            if process.wait() not in (0, -15) and not self.samples:
                self.error = f"nvidia-smi exited {process.returncode}: {' / '.join(self.skipped[-3:])}"

    def _proc_stat(self) -> None:
        def read() -> tuple[int, int]:
            fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
            idle = fields[3] + fields[4]
            return sum(fields), idle

        last_total, last_idle = read()
        while not self.stop.wait(SAMPLE_S):
            total, idle = read()
            if total > last_total:
                self.samples.append((time.time(), 100.0 * (1 - (idle - last_idle) / (total - last_total)), None))
            last_total, last_idle = total, idle


# ---- one setting ----

def _in_flight(windows: list[tuple[float, float]], start: float, end: float) -> tuple[float, int, dict[int, float]]:
    """Mean and max calls in flight over [start, end], and the seconds spent at each count."""
    events = sorted([(begin, 1) for begin, _ in windows] + [(finish, -1) for _, finish in windows])
    level, last, at = 0, start, {}
    peak = 0
    for moment, step in events:
        clipped = min(max(moment, start), end)
        if clipped > last:
            at[level] = at.get(level, 0.0) + clipped - last
            last = clipped
        level += step
        if start <= moment <= end:
            peak = max(peak, level)
    if end > last:
        at[level] = at.get(level, 0.0) + end - last
    span = max(end - start, 1e-9)
    return sum(count * seconds for count, seconds in at.items()) / span, peak, at


def _steady_audio(outcomes, start: float, end: float) -> float:
    """Audio seconds transcribed inside [start, end], each call counted pro rata to its window's overlap."""
    audio = 0.0
    for outcome in outcomes:
        begin, finish = outcome.transcribing
        overlap = max(0.0, min(finish, end) - max(begin, start))
        audio += outcome.audio_s * overlap / max(finish - begin, 1e-9)
    return audio


@dataclass
class Ran:
    """One `callqa run` as the benchmark saw it: its summary, the command's times and the sampler."""

    summary: RunSummary
    started: float  # Unix seconds
    wall_s: float
    sampler: Sampler


def run_setting(setting: Setting, source: Path, scratch: Path, *, device: str, timeout_s: float) -> Ran:
    """The nightly run over `source` into a fresh store with this setting, sampled; its stored summary.

    Raises:
        SystemExit: the run stored no summary (it failed, or ran past `timeout_s`).
    """
    store = scratch / f"store-{setting}"
    env = {**os.environ, "CALLQA_DEVICE": device, "CALLQA_RUN__GPU_SLOTS": str(setting.gpu_slots),
           "CALLQA_ASR__BATCH_SIZE": str(setting.batch_size), "PYTHONUNBUFFERED": "1"}
    sampler = Sampler(device)
    sampler.start()
    started = time.time()
    try:
        process = subprocess.run([sys.executable, "-m", "pipeline", "run", "--source", str(source), "--store",
                                  str(store)], env=env, capture_output=True, text=True, cwd=REPO, timeout=timeout_s)
        ending = f"exit {process.returncode}:\n{process.stderr[-4000:]}"
    except subprocess.TimeoutExpired:
        ending = f"stopped after {timeout_s:.0f} s (--budget-s)"
    wall_s = time.time() - started
    sampler.stop.set()
    sampler.join(timeout=5)
    summaries = sorted((store / "runs").glob("*.json")) if (store / "runs").is_dir() else []
    if not summaries:
        raise SystemExit(f"setting {setting}: the run stored no summary ({ending})")
    return Ran(summary=RunSummary.model_validate_json(summaries[-1].read_bytes()), started=started, wall_s=wall_s,
               sampler=sampler)


def summarise(setting: Setting, ran: Ran, *, calls: int) -> Measured:
    """The figures of one run (see the module's docstring)."""
    outcomes = ran.summary.calls
    processed = [outcome for outcome in outcomes if outcome.status == "processed" and outcome.transcribing]
    failures = [f"{outcome.call_id}: {outcome.reason}" for outcome in outcomes if outcome.status == "failed"]
    if not processed:
        raise SystemExit(f"setting {setting}: no call was transcribed; failures: {failures[:5]}")
    # Failed calls held a slot too, while they lasted.
    windows = [outcome.transcribing for outcome in outcomes if outcome.transcribing]
    first = min(windows)
    last_begin = max(begin for begin, _ in windows)
    # Steady state: from the first call's end (the model loaded and warm) to the last call's start (no tail).
    steady_start = min(end for _, end in windows)
    steady_end = last_begin if last_begin > steady_start else max(end for _, end in windows)
    steady_s = max(steady_end - steady_start, 1e-9)
    mean_flight, max_flight, seconds_at = _in_flight(windows, steady_start, steady_end)
    samples = ran.sampler.samples
    steady_busy = sorted(busy for moment, busy, _ in samples if steady_start <= moment <= steady_end)
    memory = [used for _, _, used in samples if used is not None]
    stage_totals: dict[str, float] = {}
    for outcome in processed:
        for name, seconds in outcome.stage_s.items():
            stage_totals[name] = stage_totals.get(name, 0.0) + seconds
    audio_s = sum(outcome.audio_s for outcome in processed)
    return Measured(
        setting=str(setting), calls=calls, processed=len(processed), failed=len(failures), audio_s=round(audio_s, 1),
        wall_s=round(ran.wall_s, 1), startup_s=round(first[0] - ran.started, 1),
        first_call_s=round(first[1] - first[0], 1), steady_window_s=round(steady_s, 1),
        realtime_end_to_end=round(audio_s / ran.wall_s, 1),
        realtime_steady=round(_steady_audio(processed, steady_start, steady_end) / steady_s, 1),
        in_flight_mean=round(mean_flight, 2), in_flight_max=max_flight,
        at_full_slots=round(sum(seconds for count, seconds in seconds_at.items() if count >= setting.gpu_slots)
                            / steady_s, 3),
        utilisation_mean=round(statistics.fmean(steady_busy), 1) if steady_busy else None,
        utilisation_p10=round(steady_busy[len(steady_busy) // 10], 1) if steady_busy else None,
        memory_max_mib=max(memory) if memory else None,
        sampler_problem=ran.sampler.problem(),
        stage_s={name: round(stage_totals[name], 1) for name in (*STAGES, *sorted(set(stage_totals) - set(STAGES)))
                 if name in stage_totals},
        failures=failures[:10],
        series_busy=[(round(moment - ran.started, 1), busy, used) for moment, busy, used in samples],
        series_in_flight=_flight_series(windows, ran.started))


def _flight_series(windows: list[tuple[float, float]], origin: float) -> list[tuple[float, int]]:
    """Calls in flight after each start and end, seconds from `origin`."""
    events = sorted([(begin, 1) for begin, _ in windows] + [(end, -1) for _, end in windows])
    level, series = 0, []
    for moment, step in events:
        level += step
        series.append((round(moment - origin, 2), level))
    return series


# ---- apart from the batch ----

def model_load_s(device: str) -> float:
    """Seconds to load whisper-base onto the device, once, in this process (the worker pays this once too)."""
    from faster_whisper import WhisperModel

    import models
    from pipeline.settings import load_settings

    settings = load_settings()  # CALLQA_MODEL and CALLQA_MODELS_DIR as the run sees them
    path = models.resolve(settings.model, cache_dir=settings.models_dir).path
    started = time.perf_counter()
    WhisperModel(str(path), device=device, compute_type="float16" if device == "cuda" else "int8")
    return round(time.perf_counter() - started, 2)


def diarizers_per_minute(device: str, scratch: Path) -> dict[str, float | str]:
    """Seconds per audio minute of each diarizer on the mono sample calls, on `device` (the embedded one uses CUDA
    whenever torch sees it)."""
    import warnings

    from pipeline.audio import SAMPLE_RATE_HZ, decode_all
    from pipeline.speakers import load_diarizer
    from pipeline.speakers.diarization import PyannoteOptions, SpeakerOptions

    audio = [decode_all(path)[1][0] for path in sorted(CALLS.glob("*.mono.mp3"))]
    minutes = sum(len(samples) for samples in audio) / SAMPLE_RATE_HZ / 60

    def per_minute(diarizer, calls: list) -> float:
        warm = diarizer.session()  # weights onto the device before the clock
        warm.add(calls[0][: 10 * SAMPLE_RATE_HZ], offset_s=0.0)
        warm.finish()
        started = time.perf_counter()
        for samples in calls:
            session = diarizer.session()
            session.add(samples, offset_s=0.0)
            session.finish()
        return round((time.perf_counter() - started) / (sum(len(c) for c in calls) / SAMPLE_RATE_HZ / 60), 3)

    figures: dict[str, float | str] = {"audio_min": round(minutes, 2)}
    try:
        figures["embedded_s_per_min"] = per_minute(load_diarizer(SpeakerOptions(diarizer="embedded")), audio)
    except Exception as error:  # a figure missing is reported, not fatal: the batch figures still count
        figures["embedded_error"] = f"{type(error).__name__}: {error}"
    try:
        from tests.pyannote_pipeline import build_untrained_pipeline

        folder = build_untrained_pipeline(scratch / "pyannote-standin")
        # VBx averages empty slices on untrained weights: the stand-in's noise, not a finding.
        warnings.filterwarnings("ignore", "Mean of empty slice")
        warnings.filterwarnings("ignore", "invalid value encountered")
        figures["pyannote_standin_s_per_min"] = per_minute(load_diarizer(SpeakerOptions(
            diarizer="pyannote", pyannote=PyannoteOptions(pipeline_dir=folder, device=device))), audio[:2])
    except Exception as error:
        figures["pyannote_error"] = f"{type(error).__name__}: {error}"
    return figures


def environment(device: str) -> dict[str, str]:
    import ctranslate2

    facts = {"python": platform.python_version(), "machine": platform.machine(), "cores": str(os.cpu_count()),
             "ctranslate2": ctranslate2.__version__, "cuda_devices": str(ctranslate2.get_cuda_device_count())}
    if device == "cuda":
        try:
            facts["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                           "--format=csv,noheader"], capture_output=True, text=True,
                                          check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as error:
            facts["gpu"] = f"unknown ({error})"
    return facts


def _print(measured: list[Measured], apart: dict) -> None:
    print(f"\napart from the runs: {apart or 'not measured'}")
    print("\n| setting (slots x batch) | calls | audio h | wall s | start-up s | first call s | x realtime end to end"
          " | x realtime steady | in flight mean / max / at full | busy % mean / p10 | memory MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in measured:
        print(f"| {m.setting} | {m.processed}/{m.calls} | {m.audio_s / 3600:.2f} | {m.wall_s} | {m.startup_s} | "
              f"{m.first_call_s} | {m.realtime_end_to_end} | {m.realtime_steady} | {m.in_flight_mean} / "
              f"{m.in_flight_max} / {m.at_full_slots:.0%} | {m.utilisation_mean} / {m.utilisation_p10} | "
              f"{m.memory_max_mib} |")
    for m in measured:
        total = sum(m.stage_s.values()) or 1.0
        shares = ", ".join(f"{name} {seconds:.0f} s ({seconds / total:.0%})" for name, seconds in m.stage_s.items())
        print(f"stages {m.setting}: {shares}")
        for failure in m.failures:
            print(f"  failed: {failure}")


def _write(out: Path, device: str, facts: dict, apart: dict, measured: list[Measured]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "environment": facts, "apart": apart,
                               "settings": [asdict(m) for m in measured]}, indent=2, ensure_ascii=False))


def apart_in_child(device: str, budget_s: float) -> dict:
    """The model-load and diarizer figures, measured in a process of their own so that their weights and CUDA
    context neither linger on the GPU during the runs nor count in the runs' memory."""
    try:
        done = subprocess.run([sys.executable, __file__, "--apart-only", "--device", device], capture_output=True,
                              text=True, cwd=REPO, timeout=max(budget_s, 30.0))
    except subprocess.TimeoutExpired:
        return {"error": f"not measured: no answer within {max(budget_s, 30.0):.0f} s"}
    if done.returncode != 0 or not done.stdout.strip():
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _write(out: Path, device: str, facts: dict, apart: dict, measured: list[Measured]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "environment": facts, "apart": apart,
                               "settings": [asdict(m) for m in measured]}, indent=2, ensure_ascii=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--mono-share", type=float, default=0.5)
    parser.add_argument("--settings", default="2x16,4x16,8x16",
                        help="comma-separated SLOTSxBATCH: run.gpu_slots x asr.batch_size")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="the whole benchmark's time (a lent machine's command has 600 s): a run still going "
                             "at the end is stopped, no setting starts that would not end in time, and what was "
                             "measured is written after each setting")
    parser.add_argument("--no-apart", action="store_true", help="skip the model-load and diarizer figures")
    parser.add_argument("--apart-only", action="store_true", help=argparse.SUPPRESS)  # the child of apart_in_child
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.apart_only:
        with tempfile.TemporaryDirectory(prefix="callqa-gpu-apart-") as tmp:
            print(json.dumps({"model_load_s": model_load_s(args.device),
                              "diarizers": diarizers_per_minute(args.device, Path(tmp))}))
        return 0
    began = time.perf_counter()
    out = args.out or (Path(os.environ["OUT"]) / "gpu.json" if os.environ.get("OUT")
                       else REPO / "bench" / "out" / "gpu.json")
    settings = [Setting.parse(text) for text in args.settings.split(",")]
    facts = environment(args.device)
    print("environment:", facts, flush=True)
    measured: list[Measured] = []
    apart: dict = {}
    with tempfile.TemporaryDirectory(prefix="callqa-gpu-bench-") as tmp:
        scratch = Path(tmp)
        audio_s = make_source(scratch / "calls", args.calls, args.mono_share)
        print(f"{args.calls} calls, {audio_s / 3600:.2f} h of audio", flush=True)
        for setting in settings:
            left = args.budget_s - (time.perf_counter() - began)
            if measured and measured[-1].wall_s > left:
                print(f"{setting}: not run, {left:.0f} s of the budget left", flush=True)
                continue
            ran = run_setting(setting, scratch / "calls", scratch, device=args.device, timeout_s=max(left, 30.0))
            measured.append(summarise(setting, ran, calls=args.calls))
            _write(out, args.device, facts, apart, measured)
            result = measured[-1]
            print(f"{setting}: {result.realtime_end_to_end}x end to end, {result.realtime_steady}x steady, "
                  f"{result.processed}/{result.calls} calls in {result.wall_s} s", flush=True)
            shutil.rmtree(scratch / f"store-{setting}", ignore_errors=True)
    if not args.no_apart:
        apart = apart_in_child(args.device, args.budget_s - (time.perf_counter() - began))
    _print(measured, apart)
    _write(out, args.device, facts, apart, measured)
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
