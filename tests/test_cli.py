"""`callqa` as a user runs it: a real subprocess, the result JSON contract, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.audio_write import write_audio
from tests.cli_helpers import run_callqa
from tests.conftest import SAMPLE_CALLS

run = run_callqa


TOP_LEVEL = {"schema", "call_id", "source", "duration_s", "channels", "layout", "language", "model",
             "lexicon_version", "scorecard_version", "warnings", "quality", "speakers", "words", "turns", "metrics",
             "hits", "score"}
METRICS = {"talk_ratio_manager", "manager_talk_s", "client_talk_s", "silence_s", "longest_monologue_s",
           "interruptions", "speech_rate_wpm", "questions"}


def test_analyze_writes_the_result_json_contract(tmp_path: Path) -> None:
    call = next(c for c in SAMPLE_CALLS if c.manager_channel == "right")
    out = tmp_path / "result.json"
    done = run("analyze", str(call.stereo), "--json", str(out), "--manager-channel", "right", "--direction", "in")
    assert done.returncode == 0, done.stderr
    assert "talk ratio (manager)" in done.stdout and "manager" in done.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    assert TOP_LEVEL <= set(result)
    assert result["schema"] == "callqa.result/1"
    assert result["layout"] == "stereo" and result["channels"] == 2 and result["language"] == "ru"
    assert result["direction"] == "in" and result["manager_channel"] == 1
    assert len(result["source"]["sha256"]) == 64 and result["source"]["uri"].endswith(call.stereo.name)
    assert result["hits"] and set(result["hits"][0]) >= {"lexicon", "term", "role", "start", "end", "text"}
    assert {"total", "grade", "passed", "criteria"} <= set(result["score"])
    assert len(result["lexicon_version"]) == 16 and len(result["scorecard_version"]) == 16
    assert {"name", "engine_version", "device", "compute_type"} <= set(result["model"]["asr"])
    assert {s["id"]: (s["role"], s["channel"]) for s in result["speakers"]} == {
        "left": ("client", 0), "right": ("manager", 1)}
    assert all(set(w) >= {"start", "end", "text", "speaker", "role", "prob"} for w in result["words"])
    assert all(set(t) >= {"start", "end", "speaker", "role", "text"} for t in result["turns"])
    assert METRICS <= set(result["metrics"])
    assert set(result["metrics"]["interruptions"]) == {"manager", "client"}
    starts = [w["start"] for w in result["words"]]
    assert starts == sorted(starts)
    assert isinstance(result["warnings"], list) and {"passed", "gates"} <= set(result["quality"])


def test_json_to_stdout(tmp_path: Path) -> None:
    done = run("analyze", str(SAMPLE_CALLS[0].stereo), "--json", "-")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["schema"] == "callqa.result/1"


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    (tmp / "empty.mp3").write_bytes(b"")
    (tmp / "notes.mp3").write_text("не аудио\n", encoding="utf-8")
    data = SAMPLE_CALLS[0].stereo.read_bytes()
    (tmp / "cut.mp3").write_bytes(data[: len(data) // 2])
    return {
        "missing": (tmp / "missing.mp3", "file not found"),
        "empty": (tmp / "empty.mp3", "empty file (0 bytes)"),
        "text": (tmp / "notes.mp3", "not a readable audio file"),
        "truncated": (tmp / "cut.mp3", "truncated: decoded"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated"])
def test_bad_input_is_one_clear_line_and_no_json(tmp_path: Path, case: str) -> None:
    path, reason = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.json"
    done = run("analyze", str(path), "--json", str(out))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"callqa: error: {path}: ")
    assert reason in lines[0]
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.json.*"))


def test_silence_succeeds_with_a_warning(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "silence.mp3", np.zeros(8000 * 10, np.float32), 8000)
    out = tmp_path / "silence.json"
    done = run("analyze", str(path), "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["words"] == [] and "no speech recognised" in result["warnings"]
    assert "warning: no speech recognised" in done.stdout


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--model", "whisper-gigantic"], {}, "unknown model 'whisper-gigantic'"),
    (["--config", "/nonexistent/callqa.yaml"], {}, "config file not found"),
    ([], {"CALLQA_ASR__BEAM_SIZE": "0"}, "asr.beam_size"),
    (["--device", "cuda"], {"CALLQA_DEVICE": "cuda", "CUDA_VISIBLE_DEVICES": ""}, "no CUDA device"),
])
def test_configuration_errors_exit_3(args: list[str], env: dict, message: str) -> None:
    done = run("analyze", str(SAMPLE_CALLS[0].stereo), *args, env=env)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr


def test_run_without_a_source_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = run("run", "--store", str(tmp_path / "store"))
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "give --source" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()


def test_config_file_and_environment_take_their_places(tmp_path: Path) -> None:
    from pipeline.settings import load_settings

    config = tmp_path / "callqa.yaml"
    config.write_text("manager_channel: right\nasr:\n  beam_size: 2\nblock_s: 300\n", encoding="utf-8")
    settings = load_settings(config)
    assert (settings.manager_channel, settings.asr.beam_size, settings.block_s) == ("right", 2, 300)
    os.environ["CALLQA_BLOCK_S"] = "120"
    try:
        assert load_settings(config).block_s == 120  # the environment beats the file
        assert load_settings(config, block_s=60).block_s == 60  # the command line beats both
    finally:
        del os.environ["CALLQA_BLOCK_S"]
    config.write_text("manager_chanel: right\n", encoding="utf-8")
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=r"manager_chanel: Extra inputs are not permitted"):
        load_settings(config)


def test_model_list_shows_the_registry() -> None:
    done = run("model", "list")
    assert done.returncode == 0
    assert "whisper-base" in done.stdout and "ready" in done.stdout
    assert "large-v3-turbo" in done.stdout


def test_the_documented_config_file_is_valid(tmp_path: Path) -> None:
    from pipeline.settings import Settings, load_settings

    document = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = document.split("```yaml", 1)[1].split("```", 1)[0]
    config = tmp_path / "callqa.yaml"
    config.write_text(example, encoding="utf-8")
    assert load_settings(config).model_dump() == Settings().model_dump()  # the documented values are the defaults


def test_demo_runs_the_loop_against_the_sandbox(tmp_path: Path) -> None:
    call = min(SAMPLE_CALLS, key=lambda c: c.duration_s)
    samples = tmp_path / "samples"
    samples.mkdir()
    shutil.copy(call.stereo, samples / call.stereo.name)
    shutil.copy(call.mono, samples / call.mono.name)
    (samples / "manifest.csv").write_text(
        "file,call_id,direction,started_at,manager_channel,manager,manager_name,deal_id\n"
        f"{call.stereo.name},{call.call_id},{call.direction},2026-11-28T10:00:00+03:00,{call.manager_channel},"
        "7,Ирина Петрова,99\n"
        f"{call.mono.name},{call.call_id}-mono,{call.direction},2026-11-28T10:00:00+03:00,,7,Ирина Петрова,99\n",
        encoding="utf-8")
    done = run("demo", "--samples", str(samples), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    results = list((tmp_path / "out" / "results").glob("*.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text(encoding="utf-8"))
    assert result["metadata"]["manager_name"] == "Ирина Петрова" and result["metadata"]["crm_target"] == "deal:99"
    assert result["score"] is not None
    assert "Bitrix24 comments: posted 1" in done.stdout
    assert "Сделка 99, менеджер Ирина Петрова:" in done.stdout and "[B]Оценка звонка:" in done.stdout
    assert "talk ratio (manager)" in done.stdout
    assert "Ирина Петрова" in (tmp_path / "out" / "report" / "report.html").read_text(encoding="utf-8")
    # The stereo call taught the nightly run the manager's voice; the mono mix is diarized and uses it.
    assert len(list((tmp_path / "out" / "store" / "voiceprints" / "7").glob("*.json"))) == 1
    assert "6. A mono recording" in done.stdout and "embedded diarizer, 2 voice(s); manager" in done.stdout
    assert "evidence (voiceprint): cosine to Ирина Петрова's voiceprint" in done.stdout
    assert "7. The QA lead's workbench" in done.stdout and "callqa serve --store" in done.stdout
    # Run again: a new portal, so the earlier demo's store (its ledger of posted comments) goes, and the call is
    # analysed and commented afresh, not "unchanged" against comments the new portal never had.
    again = run("demo", "--samples", str(samples), "--out", str(tmp_path / "out"))
    assert again.returncode == 0, again.stderr
    assert "an earlier demo's store, removed" in again.stdout and "Bitrix24 comments: posted 1" in again.stdout
    assert "failed" not in again.stdout.split("Bitrix24 comments:")[1].splitlines()[0]
    assert "Сделка 99, менеджер Ирина Петрова:" in again.stdout
    # A folder that is not a callqa store is never removed.
    (tmp_path / "other" / "store").mkdir(parents=True)
    refused = run("demo", "--samples", str(samples), "--out", str(tmp_path / "other"))
    assert refused.returncode != 0 and "is not a callqa store" in refused.stderr
    assert (tmp_path / "other" / "store").is_dir()
