"""The store's conditional writes and ranged reads, and the claims built on them, on a folder and on a real S3 server
(moto)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.batch.claims import Claim, ClaimRefused, Claims
from pipeline.stores import StoreError, claim_key

START = datetime(2026, 11, 28, 2, 15, tzinfo=UTC)


class Clock:
    """The time as a test sets it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)




def test_replace_if_unchanged(store) -> None:
    assert store.read_versioned("k.json") is None
    assert store.write("k.json", b"1", only_if_absent=True)
    first = store.read_versioned("k.json")
    assert first.data == b"1"
    assert store.write("k.json", b"2", if_version=first.version)
    second = store.read_versioned("k.json")
    assert second.data == b"2" and second.version != first.version
    assert not store.write("k.json", b"3", if_version=first.version)  # someone changed it since
    assert store.read("k.json") == b"2"
    assert not store.write("gone.json", b"4", if_version=first.version)  # nothing there any more
    assert store.read("gone.json") is None


def test_of_many_writers_with_one_version_exactly_one_wins(store) -> None:
    store.write("k.json", b"start")
    version = store.read_versioned("k.json").version
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def writer(index: int) -> None:
        barrier.wait()
        if store.write("k.json", str(index).encode(), if_version=version):
            wins.append(index)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1 and store.read("k.json") == str(wins[0]).encode()


def test_a_live_claim_keeps_other_runs_out_until_released(store) -> None:
    clock = Clock()
    tonight, tomorrow = (Claims(store, run, ttl_s=600, clock=clock) for run in ("run-a", "run-b"))
    tonight.acquire("call-1")
    clock.advance(300)
    with pytest.raises(ClaimRefused, match="being analysed by run run-a") as refused:
        tomorrow.acquire("call-1")
    assert refused.value.holder.run_id == "run-a"
    tonight.acquire("call-1")  # the same run again (a task run a second time): still its own
    assert tonight.release("call-1")
    assert tomorrow.acquire("call-1").run_id == "run-b"
    assert not tonight.renew("call-1")  # no longer run-a's


def test_a_crashed_runs_claim_lapses_and_is_taken_over_once(store) -> None:
    clock = Clock()
    crashed = Claims(store, "crashed", ttl_s=600, clock=clock)
    crashed.acquire("call-1")
    clock.advance(599)
    with pytest.raises(ClaimRefused):
        Claims(store, "early", ttl_s=600, clock=clock).acquire("call-1")
    clock.advance(2)
    # Two runs find the lapsed claim at once: one takes it over, the other is refused.
    winners, refused = [], []
    barrier = threading.Barrier(2)

    def take(run_id: str) -> None:
        barrier.wait()
        try:
            winners.append(Claims(store, run_id, ttl_s=600, clock=clock).acquire("call-1").run_id)
        except ClaimRefused as error:
            refused.append(error.holder.run_id)

    threads = [threading.Thread(target=take, args=(run,)) for run in ("next-1", "next-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and refused == winners
    assert not crashed.renew("call-1")  # the crashed run, back to life, finds it gone


def test_renewal_pushes_the_lapse_back(store) -> None:
    clock = Clock()
    holder = Claims(store, "long-call", ttl_s=600, clock=clock)
    holder.acquire("call-1")
    for _ in range(5):  # 50 minutes of transcription, renewed every 10
        clock.advance(500)
        assert holder.renew("call-1")
    with pytest.raises(ClaimRefused):
        Claims(store, "other", ttl_s=600, clock=clock).acquire("call-1")
    stored = Claim.model_validate_json(store.read(claim_key("call-1")))
    assert stored.claimed_at == START and stored.expires_at == clock.now + timedelta(seconds=600)


def test_an_unreadable_claim_counts_as_lapsed(store) -> None:
    store.write(claim_key("call-1"), b"{not json")
    assert Claims(store, "run-a", ttl_s=600).acquire("call-1").run_id == "run-a"


def test_ranged_reads_clip_at_the_end(store) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    store.write("calls/c/audio.webm", data)
    assert store.size("calls/c/audio.webm") == len(data)
    assert store.read_range("calls/c/audio.webm", 0, 16) == data[:16]
    assert store.read_range("calls/c/audio.webm", 5000, 1000) == data[5000:6000]
    assert store.read_range("calls/c/audio.webm", 10000, 1000) == data[10000:]  # past the end: what is there
    assert store.read_range("calls/c/audio.webm", len(data), 10) == b""
    assert store.read_range("calls/c/audio.webm", len(data) + 500, 10) == b""
    assert store.read_range("calls/c/audio.webm", 3, 0) == b""
    assert store.size("calls/c/nothing.webm") is None
    for start, length in ((0, 10), (0, 0)):
        with pytest.raises(StoreError, match="calls/c/nothing.webm: no such object"):
            store.read_range("calls/c/nothing.webm", start, length)
    with pytest.raises(ValueError):
        store.read_range("calls/c/audio.webm", -1, 10)


def test_concurrently_keeps_the_order_runs_every_item_and_raises_the_first_error() -> None:
    from pipeline.stores import concurrently

    started = threading.Barrier(4, timeout=10)  # all four in flight at once, or this fails

    def work(item: int) -> int:
        started.wait()
        return item * 10

    assert concurrently(work, [3, 1, 2, 0], at_once=4) == [30, 10, 20, 0]
    ran: list[int] = []

    def failing(item: int) -> int:
        ran.append(item)
        if item == 1:
            raise StoreError("no")
        return item

    with pytest.raises(StoreError):
        concurrently(failing, list(range(6)), at_once=3)
    assert sorted(ran) == list(range(6))
