"""Retention: audio copies, transcripts and voice samples deleted once older than the settings allow."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.batch.job import AudioFacts
from pipeline.batch.worker import _rescore
from pipeline.retention import apply_retention
from pipeline.settings import RetentionOptions
from pipeline.sources.base import CallRecord
from pipeline.speakers.voiceprints import VoiceprintStore, VoiceSample
from pipeline.stores import FolderStore, audio_copy_key, audio_key, result_key, transcript_key
from tests.cli_helpers import run_callqa

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
OPTIONS = RetentionOptions(audio_days=30, transcript_days=90, voiceprint_days=365)


def _store_call(store, call_id: str, *, stored_days_ago: float | None, analyzed_days_ago: float = 400,
                copy: bool = True, transcript: bool = True) -> None:
    """A call as the nightly run leaves it (the objects' bodies beside the times do not matter here)."""
    if copy:
        store.write(audio_copy_key(call_id), b"\x1a\x45\xdf\xa3 webm bytes")
    if transcript:
        store.write(transcript_key(call_id), b'{"schema": "callqa.transcript/1"}')
    analyzed = (NOW - timedelta(days=analyzed_days_ago)).isoformat(timespec="seconds")
    store.write(result_key(call_id), json.dumps({"schema": "callqa.result/1", "call_id": call_id,
                                                 "analyzed_at": analyzed}).encode())
    if stored_days_ago is not None:
        record = CallRecord(call_id=call_id, uri=f"/calls/{call_id}.mp3")
        facts = AudioFacts(call_id=call_id, uri=record.uri, fingerprint="1-2", sha256="0" * 64, size_bytes=1,
                           duration_s=60.0, run_id="run-1", record=record,
                           stored_at=(NOW - timedelta(days=stored_days_ago)).isoformat(timespec="seconds"))
        store.write(audio_key(call_id), facts.to_json())


def _enroll(store, manager: str, source: str, days_ago: float) -> None:
    VoiceprintStore(store).add(VoiceSample(manager_id=manager, embedding=[1.0, 0.0], speech_s=10.0, kind="stereo",
                                           source=source,
                                           enrolled_at=(NOW - timedelta(days=days_ago)).isoformat(timespec="seconds")))




@pytest.fixture
def filled(store):
    _store_call(store, "old", stored_days_ago=120)
    _store_call(store, "middle", stored_days_ago=45)
    _store_call(store, "recent", stored_days_ago=2)
    _store_call(store, "no-facts", stored_days_ago=None, analyzed_days_ago=100)  # dated by its result
    _store_call(store, "no-copy", stored_days_ago=200, copy=False)
    store.write(audio_copy_key("in-progress"), b"webm")  # being stored right now: no time yet
    _enroll(store, "12", "call-a", 400)
    _enroll(store, "12", "call-b", 10)
    _enroll(store, "15", "call-c", 366)
    return store


EXPIRED = [
    ("audio", "calls/middle/audio.webm"), ("audio", "calls/no-facts/audio.webm"), ("audio", "calls/old/audio.webm"),
    ("transcript", "calls/no-copy/transcript.json"), ("transcript", "calls/no-facts/transcript.json"),
    ("transcript", "calls/old/transcript.json"),
    ("voiceprint", "voiceprints/12/stereo-call-a.json"), ("voiceprint", "voiceprints/15/stereo-call-c.json"),
]


def test_a_dry_run_lists_what_is_older_than_its_limit_and_deletes_nothing(filled) -> None:
    before = {key: filled.read(key) for key in filled.list("")}
    report = apply_retention(filled, OPTIONS, now=NOW, dry_run=True)
    assert sorted((item.kind, item.key) for item in report.removed) == EXPIRED
    assert report.kept == {"audio": 1, "transcript": 2, "voiceprint": 1}
    assert report.undated == ["calls/in-progress/audio.webm"]
    assert (report.count("audio"), report.count("transcript"), report.count("voiceprint")) == (3, 3, 2)
    assert next(i for i in report.removed if i.key == "calls/old/audio.webm").stored_at == NOW - timedelta(days=120)
    assert next(i for i in report.removed if i.key == "calls/no-facts/audio.webm").stored_at == NOW - timedelta(
        days=100)
    assert {key: filled.read(key) for key in filled.list("")} == before


def test_a_real_run_deletes_them_and_keeps_results_facts_and_younger_objects(filled) -> None:
    report = apply_retention(filled, OPTIONS, now=NOW)
    assert sorted((item.kind, item.key) for item in report.removed) == EXPIRED
    left = set(filled.list(""))
    assert not left & {key for _, key in EXPIRED}
    for call_id in ("old", "middle", "recent", "no-facts", "no-copy"):
        assert result_key(call_id) in left
    assert {audio_key(c) for c in ("old", "middle", "recent", "no-copy")} <= left
    assert {"calls/recent/audio.webm", "calls/recent/transcript.json", "calls/middle/transcript.json",
            "calls/in-progress/audio.webm", "voiceprints/12/stereo-call-b.json"} <= left
    assert VoiceprintStore(filled).managers() == ["12"]  # manager 15's only sample expired
    # Nothing is left to do: a second pass finds nothing.
    assert apply_retention(filled, OPTIONS, now=NOW).removed == []
    # A call whose transcript is gone keeps its result and is skipped by re-scoring, with the reason.
    plugin = SimpleNamespace(store=filled)
    prepared = _rescore(CallRecord(call_id="old", uri="/calls/old.mp3"), plugin,  # type: ignore[arg-type]
                        stored_audio=None)
    assert (prepared.action, prepared.reason) == ("skip", "no stored transcript to re-score")


def test_without_limits_everything_is_kept(filled) -> None:
    report = apply_retention(filled, RetentionOptions(), now=NOW)
    assert report.removed == [] and report.undated == []
    assert report.kept == {"audio": 5, "transcript": 5, "voiceprint": 3}  # the undated copy too


def test_the_command_deletes_after_a_dry_run(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    _store_call(store, "ancient", stored_days_ago=3000)  # years before any clock this test runs on
    _store_call(store, "tomorrow", stored_days_ago=-1)
    config = tmp_path / "callqa.yaml"
    config.write_text("retention:\n  audio_days: 30\n  transcript_days: 30\n", encoding="utf-8")
    dry = run_callqa("retention", "--store", str(tmp_path / "store"), "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete audio calls/ancient/audio.webm (stored " in dry.stdout
    assert "would delete transcript calls/ancient/transcript.json" in dry.stdout and "tomorrow" not in dry.stdout
    assert ("audio 1 would delete, 1 kept (30 days), transcript 1 would delete, 1 kept (30 days), voiceprint 0 "
            "would delete, 0 kept (forever)") in dry.stdout
    assert (tmp_path / "store" / "calls" / "ancient" / "audio.webm").exists()
    done = run_callqa("retention", "--store", str(tmp_path / "store"), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "deleted audio calls/ancient/audio.webm" in done.stdout
    assert sorted(p.name for p in (tmp_path / "store" / "calls" / "ancient").iterdir()) == ["audio.json",
                                                                                           "result.json"]
