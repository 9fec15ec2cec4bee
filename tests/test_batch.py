"""`callqa run` with real parts: Dask clusters of real processes, an S3 server on loopback, the real model.

Each test runs the command as a user would, in its own process, and reads what it left in the store.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from pipeline.derive import derive
from pipeline.schema import CallResult
from pipeline.settings import Settings
from pipeline.transcript import Transcript
from tests.conftest import CALLS, SAMPLE_CALLS
from tests.services import dask_cluster, s3_server

CALLQA = Path(sys.executable).with_name("callqa")
SHORT_CALLS = sorted(SAMPLE_CALLS, key=lambda call: call.duration_s)[:4]  # about 45 s each
SECRET = "callqa-test-secret-8f3a91c2"
ACCESS_KEY = "AKIACALLQATEST00042"


def make_source(folder: Path, calls=SHORT_CALLS[:3], *, extra_rows: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for call in calls:
        shutil.copy(call.stereo, folder / call.stereo.name)
        rows.append({"file": call.stereo.name, "call_id": call.call_id, "direction": call.direction,
                     "started_at": "2026-11-28T10:00:00+03:00", "manager_channel": call.manager_channel})
    rows += extra_rows or []
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "call_id", "direction", "started_at",
                                                    "manager_channel"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


# These tests are about the batch's orchestration (claims, kills, stores, memory), not about which words are heard,
# so they transcribe stereo calls the cheaper way, the plain mix. The one test that compares a run's words with
# `callqa analyze`'s asks for the default strategy (DEFAULT_STEREO_STRATEGY), as do tests/test_stereo_calls.py.
ORCHESTRATION_STEREO_STRATEGY = "mix"
DEFAULT_STEREO_STRATEGY = Settings.model_fields["stereo_strategy"].default


def env(**extra: str) -> dict:
    return {**os.environ, "CALLQA_DEVICE": "cpu", "CALLQA_STEREO_STRATEGY": ORCHESTRATION_STEREO_STRATEGY, **extra}


def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CALLQA), "run", *args], capture_output=True, text=True, timeout=900,
                          env=env(**extra_env))


def start(*args: str, logs: Path, **extra_env: str) -> subprocess.Popen:
    """The run in the background, in its own process group (so that killing it kills its LocalCluster too)."""
    return subprocess.Popen([str(CALLQA), "run", *args], stdout=(logs / "run.out").open("wb"),
                            stderr=(logs / "run.err").open("wb"), env=env(**extra_env), start_new_session=True)


def wait_until(condition, timeout_s: float = 300.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(0.2)


def run_summary(store: Path, stdout: str) -> dict:
    run_id = re.search(r"^run (\S+):", stdout, re.M).group(1)
    return json.loads((store / "runs" / f"{run_id}.json").read_text(encoding="utf-8"))


def summary_started(summary: dict) -> float:
    return datetime.fromisoformat(summary["started_at"]).timestamp()


def statuses(summary: dict) -> dict[str, str]:
    return {call["call_id"]: call["status"] for call in summary["calls"]}


def _decoded(path: Path) -> tuple[int, float]:
    """(channels, seconds) of what PyAV decodes from an audio file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return stream.channels, sum(frame.samples for frame in container.decode(stream)) / stream.rate


def _words(result: CallResult) -> list[tuple[float, float, str, str | None]]:
    return [(word.start, word.end, word.text, word.role) for word in result.words]


