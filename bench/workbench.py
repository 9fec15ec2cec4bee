"""The workbench on a store of 10 000 calls: how fast the call list, a call page and a transcript search answer.

Builds a folder store of `--calls` calls (the sample calls' stereo results, transcribed once with whisper-base,
copied under new ids, ten managers, sixty days, one in twenty reviewed), starts `callqa serve`'s app under
uvicorn on loopback, logs in, and times real HTTP requests (median and 95th percentile of `--repeat` each):

    list            /calls (newest first, page 1 of 50 rows)
    list filtered   /calls?manager=..&failed=..&score_max=..
    search          /calls?q=<a word> (lemma search over every turn), a rare word, a quoted phrase
    call page       /calls/<id> (the result read from the store, the page rendered), and a five-minute call's
    audio range     /calls/<id>/audio with Range: bytes=...

Baselines measured in the same run: the list without the index (read and parse every stored result, filter,
sort: what `callqa report` does), and the raw cost of a call page's data (read and parse one result.json).
Goals (issue 15): list and call page < 300 ms, search < 200 ms.

    .venv/bin/python bench/workbench.py [--calls 10000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.rescore import laid_end_to_end  # noqa: E402
from pipeline.analyze import CallAnalyzer  # noqa: E402
from pipeline.audio_copy import store_audio_copy  # noqa: E402
from pipeline.derive import DeriveSetup, derive  # noqa: E402
from pipeline.reviews import Review, add_review, rescore_stored  # noqa: E402
from pipeline.schema import CallMetadata, CallResult  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from pipeline.stores import open_store, result_key, transcript_key  # noqa: E402
from pipeline.web.app import create_app  # noqa: E402
from pipeline.web.users import UserBook  # noqa: E402
from tests.conftest import SAMPLE_CALLS  # noqa: E402
from tests.services import asgi_server  # noqa: E402

MSK = timezone(timedelta(hours=3))
MANAGERS = [(str(100 + i), name) for i, name in enumerate(
    ["Алексей Смирнов", "Мария Кузнецова", "Дмитрий Орлов", "Ольга Белова", "Иван Петров", "Анна Соколова",
     "Сергей Волков", "Елена Морозова", "Павел Лебедев", "Наталья Козлова"])]


def build_store(root: Path, count: int, settings) -> tuple[list[str], float]:
    """`count` calls in a folder store; returns their ids and the mean call length (s)."""
    analyzer = CallAnalyzer(settings)
    setup = DeriveSetup.load()
    store = open_store(str(root), settings.s3)
    bases = []
    for call in SAMPLE_CALLS:
        transcript = analyzer.transcribe(call.stereo, manager_channel=call.manager_channel, direction=call.direction)
        bases.append((transcript, derive(transcript, setup), call.stereo))
    rng = random.Random(15)
    ids, lengths = [], []
    start = datetime(2026, 10, 1, 9, tzinfo=MSK)
    for index in range(count):
        transcript, result, recording = bases[index % len(bases)]
        manager_id, manager_name = MANAGERS[rng.randrange(len(MANAGERS))]
        call_id = f"call-{index:05d}"
        metadata = CallMetadata(started_at=(start + timedelta(minutes=index * 8.6)).isoformat(),
                                manager_id=manager_id, manager_name=manager_name, deal_id=str(5000 + index))
        copied = result.model_copy(update={"call_id": call_id, "metadata": metadata})
        store.write(result_key(call_id), copied.to_json().encode())
        if index < 200 or index % 20 == 0:  # transcripts for the reviewed calls and the most recent ones
            store.write(transcript_key(call_id), transcript.model_copy(
                update={"call_id": call_id, "metadata": metadata}).to_json().encode())
        ids.append(call_id)
        lengths.append(result.duration_s)
    long = laid_end_to_end([transcript for transcript, _, _ in bases]).model_copy(update={"call_id": "call-long"})
    store.write(transcript_key("call-long"), long.to_json().encode())
    store.write(result_key("call-long"), derive(long, setup).to_json().encode())
    for index in range(len(bases)):  # audio copies for the calls the bench plays
        store_audio_copy(bases[index][2], store, ids[index])
    scorecard = setup.scorecard
    assert scorecard is not None
    for call_id in ids[::20]:  # one call in twenty reviewed
        result = CallResult.from_json(store.read(result_key(call_id)) or b"")
        assert result.score is not None
        criterion = result.score.criteria[rng.randrange(len(result.score.criteria))].id
        add_review(store, Review.for_criterion(result, scorecard, criterion=criterion, verdict="met",
                                               reviewer="bench", reviewer_name="Бенч", at="2026-12-01T10:00:00Z"))
        rescore_stored(store, call_id, setup)
    return ids, statistics.fmean(lengths)


def timed(client: httpx.Client, path: str, repeat: int, **kwargs) -> list[float]:
    times = []
    for _ in range(repeat):
        begun = time.perf_counter()
        answer = client.get(path, **kwargs)
        times.append(time.perf_counter() - begun)
        assert answer.status_code in (200, 206), (path, answer.status_code, answer.text[:300])
    return times


def describe(name: str, times: list[float], goal_ms: float | None = None) -> str:
    median, p95 = statistics.median(times) * 1000, sorted(times)[int(0.95 * (len(times) - 1))] * 1000
    met = "met" if goal_ms is not None and p95 < goal_ms else "NOT met"
    verdict = "" if goal_ms is None else f"  (goal < {goal_ms:.0f} ms at p95: {met})"
    return f"{name:<28} median {median:7.1f} ms   p95 {p95:7.1f} ms{verdict}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    settings = load_settings(device="cpu")
    with tempfile.TemporaryDirectory(prefix="callqa-bench-workbench-") as folder:
        root = Path(folder)
        begun = time.perf_counter()
        ids, mean_s = build_store(root / "store", args.calls, settings)
        print(f"store: {len(ids)} calls (mean {mean_s:.0f} s), built in {time.perf_counter() - begun:.0f} s")
        UserBook(root / "users.yaml").add("qa", name="QA", role="qa", password="bench-password")
        site = settings.model_copy(update={
            "run": settings.run.model_copy(update={"store": str(root / "store")}),
            "web": settings.web.model_copy(update={"users_file": root / "users.yaml",
                                                   "index_path": root / "index.sqlite"})})
        begun = time.perf_counter()
        app = create_app(site)
        print(f"index: built in {time.perf_counter() - begun:.1f} s ({app.state.bench.index.count()} calls)")
        with asgi_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            form = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
            assert client.post("/login", data={"login": "qa", "password": "bench-password",
                                               "csrf_token": token}).status_code == 303
            sample = CallResult.from_json(open_store(str(root / "store"), settings.s3).read(result_key(ids[0])) or b"")
            failed = next((c.id for c in sample.score.criteria if c.verdict == "not_met"), "")  # type: ignore[union-attr]
            lines = [
                describe("list", timed(client, "/calls", args.repeat), 300),
                describe("list, filtered", timed(client, f"/calls?manager={MANAGERS[3][0]}&failed={failed}"
                                                         "&score_max=80", args.repeat), 300),
                describe("list, page 150", timed(client, "/calls?page=150", args.repeat), 300),
                describe("search: цена", timed(client, "/calls?q=цена", args.repeat), 200),
                describe("search: rare word", timed(client, "/calls?q=подвеска", args.repeat), 200),
                describe("search: phrase", timed(client, '/calls?q="добрый день"', args.repeat), 200),
                describe("call page", timed(client, f"/calls/{ids[-1]}", args.repeat), 300),
                describe("call page, 5-minute call", timed(client, "/calls/call-long", args.repeat), 300),
                describe("audio range (64 KB)", timed(client, f"/calls/{ids[0]}/audio", args.repeat,
                                                      headers={"range": "bytes=65536-131071"})),
            ]
        store = open_store(str(root / "store"), settings.s3)
        begun = time.perf_counter()
        results = [CallResult.from_json(store.read(key) or b"") for key in store.list("calls/")
                   if key.endswith("/result.json")]
        listed = sorted((r for r in results if r.metadata.manager_id == MANAGERS[3][0]),
                        key=lambda r: r.metadata.started_at or "", reverse=True)[:50]
        naive_s = time.perf_counter() - begun
        raw = timed_raw(store, ids[-1], args.repeat)
    print("\n".join(lines))
    list_median = statistics.median([float(x) for x in re.findall(r"median\s+([\d.]+)", lines[1])]) / 1000
    print(f"baseline: the list without the index (read + parse every result, filter, sort): {naive_s * 1000:.0f} ms "
          f"for {len(listed)} rows -> the index is {naive_s / list_median:.0f}x faster")
    call_median = float(re.findall(r"median\s+([\d.]+)", lines[6])[0]) / 1000
    print(f"baseline: read + parse one result.json ({mean_s:.0f} s call): {statistics.median(raw) * 1000:.1f} ms -> "
          f"the call page costs "
          f"{call_median / statistics.median(raw):.1f}x that")
    return 0


def timed_raw(store, call_id: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        begun = time.perf_counter()
        CallResult.from_json(store.read(result_key(call_id)) or b"")
        times.append(time.perf_counter() - begun)
    return times


if __name__ == "__main__":
    sys.exit(main())
