"""A fault-injection soak of the nightly run (issue 11), shared by tests/test_soak.py (a few calls, minutes) and
bench/soak.py (hundreds of calls, an hour or two).

One night: `callqa run --source bitrix24` over a portal of many calls (the sample calls at other levels, with
line noise and longer pauses) on a real Dask cluster of worker processes, storing into S3 (moto's server) through
a proxy that fails or hangs a share of the writes, against a sandbox portal answering 30 % of requests with 503,
leaving writes unanswered, letting OAuth tokens die after a few requests and blocking one method once for its
operating time; workers are killed (and restarted) as calls get stored. Then the same night is run twice more, as
an operator would after a bad night. The figures: calls lost, comments posted twice, calls transcribed twice, and
the wall time against a clean night of the same calls.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from pipeline.audio import SAMPLE_RATE_HZ, decode_all
from pipeline.publish.comment import MARKER
from pipeline.sandbox import CallSpec, Portal, SandboxOptions, serve
from tests.audio_write import write_audio
from tests.conftest import SAMPLE_CALLS
from tests.services import dask_cluster, s3_fault_proxy, s3_server

CALLQA = Path(sys.executable).with_name("callqa")
MSK = timezone(timedelta(hours=3))
NIGHT = datetime(2026, 11, 28, tzinfo=MSK)
BUCKET = "callqa"
ACCESS = {"CALLQA_S3__ACCESS_KEY_ID": "soak", "CALLQA_S3__SECRET_ACCESS_KEY": "soak-secret"}


@dataclass(frozen=True)
class SoakPlan:
    """
    Attributes:
        calls: how many calls the night has.
        base_calls: which sample calls they are variants of (default: all).
        faults: inject the faults (False: the clean night to compare with).
        kill_every: kill a worker (and start it again) each time this many more calls are stored.
        s3_error_rate, s3_hang_rate: shares of S3 writes answered 503, or applied and left unanswered.
        portal_fail_rate: share of portal requests answered 503.
        unanswered_writes: portal writes applied and left unanswered.
        token_ttl_requests: OAuth access tokens die after this many requests.
        block_s: `disk.file.get` is refused once (OPERATION_TIME_LIMIT) a third into the night; the portal's ten-minute
            operating window is scaled down to this, so the reset the client waits for comes within it.
        timeout_s: the client's time-out for both S3 and the portal (a hang costs this much).
        reruns: how many times the night is run again after the first.
        stereo_strategy: how the runs transcribe stereo calls (None: the default; the suite's small soak, which is
            about faults and not words, takes the cheaper "mix").
    """

    calls: int
    base_calls: tuple[str, ...] = ()
    faults: bool = True
    kill_every: int = 10
    s3_error_rate: float = 0.05
    s3_hang_rate: float = 0.01
    portal_fail_rate: float = 0.3
    unanswered_writes: int = 2
    token_ttl_requests: int = 25
    block_s: float = 10.0
    timeout_s: float = 4.0
    reruns: int = 2
    workers: int = 2
    seed: int = 11
    stereo_strategy: str | None = None


@dataclass
class NightRun:
    wall_s: float
    returncode: int
    statuses: dict[str, str]

    def count(self, status: str) -> int:
        return sum(value == status for value in self.statuses.values())


@dataclass
class SoakReport:
    plan: SoakPlan
    calls: list[str]
    runs: list[NightRun]
    stored: set[str]
    comments_per_call: Counter
    kills: int
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> list[str]:
        """Calls of the night with no stored result after every run."""
        return sorted(set(self.calls) - self.stored)

    @property
    def duplicate_comments(self) -> int:
        return sum(count - 1 for count in self.comments_per_call.values() if count > 1)

    @property
    def uncommented(self) -> list[str]:
        return sorted(call for call in self.calls if call in self.stored and not self.comments_per_call[call])

    @property
    def transcribed_twice(self) -> list[str]:
        """Calls processed by more than one run: a re-run redid what an earlier run had stored."""
        processed = Counter(call for run in self.runs for call, status in run.statuses.items()
                            if status == "processed")
        return sorted(call for call, count in processed.items() if count > 1)

    @property
    def wall_s(self) -> float:
        return sum(run.wall_s for run in self.runs)

    def lines(self) -> list[str]:
        runs = "; ".join(f"run {index + 1}: {run.wall_s:.0f} s, processed {run.count('processed')}, "
                         f"skipped {run.count('skipped')}, failed {run.count('failed')}"
                         for index, run in enumerate(self.runs))
        return [f"calls {len(self.calls)}, lost {len(self.lost)}, comments posted twice {self.duplicate_comments}, "
                f"stored without a comment {len(self.uncommented)}, transcribed twice {len(self.transcribed_twice)}",
                f"workers killed {self.kills}; faults injected {self.faults}", runs]


def render_calls(folder: Path, plan: SoakPlan) -> list[tuple[Path, object]]:
    """`plan.calls` variants of the sample calls: another level (-12..+3 dB), line noise (none, 30 or 20 dB SNR)
    and up to 4 s more silence before the first word; each with the sample call it comes from."""
    bases = [call for call in SAMPLE_CALLS if not plan.base_calls or call.call_id in plan.base_calls]
    chance = random.Random(plan.seed)
    folder.mkdir(parents=True, exist_ok=True)
    decoded = {call.call_id: decode_all(call.stereo)[1] for call in bases}
    rendered = []
    for index in range(plan.calls):
        base = bases[index % len(bases)]
        samples = decoded[base.call_id] * 10 ** (chance.uniform(-12, 3) / 20)
        pause = np.zeros((2, int(chance.uniform(0, 4) * SAMPLE_RATE_HZ)), np.float32)
        samples = np.concatenate([pause, samples], axis=1)
        snr = chance.choice([None, 30, 20])
        if snr is not None:
            level = np.sqrt(np.mean(samples**2))
            noise = np.random.default_rng(index).normal(0, level * 10 ** (-snr / 20), samples.shape)
            samples = samples + noise.astype(np.float32)
        path = write_audio(folder / f"{index:04d}-{base.call_id}.mp3", np.clip(samples, -1, 1), SAMPLE_RATE_HZ,
                           bitrate=48_000)
        rendered.append((path, base))
    return rendered


def _seed_portal(rendered) -> Portal:
    portal = Portal()
    for index, (path, base) in enumerate(rendered):
        portal.add_call(CallSpec(audio=path, manager_id=str(30 + index % 5), manager_name=f"Менеджер {index % 5}",
                                 started_at=NIGHT + timedelta(hours=9, minutes=2 * index),
                                 incoming=base.direction == "in", deal_ids=[str(7000 + index)],
                                 duration_s=round(base.duration_s), manager_right=base.manager_channel == "right"))
    return portal


class _Killer(threading.Thread):
    """Kills a random worker each time `every` more calls are stored, and starts it again."""

    def __init__(self, cluster, s3, every: int, seed: int) -> None:
        super().__init__(name="soak-killer", daemon=True)
        self.cluster, self.s3, self.every = cluster, s3, every
        self.chance = random.Random(seed)
        self.stop = threading.Event()
        self.kills = 0

    def stored(self) -> int:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="store/calls/")
        return sum(item["Key"].endswith("/audio.json") for page in pages for item in page.get("Contents", []))

    def run(self) -> None:
        next_kill = self.every
        while not self.stop.wait(1.0):
            if self.stored() >= next_kill:
                index = self.chance.randrange(len(self.cluster.workers))
                self.cluster.kill_worker(index)
                self.kills += 1
                self.cluster.start_worker(index)
                next_kill += self.every


def _summary(s3, stdout: str) -> dict[str, str]:
    """The run's outcome per call, from the summary it stored (empty when it could not store one)."""
    from botocore.exceptions import ClientError

    marker = next((line for line in stdout.splitlines() if line.startswith("run ")), None)
    if marker is None:
        return {}
    run_id = marker.split()[1].rstrip(":")
    try:
        body = s3.get_object(Bucket=BUCKET, Key=f"store/runs/{run_id}.json")["Body"].read()
    except ClientError:
        return {}
    return {call["call_id"]: call["status"] for call in json.loads(body).get("calls", [])}