def test_a_folder_into_a_folder_then_resumed_rescored_and_windowed(tmp_path: Path, stereo_results,
                                                                   derive_setup) -> None:
    source, store = make_source(tmp_path / "calls"), tmp_path / "store"
    default = {"CALLQA_STEREO_STRATEGY": DEFAULT_STEREO_STRATEGY}  # as stereo_results were transcribed
    done = run("--source", str(source), "--store", str(store), **default)
    assert done.returncode == 0, done.stderr
    summary = run_summary(store, done.stdout)
    assert statuses(summary) == {call.call_id: "processed" for call in SHORT_CALLS[:3]}
    for outcome in summary["calls"]:
        # Where each call's time went, and when it was transcribed: what an operator of the GPU box reads.
        stages = outcome["stage_s"]
        assert {"fetch", "decode", "vad", "asr", "speakers", "derive", "store"} <= set(stages), stages
        assert all(seconds >= 0 for seconds in stages.values()) and stages["asr"] > 0
        begun, ended = outcome["transcribing"]
        assert summary_started(summary) - 1 <= begun < ended
        assert stages["decode"] + stages["vad"] + stages["asr"] <= ended - begun + 0.01
    first_words = {}
    for call in SHORT_CALLS[:3]:
        folder = store / "calls" / call.call_id
        facts = json.loads((folder / "audio.json").read_text(encoding="utf-8"))
        assert facts["sha256"] == hashlib.sha256(call.stereo.read_bytes()).hexdigest()
        assert facts["run_id"] == summary["run_id"]
        transcript = Transcript.model_validate_json((folder / "transcript.json").read_bytes())
        result = CallResult.from_json((folder / "result.json").read_text(encoding="utf-8"))
        assert result.score is not None and result.hits
        # The stored result is the transcript derived, nothing patched on top.
        assert derive(transcript, derive_setup) == result and result.source.uri == str(source / call.stereo.name)
        assert [(w.start, w.end, w.text) for w in result.words] == [(w.start, w.end, w.text) for w in transcript.words]
        assert result.direction == call.direction
        # The copy for playback, Opus in WebM, stored by the step that transcribed the call.
        channels, seconds = _decoded(folder / "audio.webm")
        assert channels == 2 and abs(seconds - result.duration_s) < 0.1
        # One call, one result: the words (and their times) through `callqa analyze`'s code path in this process,
        # with BLAS and CTranslate2 on every core, are the words of a Dask worker process held to one thread.
        analyzed = stereo_results[call.call_id]
        assert _words(result) == _words(analyzed)
        assert result.metrics == analyzed.metrics and result.score == analyzed.score
        first_words[call.call_id] = _words(result)

    # ... and of a forced re-run on a single worker.
    single = run("--source", str(source), "--store", str(store), "--workers", "1", "--force", **default)
    assert single.returncode == 0, single.stderr
    assert set(statuses(run_summary(store, single.stdout)).values()) == {"processed"}
    for call in SHORT_CALLS[:3]:
        again = CallResult.from_json((store / "calls" / call.call_id / "result.json").read_text(encoding="utf-8"))
        assert _words(again) == first_words[call.call_id]
    before = {path: path.stat().st_mtime_ns for path in store.glob("calls/*/*.json")}

    again = run("--source", str(source), "--store", str(store), **default)
    assert again.returncode == 0, again.stderr
    assert set(statuses(run_summary(store, again.stdout)).values()) == {"skipped"}
    assert {path: path.stat().st_mtime_ns for path in store.glob("calls/*/*.json")} == before

    rescored = run("--source", str(source), "--store", str(store), "--rescore", **default)
    assert rescored.returncode == 0, rescored.stderr
    assert set(statuses(run_summary(store, rescored.stdout)).values()) == {"rescored"}

    other_day = run("--source", str(source), "--store", str(store), "--date", "2026-11-29", **default)
    assert other_day.returncode == 0 and "run " in other_day.stdout and ": 0 calls" in other_day.stdout


