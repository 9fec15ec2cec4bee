"""Shared fixtures: the real packaged model loaded once, the sample calls with their ground truth."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline.analyze import CallAnalyzer
from pipeline.derive import DeriveSetup, derive
from pipeline.metrics import compute_metrics
from pipeline.schema import CallResult, Metrics, Turn, Word
from pipeline.settings import Settings, load_settings
from pipeline.transcript import Transcript
from pipeline.turns import build_turns
from tests.evaluation import TruthUtterance

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CALLS = TESTS / "data" / "calls"
REAL_SPEECH = TESTS / "data" / "real-speech"

# Compiled lexicon sets (pipeline/lexicon/compiled.py) go to a folder of this test run, shared with the commands
# the tests start, never to the user's own cache: every run checks the lexicons once, from their files.
_COMPILED = tempfile.mkdtemp(prefix="callqa-test-cache-")
os.environ["CALLQA_CACHE_DIR"] = _COMPILED
atexit.register(shutil.rmtree, _COMPILED, ignore_errors=True)


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
    expect_fail: frozenset[str]
    expect_not_applicable: frozenset[str]

    @property
    def text(self) -> str:
        return " ".join(u.text for u in self.utterances)

    def talk_s(self, role: str) -> float:
        return sum(u.end - u.start for u in self.utterances if u.role == role)


def load_sample_calls(folder: Path = CALLS,
                      dialogues: Path = TESTS / "synth" / "dialogues.yaml") -> list[SampleCall]:
    """The rendered calls in `folder` with their ground truth and the expectations their scripts state."""
    scripts = yaml.safe_load(dialogues.read_text(encoding="utf-8"))["dialogues"]
    expectations = {d["id"]: d.get("expect", {}) for d in scripts}
    calls = []
    for truth_file in sorted(folder.glob("*.truth.json")):
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        call_id = truth["call_id"]
        expect = expectations[call_id]
        calls.append(SampleCall(
            call_id=call_id,
            stereo=folder / f"{call_id}.stereo.mp3",
            mono=folder / f"{call_id}.mono.mp3",
            manager_channel=truth["manager_channel"],
            manager_voice=truth["manager_voice"],
            direction=truth["direction"],
            duration_s=truth["duration_s"],
            utterances=[TruthUtterance(u["role"], u["start"], u["end"], u["text"]) for u in truth["utterances"]],
            expect_fail=frozenset(expect.get("fail") or ()),
            expect_not_applicable=frozenset(expect.get("not_applicable") or ()),
        ))
    return calls


def script_words(call: SampleCall) -> list[Word]:
    """The script as recognised words: each utterance's words spread over its span in proportion to length."""
    words = []
    for utterance in call.utterances:
        tokens = utterance.text.split()
        total = sum(len(token) + 1 for token in tokens)
        position = utterance.start
        for token in tokens:
            length = (utterance.end - utterance.start) * (len(token) + 1) / total
            words.append(Word(start=round(position, 3), end=round(position + length * 0.9, 3), text=token,
                              speaker=utterance.role, role=utterance.role, prob=1.0))
            position += length
    return sorted(words, key=lambda word: word.start)


def script_facts(call: SampleCall) -> tuple[list[Word], list[Turn], Metrics]:
    """Words, turns and metrics of the script itself: what a perfect ASR would give."""
    words = script_words(call)
    turns = build_turns(words)
    return words, turns, compute_metrics(words, turns)


def script_transcript(call: SampleCall, stereo: Transcript) -> Transcript:
    """The call's stereo transcript with the script's words in place of the recognised ones, each on the leg of
    its role: what a perfect recogniser would have stored, scored through the same `derive` as the audio."""
    from pipeline.transcript import SpokenWord

    leg_of = {speaker.role: speaker.id for speaker in derive(stereo, DeriveSetup()).speakers}
    assert {"manager", "client"} <= set(leg_of), call.call_id
    words = [SpokenWord(start=word.start, end=word.end, text=word.text, speaker=leg_of[word.role], prob=1.0)
             for word in script_words(call)]
    return stereo.model_copy(update={"words": words})


