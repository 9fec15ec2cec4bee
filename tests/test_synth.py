"""The sample-call generator: festival speech placed where the ground truth says, one party per channel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import FRAMES_PER_S, AudioBlock, LevelTrack, decode_all
from tests.synth import render

DIALOGUE = {
    "id": "tiny",
    "business": "тест",
    "direction": "out",
    "manager_channel": "right",
    "manager_voice": "high",
    "turns": [
        {"m": "Добрый день! Компания Тест, меня зовут Анна."},
        {"c": "Здравствуйте, слушаю вас внимательно.", "gap": 0.6},
        {"m": "Удобно говорить?", "gap": -0.5},
    ],
}


@pytest.mark.synth
def test_render_places_each_turn_on_its_leg(tmp_path: Path) -> None:
    assert not render.missing_tools(), "festival and sox are installed by `make test` (make system-deps)"
    truth = render.render_dialogue(DIALOGUE, tmp_path, seed=1)
    assert json.loads((tmp_path / "tiny.truth.json").read_text(encoding="utf-8")) == truth
    utterances = truth["utterances"]
    assert [u["role"] for u in utterances] == ["manager", "client", "manager"]
    assert utterances[1]["start"] == pytest.approx(utterances[0]["end"] + 0.6, abs=0.002)
    assert utterances[2]["start"] == pytest.approx(utterances[1]["end"] - 0.5, abs=0.002)  # the interruption

    info, stereo = decode_all(tmp_path / "tiny.stereo.mp3")
    assert (info.channels, info.sample_rate_hz) == (2, 8000)
    assert stereo.shape[1] / 16000 == pytest.approx(truth["duration_s"], abs=0.05)
    levels = LevelTrack(2)
    frame_db = levels.add(AudioBlock(0.0, stereo))
    manager_leg, client_leg = 1, 0  # manager_channel: right
    for u in utterances:
        inside = slice(int(u["start"] * FRAMES_PER_S) + 5, int(u["end"] * FRAMES_PER_S) - 5)
        own = manager_leg if u["role"] == "manager" else client_leg
        # the speaking party's leg is loud during its utterance; speech is 20+ dB over the other leg's leak
        assert np.percentile(frame_db[own, inside], 75) > -35
    before_first = slice(0, int(utterances[0]["start"] * FRAMES_PER_S) - 5)
    assert frame_db[:, before_first].max() < -45  # only line noise before the first word

    _, mono = decode_all(tmp_path / "tiny.mono.mp3")
    assert mono.shape[0] == 1
    assert np.corrcoef(mono[0, : stereo.shape[1]], stereo.mean(axis=0)[: mono.shape[1]])[0, 1] > 0.9


def test_the_dialogues_file_is_well_formed() -> None:
    dialogues = render.load_dialogues()
    assert len(dialogues) >= 6
    assert len({d["business"] for d in dialogues}) == len(dialogues)
    for dialogue in dialogues:
        assert dialogue["manager_channel"] in ("left", "right") and dialogue["manager_voice"] in ("low", "high")
        assert all(set(turn) - {"gap"} in ({"m"}, {"c"}) for turn in dialogue["turns"])
        assert dialogue["manager_id"] and dialogue["manager_name"] and dialogue["deal_id"]
