"""Shared fixtures: the real packaged model loaded once, the sample calls with their ground truth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.analyze import CallAnalyzer
from pipeline.evaluation import TruthUtterance
from pipeline.schema import CallResult
from pipeline.settings import Settings, load_settings

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CALLS = TESTS / "data" / "calls"
REAL_SPEECH = TESTS / "data" / "real-speech"


@dataclass(frozen=True)
class SampleCall:
    call_id: str
    stereo: Path
    mono: Path
    manager_channel: str
    manager_voice: str
    direction: str
    duration_s: float
    utterances: list[TruthUtterance]

    @property
    def text(self) -> str:
        return " ".join(u.text for u in self.utterances)

    def talk_s(self, role: str) -> float:
        return sum(u.end - u.start for u in self.utterances if u.role == role)


def load_sample_calls() -> list[SampleCall]:
    calls = []
    for truth_file in sorted(CALLS.glob("*.truth.json")):
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        call_id = truth["call_id"]
        calls.append(SampleCall(
            call_id=call_id,
            stereo=CALLS / f"{call_id}.stereo.mp3",
            mono=CALLS / f"{call_id}.mono.mp3",
            manager_channel=truth["manager_channel"],
            manager_voice=truth["manager_voice"],
            direction=truth["direction"],
            duration_s=truth["duration_s"],
            utterances=[TruthUtterance(u["role"], u["start"], u["end"], u["text"]) for u in truth["utterances"]],
        ))
    return calls


SAMPLE_CALLS = load_sample_calls()


@pytest.fixture(scope="session")
def settings() -> Settings:
    # Tests run on the CPU with the packaged whisper-base, whatever the machine has.
    return load_settings(device="cpu", model="whisper-base")


@pytest.fixture(scope="session")
def analyzer(settings: Settings) -> CallAnalyzer:
    return CallAnalyzer(settings)


@pytest.fixture(scope="session")
def stereo_results(analyzer: CallAnalyzer) -> dict[str, CallResult]:
    """Every sample call analysed once from its stereo file (the expensive part of the suite)."""
    return {call.call_id: analyzer.analyze(call.stereo, call_id=call.call_id, manager_channel=call.manager_channel)
            for call in SAMPLE_CALLS}