SAMPLE_CALLS = load_sample_calls()


@pytest.fixture(scope="session")
def settings() -> Settings:
    # Tests run on the CPU with the packaged whisper-base, whatever the machine has.
    return load_settings(device="cpu", model="whisper-base")


@pytest.fixture(scope="session")
def derive_setup() -> DeriveSetup:
    """The shipped lexicons and the default scorecard."""
    return DeriveSetup.load()


@pytest.fixture(scope="session")
def analyzer(settings: Settings, derive_setup: DeriveSetup) -> CallAnalyzer:
    return CallAnalyzer(settings, setup=derive_setup)


@pytest.fixture(scope="session")
def stereo_transcripts(analyzer: CallAnalyzer) -> dict[str, Transcript]:
    """Every sample call transcribed once from its stereo file (the expensive part of the suite)."""
    return {call.call_id: analyzer.transcribe(call.stereo, call_id=call.call_id,
                                              manager_channel=call.manager_channel, direction=call.direction)
            for call in SAMPLE_CALLS}


@pytest.fixture(scope="session")
def stereo_results(stereo_transcripts: dict[str, Transcript], derive_setup: DeriveSetup) -> dict[str, CallResult]:
    """Their results, as `analyzer.analyze` gives them."""
    return {call_id: derive(transcript, derive_setup) for call_id, transcript in stereo_transcripts.items()}


@pytest.fixture(scope="session")
def mono_transcripts(analyzer: CallAnalyzer) -> dict[str, Transcript]:
    """Every sample call transcribed once from its mono file, its speakers diarized."""
    return {call.call_id: analyzer.transcribe(call.mono, call_id=f"{call.call_id}-mono", direction=call.direction)
            for call in SAMPLE_CALLS}


@pytest.fixture(scope="session")
def mono_results(mono_transcripts: dict[str, Transcript], derive_setup: DeriveSetup) -> dict[str, CallResult]:
    return {call_id: derive(transcript, derive_setup) for call_id, transcript in mono_transcripts.items()}


COMMON_VOICE = REAL_SPEECH / "common_voice_ru"


def common_voice_clips() -> dict[str, list[Path]]:
    """Speaker id -> their Common Voice clips (ecb22ff2 and 9042795c have two each)."""
    import csv

    with (COMMON_VOICE / "transcripts.tsv").open(encoding="utf-8") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    clips: dict[str, list[Path]] = {}
    for row in rows:
        clips.setdefault(row["speaker"], []).append(COMMON_VOICE / row["path"])
    return clips


def join_clips(paths: list[Path], *, pause_s: float = 0.8):
    """The clips one after another with a pause before each, as one 16 kHz signal, and each clip's speech span
    in it (first to last word: Common Voice clips carry a second or more of room noise at each end)."""
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from pipeline.audio import SAMPLE_RATE_HZ, decode_all

    pieces, spans, cursor = [], [], 0.0
    for path in paths:
        clip = decode_all(path)[1][0]
        pieces += [np.zeros(int(pause_s * SAMPLE_RATE_HZ), np.float32), clip]
        cursor += pause_s
        speech = get_speech_timestamps(clip, VadOptions())
        spans.append((cursor + speech[0]["start"] / SAMPLE_RATE_HZ, cursor + speech[-1]["end"] / SAMPLE_RATE_HZ))
        cursor += len(clip) / SAMPLE_RATE_HZ
    return np.concatenate(pieces), spans


