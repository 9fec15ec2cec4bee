"""Manager voiceprints: enrolled from stereo calls (automatically in the nightly run) or explicitly, stored in the
artifact store, and deciding the roles of a mono call when nothing else does."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.analyze import CallAnalyzer
from pipeline.audio import SAMPLE_RATE_HZ, decode_all
from pipeline.errors import CallError, ConfigError
from pipeline.roles import channel_index
from pipeline.speakers.voiceprints import (
    VoiceprintOptions,
    VoiceprintStore,
    VoiceSample,
    manager_key,
    mean_voice,
    sample_from_recording,
)
from pipeline.stores import FolderStore
from tests.audio_write import write_audio
from tests.cli_helpers import run_callqa
from tests.conftest import REAL_SPEECH, SAMPLE_CALLS, common_voice_clips, join_clips
from tests.evaluation import role_errors

BY_ID = {call.call_id: call for call in SAMPLE_CALLS}


def _pair(voice: str):
    """A stereo call and another call's mono mix whose managers have the same voice ("low" or "high")."""
    calls = sorted((c for c in SAMPLE_CALLS if c.manager_voice == voice), key=lambda c: c.duration_s)
    return calls[0], calls[1]


@pytest.fixture(scope="module")
def plain_analyzer(analyzer, settings) -> CallAnalyzer:
    """No lexicons, so no role cues: in a mono call without a direction only a voiceprint can tell the roles."""
    return CallAnalyzer(settings, asr_model=analyzer.asr_model)


def test_a_voiceprint_alone_finds_the_manager_and_a_wrong_one_flips_the_roles(analyzer, plain_analyzer,
                                                                             tmp_path: Path) -> None:
    enrolled_from, mono_call = _pair("low")
    other_voice, _ = _pair("high")
    # The automatic path: the manager's leg of a stereo call, collected while the call is analysed.
    transcript = analyzer.transcribe(enrolled_from.stereo, manager_channel=enrolled_from.manager_channel,
                                     collect_manager_voice=True)
    assert transcript.layout == "stereo" and transcript.manager_speech_s >= 8
    store = VoiceprintStore(FolderStore(tmp_path))
    store.add(VoiceSample(manager_id="12", manager_name="Алексей Смирнов", embedding=transcript.manager_voice,
                          speech_s=transcript.manager_speech_s, kind="stereo", source=enrolled_from.call_id))
    # The explicit path: the other voice's leg, as `callqa voice enroll --channel` does it.
    store.add(sample_from_recording(other_voice.stereo, manager_id="15",
                                    channel=channel_index(other_voice.manager_channel)))

    without = plain_analyzer.analyze(mono_call.mono)
    assert without.role_detection.manager is None and {w.role for w in without.words} == {"unknown"}

    right = plain_analyzer.analyze(mono_call.mono, voiceprint=store.get("12"))
    assert [e.kind for e in right.role_detection.evidence] == ["voiceprint"]
    assert "Алексей Смирнов" in right.role_detection.evidence[0].detail
    assert right.role_detection.confidence >= 0.8
    assert len(role_errors(right.words, mono_call.utterances)) / len(right.words) <= 0.1

    wrong = plain_analyzer.analyze(mono_call.mono, voiceprint=store.get("15"))
    assert wrong.role_detection.manager is not None and wrong.role_detection.manager != right.role_detection.manager
    assert len(role_errors(wrong.words, mono_call.utterances)) / len(wrong.words) >= 0.8


def test_real_voices_a_voiceprint_from_one_clip_finds_its_speaker(plain_analyzer, tmp_path: Path) -> None:
    """Common Voice: speaker A enrolled from one clip; A and B then alternate in a mono file (A's other clip)."""
    clips = common_voice_clips()
    a, b = clips["ecb22ff2"], clips["9042795c"]
    options = VoiceprintOptions(min_speech_s=3)  # one Common Voice clip holds 4-6 s of speech
    store = VoiceprintStore(FolderStore(tmp_path / "store"), options)
    store.add(sample_from_recording(a[0], manager_id="A", options=options))
    samples, spans = join_clips([b[0], a[1], b[1]])
    path = write_audio(tmp_path / "a-and-b.wav", samples, SAMPLE_RATE_HZ)
    result = plain_analyzer.analyze(path, voiceprint=store.get("A"))
    assert result.role_detection.manager is not None, result.warnings
    a_start, a_end = spans[1]
    in_a = [w for w in result.words if a_start <= (w.start + w.end) / 2 <= a_end]
    outside = [w for w in result.words if w not in in_a]
    assert in_a and outside
    assert sum(w.role == "manager" for w in in_a) / len(in_a) >= 0.8
    assert sum(w.role == "client" for w in outside) / len(outside) >= 0.8


def test_the_store_keeps_each_sample_once_and_forgets_on_request(tmp_path: Path) -> None:
    store = VoiceprintStore(FolderStore(tmp_path), VoiceprintOptions(max_samples=2))
    rng = np.random.default_rng(0)
    first, second, third = (mean_voice(rng.normal(size=(5, 256))) for _ in range(3))

    def sample(vector, source, speech_s, at):
        return VoiceSample(manager_id="Иван Петров", embedding=vector.tolist(), speech_s=speech_s, kind="stereo",
                           source=source, enrolled_at=at)

    assert store.add(sample(first, "call-1", 10, "2026-11-01T10:00:00+00:00"))
    assert not store.add(sample(second, "call-1", 10, "2026-11-01T10:00:00+00:00"))  # same call: not twice
    assert store.add(sample(second, "call-2", 10, "2026-11-02T10:00:00+00:00"))
    assert store.add(sample(third, "call-3", 30, "2026-11-03T10:00:00+00:00"))
    voiceprint = store.get("Иван Петров")
    # The latest two samples, weighted by their speech: 10 s of `second`, 30 s of `third`.
    expected = mean_voice(np.stack([second, third, third, third]))
    assert voiceprint.samples == 2 and voiceprint.speech_s == 40
    assert float(voiceprint.embedding @ expected) == pytest.approx(1.0, abs=1e-5)
    assert store.managers() == ["Иван Петров"]
    assert all("/" not in part and " " not in part for part in manager_key("Иван Петров/../x").split("-"))
    assert store.forget("Иван Петров") == 3 and store.get("Иван Петров") is None