def soak(plan: SoakPlan, workdir: Path, *, progress=print) -> SoakReport:
    """Run the night (and its re-runs) and measure it."""
    import boto3

    workdir.mkdir(parents=True, exist_ok=True)
    rendered = render_calls(workdir / "calls", plan)
    portal = _seed_portal(rendered)
    faults = plan.faults
    options = SandboxOptions(
        fail_rate=plan.portal_fail_rate if faults else 0.0,
        unanswered_writes=plan.unanswered_writes if faults else 0,
        token_ttl_requests=plan.token_ttl_requests if faults else None,
        blocked_method="disk.file.get" if faults else None, block_after_calls=max(1, plan.calls // 3),
        operating_window_s=plan.block_s, seed=plan.seed)  # the portal's 10 minutes scaled down: the block's reset
    with s3_server(workdir / "moto.log") as upstream, \
            s3_fault_proxy(upstream, error_rate=plan.s3_error_rate if faults else 0.0,
                           hang_rate=plan.s3_hang_rate if faults else 0.0, seed=plan.seed) as (endpoint, proxy), \
            serve(portal, options) as sandbox, \
            dask_cluster(plan.workers, workdir) as cluster:
        s3 = boto3.client("s3", endpoint_url=upstream, region_name="us-east-1", aws_access_key_id="soak",
                          aws_secret_access_key="soak-secret")
        s3.create_bucket(Bucket=BUCKET)
        tokens = workdir / "tokens.json"
        access, refresh = sandbox.sandbox.issue_tokens()
        tokens.write_text(json.dumps({"access_token": access, "refresh_token": refresh}), encoding="utf-8")
        env = {**os.environ, **ACCESS, "CALLQA_DEVICE": "cpu", "CALLQA_S3__ENDPOINT_URL": endpoint,
               "CALLQA_S3__TIMEOUT_S": str(plan.timeout_s), "CALLQA_BITRIX24__TIMEOUT_S": str(plan.timeout_s),
               "CALLQA_BITRIX24__OAUTH__PORTAL": sandbox.base_url,
               "CALLQA_BITRIX24__OAUTH__CLIENT_ID": options.client_id,
               "CALLQA_BITRIX24__OAUTH__CLIENT_SECRET": options.client_secret,
               "CALLQA_BITRIX24__OAUTH__TOKEN_FILE": str(tokens),
               "CALLQA_BITRIX24__OAUTH__TOKEN_URL": f"{sandbox.base_url}/oauth/token/"}
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(name, None)
        if plan.stereo_strategy:
            env["CALLQA_STEREO_STRATEGY"] = plan.stereo_strategy
        killer = _Killer(cluster, s3, plan.kill_every, plan.seed) if faults and plan.kill_every else None
        if killer:
            killer.start()
        runs = []
        for attempt in range(1 + (plan.reruns if faults else 0)):
            started = time.perf_counter()
            done = subprocess.run([str(CALLQA), "run", "--source", "bitrix24", "--date", NIGHT.date().isoformat(),
                                   "--store", f"s3://{BUCKET}/store", "--scheduler", cluster.address],
                                  capture_output=True, text=True, env=env, timeout=6 * 3600)
            runs.append(NightRun(wall_s=round(time.perf_counter() - started, 1), returncode=done.returncode,
                                 statuses=_summary(s3, done.stdout)))
            (workdir / f"run-{attempt + 1}.out").write_text(done.stdout + done.stderr, encoding="utf-8")
            progress(f"run {attempt + 1}: {runs[-1].wall_s:.0f} s, exit {done.returncode}, "
                     f"{dict(Counter(runs[-1].statuses.values()))}")
            if killer and attempt == 0:
                killer.stop.set()  # the night's crashes; the re-runs meet only the flaky network
                killer.join()
        listed = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="store/calls/")
        stored = {item["Key"].split("/")[2] for page in listed for item in page.get("Contents", [])
                  if item["Key"].endswith("/result.json")}
    call_ids = [row["CALL_ID"] for row in portal.calls]
    comments = Counter()
    for comment in portal.comments.values():
        for call_id in call_ids:
            if f"{MARKER}{call_id}" in comment["COMMENT"]:
                comments[call_id] += 1
    injected = {**{f"portal_{name}": count for name, count in portal.rejected.items() if count},
                "s3_503": proxy.errors, "s3_hung": proxy.hangs}
    return SoakReport(plan=plan, calls=call_ids, runs=runs, stored=stored, comments_per_call=comments,
                      kills=killer.kills if killer else 0, faults=injected)