class FakeClock:
    """A clock tests move by hand (login throttling windows, session ages, review times)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


WORKBENCH_USERS = {  # login: (name, role, Bitrix24 user id, password)
    "anna": ("Анна Петрова", "qa", None, "anna-password-1"),
    "boss": ("Борис Руководов", "supervisor", None, "boss-password-1"),
    "alexey": ("Алексей Смирнов", "manager", "12", "alexey-password-1"),
    "maria": ("Мария Кузнецова", "manager", "15", "maria-password-1"),
}


@dataclass
class WorkbenchSite:
    url: str
    store_root: Path
    lexicons: Path
    clock: FakeClock
    app: object

    @property
    def bench(self):
        return self.app.state.bench  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def workbench_site(tmp_path_factory, stereo_transcripts, mono_transcripts, settings) -> Iterator[WorkbenchSite]:
    """The workbench served by uvicorn on loopback over a folder store of the sample calls (stereo calls with an
    audio copy, mono calls playing from their source file, one Bitrix24 call with no audio), with a QA lead, a
    supervisor and two managers, and a lexicon folder of its own (the lexicon page saves into it)."""
    import csv
    import time

    from pipeline.audio_copy import store_audio_copy
    from pipeline.reviews import store_result
    from pipeline.schema import CallMetadata
    from pipeline.stores import open_store, transcript_key
    from pipeline.web.app import create_app
    from pipeline.web.users import UserBook
    from tests.services import asgi_server

    root = tmp_path_factory.mktemp("workbench")
    lexicons = root / "lexicons"
    lexicons.mkdir()
    for path in (REPO / "lexicons").glob("*.yaml"):
        shutil.copy(path, lexicons / path.name)
    store = open_store(str(root / "store"), settings.s3)
    manifest = {row["call_id"]: row for row in csv.DictReader((CALLS / "manifest.csv").open(encoding="utf-8"))}
    setup = DeriveSetup.load(lexicons)
    calls = [(f"{call.call_id}-stereo", stereo_transcripts[call.call_id], call.stereo) for call in SAMPLE_CALLS]
    calls += [(f"{call.call_id}-mono", mono_transcripts[call.call_id], call.mono) for call in SAMPLE_CALLS]
    for call_id, transcript, recording in calls:
        row = manifest[call_id]
        metadata = CallMetadata(started_at=row["started_at"], manager_id=row["manager"],
                                manager_name=row["manager_name"], deal_id=row["deal_id"])
        source = transcript.source.model_copy(update={"uri": str(recording)})
        if call_id == "fitness-mono":  # a Bitrix24 call whose copy was not kept: nothing to play
            source = source.model_copy(update={"uri": "bitrix24://portal.example/call/fitness-mono"})
        transcript = transcript.model_copy(update={"call_id": call_id, "metadata": metadata, "source": source})
        store.write(transcript_key(call_id), transcript.to_json().encode())
        store_result(store, transcript, setup)
        if call_id.endswith("-stereo"):
            store_audio_copy(recording, store, call_id)
    users = UserBook(root / "users.yaml")
    for login, (name, role, bitrix24_id, password) in WORKBENCH_USERS.items():
        users.add(login, name=name, role=role, password=password, bitrix24_user_id=bitrix24_id)  # type: ignore[arg-type]
    site_settings = settings.model_copy(update={
        "lexicons": lexicons,
        "run": settings.run.model_copy(update={"store": str(root / "store")}),
        "web": settings.web.model_copy(update={"users_file": root / "users.yaml", "page_size": 10,
                                               "index_path": root / "index.sqlite"})})
    clock = FakeClock(time.time())
    app = create_app(site_settings, clock=clock)
    with asgi_server(app) as url:
        yield WorkbenchSite(url=url, store_root=root / "store", lexicons=lexicons, clock=clock, app=app)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """One S3-compatible server (moto's server mode) for the tests that need one; each test takes its own bucket."""
    from tests.services import s3_server

    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path: Path):
    """The same test on a folder store and on an S3 store (a fresh bucket of the session's moto server)."""
    from pipeline.stores import FolderStore, S3Store

    if request.param == "folder":
        return FolderStore(tmp_path / "store")
    import boto3

    from pipeline.support.s3 import S3Settings

    endpoint = request.getfixturevalue("s3_endpoint")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    bucket = f"test-{tmp_path.name.lower().replace('_', '-')[-40:]}".rstrip("-")
    client.create_bucket(Bucket=bucket)
    return S3Store(f"s3://{bucket}/artifacts", S3Settings(), client=client)