def test_a_sample_of_another_encoder_is_refused(tmp_path: Path) -> None:
    store = VoiceprintStore(FolderStore(tmp_path))
    store.add(VoiceSample(manager_id="12", embedding=[1.0] * 256, speech_s=10, kind="explicit", source="x",
                          encoder="some-other-encoder"))
    with pytest.raises(ConfigError, match="enroll the manager again"):
        store.get("12")


def test_too_little_speech_is_refused(tmp_path: Path) -> None:
    _, clip = decode_all(REAL_SPEECH / "common_voice_ru" / "common_voice_ru_19793731.mp3")  # "Выпьем за сделку."
    path = write_audio(tmp_path / "short.wav", clip[0], SAMPLE_RATE_HZ)
    with pytest.raises(CallError, match="a voiceprint needs at least 8 s"):
        sample_from_recording(path, manager_id="12")


def test_the_voice_commands_enroll_list_use_and_forget(tmp_path: Path) -> None:
    enrolled_from, mono_call = _pair("high")
    store = tmp_path / "store"
    enrolled = run_callqa("voice", "enroll", str(enrolled_from.stereo), "--manager", "21", "--name", "Ольга Белова",
                          "--channel", enrolled_from.manager_channel, "--store", str(store))
    assert enrolled.returncode == 0, enrolled.stderr
    assert "enrolled for 21" in enrolled.stdout and "voiceprint of 1 sample(s)" in enrolled.stdout
    again = run_callqa("voice", "enroll", str(enrolled_from.stereo), "--manager", "21", "--channel",
                       enrolled_from.manager_channel, "--store", str(store))
    assert "already enrolled" in again.stdout
    listed = run_callqa("voice", "list", "--store", str(store))
    assert listed.returncode == 0 and listed.stdout.startswith("21\tОльга Белова\t1 sample(s)")
    out = tmp_path / "mono.json"
    analyzed = run_callqa("analyze", str(mono_call.mono), "--manager", "21", "--voiceprints", str(store),
                          "--json", str(out), "-q")
    assert analyzed.returncode == 0, analyzed.stderr
    detection = json.loads(out.read_text(encoding="utf-8"))["role_detection"]
    assert "voiceprint" in {e["kind"] for e in detection["evidence"]} and detection["manager"]
    forgotten = run_callqa("voice", "forget", "21", "--store", str(store))
    assert forgotten.returncode == 0 and "removed 1 voice sample(s)" in forgotten.stdout
    assert not list((store / "voiceprints").rglob("*.json"))


def test_enrolling_from_a_mono_file_with_channel_is_refused(tmp_path: Path) -> None:
    call = SAMPLE_CALLS[0]
    done = run_callqa("voice", "enroll", str(call.mono), "--manager", "12", "--channel", "left",
                      "--store", str(tmp_path))
    assert done.returncode == 1 and "needs a stereo recording" in done.stderr and "Traceback" not in done.stderr


def test_the_nightly_run_enrolls_from_stereo_and_uses_it_in_mono(tmp_path: Path) -> None:
    from tests.test_batch import run, run_summary

    stereo_call, mono_call = _pair("low")
    source, store = tmp_path / "calls", tmp_path / "store"
    source.mkdir()
    fields = ["file", "call_id", "direction", "started_at", "manager_channel", "manager", "manager_name"]

    def write_manifest(rows):
        with (source / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    stereo_row = {"file": stereo_call.stereo.name, "call_id": "s1", "direction": stereo_call.direction,
                  "started_at": "2026-11-28T10:00:00+03:00", "manager_channel": stereo_call.manager_channel,
                  "manager": "12", "manager_name": "Алексей Смирнов"}
    shutil.copy(stereo_call.stereo, source)
    write_manifest([stereo_row])
    first = run("--source", str(source), "--store", str(store))
    assert first.returncode == 0, first.stderr
    samples = list((store / "voiceprints" / "12").glob("*.json"))
    assert len(samples) == 1 and json.loads(samples[0].read_text(encoding="utf-8"))["kind"] == "stereo"

    shutil.copy(mono_call.mono, source)
    write_manifest([stereo_row, {"file": mono_call.mono.name, "call_id": "m1", "direction": "",
                                 "started_at": "2026-11-28T11:00:00+03:00", "manager_channel": "", "manager": "12",
                                 "manager_name": "Алексей Смирнов"}])
    second = run("--source", str(source), "--store", str(store))
    assert second.returncode == 0, second.stderr
    assert {c["call_id"]: c["status"] for c in run_summary(store, second.stdout)["calls"]} == {
        "s1": "skipped", "m1": "processed"}
    result = json.loads((store / "calls" / "m1" / "result.json").read_text(encoding="utf-8"))
    evidence = result["role_detection"]["evidence"]
    assert any(e["kind"] == "voiceprint" and "Алексей Смирнов" in e["detail"] for e in evidence)
    assert result["role_detection"]["manager"] and result["score"] is not None
    assert len(list((store / "voiceprints" / "12").glob("*.json"))) == 1  # a mono call enrolls nothing