def test_bad_recordings_fail_alone(tmp_path: Path) -> None:
    source = make_source(tmp_path / "calls", SHORT_CALLS[:1], extra_rows=[
        {"file": "notes.mp3", "call_id": "text-file"},
        {"file": "cut.mp3", "call_id": "truncated"},
        {"file": "gone.mp3", "call_id": "missing"},
    ])
    (source / "notes.mp3").write_text("не запись\n", encoding="utf-8")
    data = SHORT_CALLS[1].stereo.read_bytes()
    (source / "cut.mp3").write_bytes(data[: len(data) // 2])
    store = tmp_path / "store"
    # With stored transcripts redacted, and audio_copy left unset, no copy of the audio is kept.
    done = run("--source", str(source), "--store", str(store), CALLQA_BITRIX24__REDACT_STORED_TRANSCRIPTS="true")
    assert done.returncode == 1, done.stderr
    summary = run_summary(store, done.stdout)
    reasons = {call["call_id"]: call["reason"] for call in summary["calls"]}
    assert statuses(summary) == {SHORT_CALLS[0].call_id: "processed", "text-file": "failed", "truncated": "failed",
                                 "missing": "failed"}
    assert "not a readable audio file" in reasons["text-file"]
    assert "truncated" in reasons["truncated"] and str(source / "cut.mp3") in reasons["truncated"]
    assert "recording not found" in reasons["missing"]
    assert sorted(p.name for p in (store / "calls").iterdir()) == [SHORT_CALLS[0].call_id]
    assert sorted(p.name for p in (store / "calls" / SHORT_CALLS[0].call_id).iterdir()) == [
        "audio.json", "result.json", "transcript.json"]


def test_killed_run_resumes_without_redoing_finished_calls(tmp_path: Path) -> None:
    source, store = make_source(tmp_path / "calls"), tmp_path / "store"
    # Claims that lapse 10 s after the run stops renewing them, so the resumed run takes the killed run's calls
    # over soon (the default is 15 minutes).
    scratch = tmp_path / "tmp"  # the runs' temporary folder
    scratch.mkdir()
    process = start("--source", str(source), "--store", str(store), logs=tmp_path, CALLQA_RUN__CLAIM_TTL_S="10",
                    TMPDIR=str(scratch))
    wait_until(lambda: any(store.glob("calls/*/audio.json")), what="the first call to be stored")
    os.killpg(process.pid, signal.SIGKILL)  # the run and its LocalCluster, mid-batch
    process.wait()
    finished = {path.parent.name: path.read_bytes() for path in store.glob("calls/*/audio.json")}
    assert 1 <= len(finished) < 3
    assert list(scratch.glob("callqa-recordings-*"))  # the killed workers' folders, which nobody removed

    done = run("--source", str(source), "--store", str(store), CALLQA_RUN__CLAIM_TTL_S="10", TMPDIR=str(scratch))
    assert done.returncode == 0, done.stderr
    assert not list(scratch.glob("callqa-*"))  # swept by the next run's workers, and theirs removed after it
    outcome = statuses(run_summary(store, done.stdout))
    assert {call_id for call_id, status in outcome.items() if status == "skipped"} == set(finished)
    assert {call_id for call_id, status in outcome.items() if status == "processed"} == (
        {call.call_id for call in SHORT_CALLS[:3]} - set(finished))
    for call_id, facts in finished.items():  # nothing finished was redone
        assert (store / "calls" / call_id / "audio.json").read_bytes() == facts


def test_two_runs_at_once_transcribe_each_call_once(tmp_path: Path) -> None:
    """Cron starts the next night while the last still runs: the runs share the calls, none is done twice."""
    source, store = make_source(tmp_path / "calls"), tmp_path / "store"
    (tmp_path / "a").mkdir()
    first = start("--source", str(source), "--store", str(store), "--workers", "1", logs=tmp_path / "a",
                  CALLQA_RUN__MAX_IN_FLIGHT="1")
    wait_until(lambda: any(store.glob("calls/*/claim.json")), what="the first run to claim a call")
    second = run("--source", str(source), "--store", str(store), "--workers", "1")
    assert first.wait(600) == 0, (tmp_path / "a" / "run.err").read_text()
    assert second.returncode == 0, second.stderr
    summaries = [run_summary(store, (tmp_path / "a" / "run.out").read_text()), run_summary(store, second.stdout)]
    for call in SHORT_CALLS[:3]:
        outcomes = [next(o for o in summary["calls"] if o["call_id"] == call.call_id) for summary in summaries]
        assert sorted(o["status"] for o in outcomes) == ["processed", "skipped"], outcomes
        doer = next(summary["run_id"] for summary, o in zip(summaries, outcomes) if o["status"] == "processed")
        other = next(o for o in outcomes if o["status"] == "skipped")
        assert f"being analysed by run {doer}" in other["reason"] or other["reason"].startswith("done:")
        facts = json.loads((store / "calls" / call.call_id / "audio.json").read_text(encoding="utf-8"))
        assert facts["run_id"] == doer
        assert not (store / "calls" / call.call_id / "claim.json").exists()  # removed once the call was stored


def test_a_crashed_runs_claim_holds_its_call_only_until_it_lapses(tmp_path: Path) -> None:
    source, store = make_source(tmp_path / "calls", SHORT_CALLS[:1]), tmp_path / "store"
    call_id = SHORT_CALLS[0].call_id
    claim = {"schema": "callqa.claim/1", "call_id": call_id, "run_id": "crashed", "claimed_at": "2026-11-28T02:15:00Z"}
    (store / "calls" / call_id).mkdir(parents=True)
    claim_file = store / "calls" / call_id / "claim.json"
    claim_file.write_text(json.dumps({**claim, "expires_at": "2999-01-01T00:00:00Z"}), encoding="utf-8")
    # It waits a whole claim lifetime (5 s here) for the claim to go, then reports the call as held.
    held = run("--source", str(source), "--store", str(store), CALLQA_RUN__CLAIM_TTL_S="5")
    assert held.returncode == 0, held.stderr
    summary = run_summary(store, held.stdout)
    assert statuses(summary) == {call_id: "skipped"}
    assert summary["calls"][0]["reason"].startswith("being analysed by run crashed (its claim lapses at 2999-")
    claim_file.write_text(json.dumps({**claim, "expires_at": "2026-11-28T02:30:00Z"}), encoding="utf-8")
    taken = run("--source", str(source), "--store", str(store))
    assert taken.returncode == 0, taken.stderr
    assert statuses(run_summary(store, taken.stdout)) == {call_id: "processed"}


def test_a_worker_killed_mid_batch_loses_no_call(tmp_path: Path) -> None:
    source, store = make_source(tmp_path / "calls", SHORT_CALLS), tmp_path / "store"
    with dask_cluster(2, tmp_path) as cluster:
        process = start("--source", str(source), "--store", str(store), "--scheduler", cluster.address,
                        logs=tmp_path)
        wait_until(lambda: any(store.glob("calls/*/audio.json")), what="the first call to be stored")
        cluster.kill_worker(0)
        assert process.wait(600) == 0, (tmp_path / "run.err").read_text()
    out = (tmp_path / "run.out").read_text(encoding="utf-8")
    summary = run_summary(store, out)
    assert sorted(call["call_id"] for call in summary["calls"]) == sorted(c.call_id for c in SHORT_CALLS)
    assert set(statuses(summary).values()) == {"processed"}
    for call in SHORT_CALLS:  # each stored once, by this run
        facts = json.loads((store / "calls" / call.call_id / "audio.json").read_text(encoding="utf-8"))
        assert facts["run_id"] == summary["run_id"]
        assert CallResult.from_json((store / "calls" / call.call_id / "result.json").read_text()).score


def _peak_resident_mb(process: subprocess.Popen) -> float:
    """The most memory the process has held resident so far (VmHWM), MB."""
    status = Path(f"/proc/{process.pid}/status").read_text(encoding="utf-8")
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024


def test_a_four_hour_call_in_a_batch_keeps_the_worker_s_memory_bounded(tmp_path: Path) -> None:
    """A short call followed by 20 minutes, then by four hours, of line hiss (a line left open) as a PBX stores
    it (G.711 a-law, 8 kHz, stereo), through `callqa run` on one Dask worker process. Decoded and transcribed in
    10-minute blocks, the four-hour call needs no more memory than the 20-minute one: both peak at one block's
    working memory (the block, and faster-whisper's VAD over up to 10 000 windows of it: about 220 MB over a
    one-minute call, measured). Decoded whole, it would hold 1.8 GB more than the 20-minute call, and its file's
    bytes passed between the steps 220 MB. Peaks are compared between two long calls, not against a short one,
    because a block's own peak moves by ~100 MB from run to run with where the allocator puts it."""
    import numpy as np

    from pipeline.audio import decode_all
    from tests.audio_write import write_audio_chunks

    call = SHORT_CALLS[0]
    rate = 8000
    _, samples = decode_all(call.stereo)
    samples = samples[:, ::2].astype(np.float32)  # 16 kHz -> 8 kHz (the call is speech below 4 kHz)
    hiss = np.random.default_rng(1).normal(0, 1e-3, (2, rate * 60)).astype(np.float32)
    sources = {}
    for name, minutes in (("twenty-minutes", 20), ("four-hours", 240)):
        folder = sources[name] = tmp_path / name
        folder.mkdir()
        write_audio_chunks(folder / f"{name}.wav", [samples, *[hiss] * minutes], rate, channels=2, codec="pcm_alaw")
        (folder / "manifest.csv").write_text("file,call_id,manager_channel\n"
                                             f"{name}.wav,{name},{call.manager_channel}\n", encoding="utf-8")
    store = tmp_path / "store"
    with dask_cluster(1, tmp_path) as cluster:
        worker = cluster.workers[0]
        done = run("--source", str(sources["twenty-minutes"]), "--store", str(store), "--scheduler",
                   cluster.address)
        assert done.returncode == 0, done.stderr
        after_two_blocks = _peak_resident_mb(worker)
        done = run("--source", str(sources["four-hours"]), "--store", str(store), "--scheduler", cluster.address)
        assert done.returncode == 0, done.stderr
        after_24_blocks = _peak_resident_mb(worker)
    assert statuses(run_summary(store, done.stdout)) == {"four-hours": "processed"}
    result = CallResult.from_json((store / "calls" / "four-hours" / "result.json").read_text(encoding="utf-8"))
    assert abs(result.duration_s - (4 * 3600 + call.duration_s)) < 2
    assert len(result.words) > 20 and all(word.end < call.duration_s + 1 for word in result.words)
    assert result.quality.passed and result.score is not None
    assert after_24_blocks - after_two_blocks < 150, (after_two_blocks, after_24_blocks)
    # The recordings of a folder source are read where they are: never moved, never removed.
    long = sources["four-hours"] / "four-hours.wav"
    assert long.stat().st_size > 200 * 2**20


def _s3(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET)


def _s3_env(endpoint: str) -> dict:
    return {"CALLQA_S3__ENDPOINT_URL": endpoint, "CALLQA_S3__ACCESS_KEY_ID": ACCESS_KEY,
            "CALLQA_S3__SECRET_ACCESS_KEY": SECRET}


def _upload_source(client, folder: Path) -> None:
    client.create_bucket(Bucket="calls")
    client.create_bucket(Bucket="artifacts")
    for path in folder.iterdir():
        client.upload_file(str(path), "calls", f"in/{path.name}")


def _objects(client, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def test_s3_source_and_store_keep_the_credentials_secret(tmp_path: Path) -> None:
    source = make_source(tmp_path / "calls", SHORT_CALLS[:2], extra_rows=[{"file": "bad.mp3", "call_id": "bad"}])
    (source / "bad.mp3").write_bytes(b"ID3 not really")
    with s3_server(tmp_path / "s3.log") as endpoint:
        client = _s3(endpoint)
        _upload_source(client, source)
        done = run("--source", "s3://calls/in", "--store", "s3://artifacts/out", "-v", **_s3_env(endpoint))
        assert done.returncode == 1  # the bad recording failed; the others did not
        stored = _objects(client, "artifacts")
        copy = client.head_object(Bucket="artifacts", Key=f"out/calls/{SHORT_CALLS[0].call_id}/audio.webm")
        assert copy["ContentType"] == "audio/webm" and copy["ContentLength"] > 10_000
    calls = {key.split("/")[2] for key in stored if key.startswith("out/calls/")}
    assert calls == {call.call_id for call in SHORT_CALLS[:2]}
    result = CallResult.from_json(stored[f"out/calls/{SHORT_CALLS[0].call_id}/result.json"])
    assert result.source.uri == f"s3://calls/in/{SHORT_CALLS[0].stereo.name}" and result.score is not None
    summary = json.loads(next(body for key, body in stored.items() if key.startswith("out/runs/")
                              and body != b"{}"))
    assert statuses(summary)["bad"] == "failed"
    everything = done.stdout + done.stderr + "".join(body.decode("utf-8", "replace") for body in stored.values())
    assert SECRET not in everything and ACCESS_KEY not in everything


def test_a_store_write_that_fails_fails_that_call_only(tmp_path: Path) -> None:
    source, store = make_source(tmp_path / "calls"), tmp_path / "store"
    blocked = SHORT_CALLS[1].call_id
    (store / "calls").mkdir(parents=True)
    (store / "calls" / blocked).write_text("a file where the call's folder must go\n")
    done = run("--source", str(source), "--store", str(store))
    assert done.returncode == 1, done.stderr
    summary = run_summary(store, done.stdout)
    assert statuses(summary) == {call.call_id: "failed" if call.call_id == blocked else "processed"
                                 for call in SHORT_CALLS[:3]}
    reason = next(call["reason"] for call in summary["calls"] if call["call_id"] == blocked)
    # The call's first write is its claim, before any audio is fetched: it fails there, naming the key.
    assert f"calls/{blocked}/claim.json: cannot write" in reason


def test_the_s3_store_vanishing_fails_the_calls_and_the_batch_completes(tmp_path: Path) -> None:
    source = make_source(tmp_path / "calls")
    with s3_server(tmp_path / "s3.log") as endpoint:
        client = _s3(endpoint)
        _upload_source(client, source)
        process = start("--source", "s3://calls/in", "--store", "s3://artifacts/out", logs=tmp_path,
                        **_s3_env(endpoint))

        def run_started() -> bool:  # the run checks that it can write before it lists the calls
            return bool(client.list_objects_v2(Bucket="artifacts", Prefix="out/runs/").get("Contents"))

        wait_until(run_started, what="the run to start")
        for item in client.list_objects_v2(Bucket="artifacts").get("Contents", []):
            client.delete_object(Bucket="artifacts", Key=item["Key"])
        client.delete_bucket(Bucket="artifacts")  # the store goes away in the middle of the night
        assert process.wait(600) == 1
    out = (tmp_path / "run.out").read_text(encoding="utf-8")
    err = (tmp_path / "run.err").read_text(encoding="utf-8")
    assert "Traceback" not in err
    assert "processed 0" in out and "failed 3" in out  # every call was tried and reported, none stopped the rest
    assert out.count("NoSuchBucket") >= 3  # the reason, per call
    assert "the run summary was not stored" in err


def test_the_compose_file_follows_the_compose_specification() -> None:
    compose = Path(__file__).resolve().parents[1] / "docker-compose.yml"
    done = subprocess.run([str(Path(sys.executable).with_name("check-jsonschema")), "--builtin-schema",
                           "vendor.compose-spec", str(compose)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    import yaml

    spec = yaml.safe_load(compose.read_text(encoding="utf-8"))
    services = spec["services"]
    assert {"scheduler", "gpu-worker", "cpu-worker", "minio", "run"} <= set(services)
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "GPU=4" in services["gpu-worker"]["command"]
    assert services["run"]["profiles"] == ["nightly"] and "callqa" in services["run"]["command"]
    assert "models-cache" in spec["volumes"]
    workbench = services["workbench"]
    assert workbench["command"][:2] == ["callqa", "serve"] and workbench["ports"] == ["127.0.0.1:8080:8080"]
    assert CALLS.is_dir()


def test_a_worker_s_heartbeat_failing_as_it_shuts_down_is_not_shown_and_other_failures_are() -> None:
    """A worker's heartbeat that meets its own connections closing (the run's cluster shutting down, a race
    inside Dask) logged a traceback on the run's stderr now and then; a heartbeat failing otherwise is news."""
    import logging

    from distributed.comm.core import CommClosedError

    from pipeline.batch.worker import ClosingHeartbeatFilter

    def record(message: str, error: BaseException | None) -> logging.LogRecord:
        info = (type(error), error, None) if error else None
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, message, (), info)

    heartbeat = "Failed to communicate with scheduler during heartbeat."
    keeps = ClosingHeartbeatFilter().filter
    assert not keeps(record(heartbeat, CommClosedError("ConnectionPool closing.")))
    assert keeps(record(heartbeat, OSError("Timed out trying to connect to tcp://127.0.0.1:8786")))
    assert keeps(record(heartbeat, None))
    assert keeps(record("Compute Failed", CommClosedError("ConnectionPool closing.")))
