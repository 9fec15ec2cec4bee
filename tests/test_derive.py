"""derive(): the one place a result is made, on hand-built transcripts (the sample calls' scripts, no ASR)."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.derive import SCORE_WARNING, DeriveSetup, derive
from pipeline.roles import RoleOptions
from pipeline.schema import AsrModelInfo, ModelInfo, SourceInfo, SpeakerModelInfo
from pipeline.scoring import CallFacts
from pipeline.transcript import SpokenWord, Transcript, TranscriptSpeaker, read_transcript
from tests.conftest import SAMPLE_CALLS, SampleCall, script_facts, script_words

BY_ID = {call.call_id: call for call in SAMPLE_CALLS}
MODEL = ModelInfo(asr=AsrModelInfo(name="whisper-base", engine="faster-whisper", engine_version="1.2.1",
                                   model_sha256=None, device="cpu", compute_type="int8", batch_size=8, beam_size=5),
                  speakers=SpeakerModelInfo(name="channels", version="mix/1"))


def _transcript(call: SampleCall, separation: str, **extra) -> Transcript:
    names = {"channels": {"manager": "left", "client": "right"}, "diarized": {"manager": "S1", "client": "S2"},
             "none": {"manager": "mixed", "client": "mixed"}}[separation]
    words = [SpokenWord(start=w.start, end=w.end, text=w.text, speaker=names[w.role], prob=1.0)
             for w in script_words(call)]
    speakers = list(dict.fromkeys(w.speaker for w in words))
    channels = 2 if separation == "channels" else 1
    return Transcript(
        call_id=call.call_id, source=SourceInfo(uri="call.mp3", sha256="0" * 64, size_bytes=1, container="mp3",
                                                codec="mp3", sample_rate_hz=8000, channels=channels),
        duration_s=call.duration_s, channels=channels,
        layout="stereo" if separation == "channels" else "mono", layout_reason="stereo", language="ru",
        direction=call.direction, manager_channel=0 if separation == "channels" else None, separation=separation,
        model=MODEL, speakers=[TranscriptSpeaker(id=s, channel=(0 if s == "left" else 1) if separation == "channels"
                                                 else None) for s in sorted(speakers)],
        words=words, analyzed_at="2026-12-03T10:00:00+00:00", callqa_version="0.1.0", **extra)


def test_a_stereo_transcript_is_scored_as_its_script(derive_setup: DeriveSetup) -> None:
    call = BY_ID["stroymat"]
    result = derive(_transcript(call, "channels"), derive_setup)
    words, turns, metrics = script_facts(call)
    hits = derive_setup.lexicons.matcher.find_hits(words, turns, call.duration_s)
    expected = derive_setup.scorecard.score(CallFacts(hits, turns, metrics, call.duration_s, call.direction),
                                            derive_setup.lexicons)
    assert [w.role for w in result.words] == [w.role for w in words]
    assert result.metrics == metrics and result.score == expected and result.quality.passed
    assert {s.id: s.role for s in result.speakers} == {"left": "manager", "right": "client"}
    assert result.role_detection.method == "channels" and result.warnings == []
    assert result.lexicon_version == derive_setup.lexicons.version and result.scorecard_version


def test_derive_is_pure_and_reads_back_what_it_stored(derive_setup: DeriveSetup) -> None:
    transcript = _transcript(BY_ID["dental"], "channels")
    before = transcript.model_dump()
    first = derive(transcript, derive_setup)
    assert derive(transcript, derive_setup) == first and transcript.model_dump() == before
    assert read_transcript(transcript.to_json().encode()) == transcript
    # An old result (what callqa 0.1 stored as transcript.json) is read as a transcript: the same result again.
    assert derive(read_transcript(first.to_json()), derive_setup) == first


def test_a_diarized_call_gets_its_roles_from_the_lexicons_and_not_without_them(derive_setup: DeriveSetup) -> None:
    call = BY_ID["furniture"]
    transcript = _transcript(call, "diarized")
    found = derive(transcript, derive_setup)
    assert found.role_detection.method == "detected" and found.role_detection.manager == "S1"
    assert found.role_detection.confidence >= 0.85 and found.score is not None
    assert {e.kind for e in found.role_detection.evidence} >= {"lexicon", "direction"}
    bare = derive(transcript, DeriveSetup())  # no lexicons: the direction alone is too weak
    assert bare.role_detection.manager is None and bare.score is None and bare.hits == []
    assert {w.role for w in bare.words} == {"unknown"}
    assert [w for w in bare.warnings if w.startswith("mono recording: roles are unknown: evidence too weak")]


@pytest.mark.parametrize("min_confidence", [0.6, 1.0])  # the roles found; the evidence judged too weak
def test_a_diarized_call_is_searched_once_and_its_hits_are_those_of_its_labelled_words(
        derive_setup: DeriveSetup, min_confidence: float) -> None:
    setup = dataclasses.replace(derive_setup, roles=RoleOptions(min_confidence=min_confidence))
    matcher = setup.lexicons.matcher
    found = []
    for call in SAMPLE_CALLS:
        result = derive(_transcript(call, "diarized"), setup)
        found.append(result.role_detection.manager is not None)
        # derive reuses the matches of the search for role cues; a search of the labelled words finds the same
        assert result.hits == matcher.find_hits(result.words, result.turns, result.duration_s), call.call_id
        assert result.hits and {hit.role for hit in result.hits} <= {w.role for w in result.words}
    assert all(found) if min_confidence < 0.9 else not all(found)
    stereo = derive(_transcript(BY_ID["dental"], "channels"), setup)
    with pytest.raises(ValueError, match="searched by its roles"):
        matcher.hits_in(matcher.call_matches(stereo.words, stereo.turns), stereo.duration_s, {"left": "client"})


def test_warnings_come_in_the_results_order(derive_setup: DeriveSetup) -> None:
    transcript = _transcript(BY_ID["windows"], "none", audio_warnings=["damaged audio 1.0-2.0 s"],
                             speaker_warnings=["mono recording: speakers were not separated, roles are unknown"],
                             asr_warnings=["dropped 1 phrase(s) Whisper invented over non-speech audio"])
    result = derive(transcript, derive_setup)
    assert result.warnings == [*transcript.audio_warnings, *transcript.speaker_warnings, *transcript.asr_warnings,
                               f"{SCORE_WARNING}manager and client are not known in this call"]
    assert result.role_detection.method == "none" and [s.id for s in result.speakers] == ["mixed"]


def test_reviews_are_applied_last_and_only_to_their_own_call(derive_setup: DeriveSetup) -> None:
    """tests/test_reviews.py has the rest: the score, the comment, the store, calibration."""
    from pipeline.reviews import Review

    transcript = _transcript(BY_ID["dental"], "channels")
    review = Review(call_id="dental", criterion="greeting", verdict="not_met", reviewer="ivanova",
                    reviewer_name="Анна Иванова", at="2026-12-03T10:15:00Z")
    machine, reviewed = derive(transcript, derive_setup), derive(transcript, derive_setup, [review])
    assert reviewed.model_copy(update={"score": machine.score}) == machine  # nothing but the score changes
    assert reviewed.score is not None and reviewed.score.reviewed_by == ["Анна Иванова"]
    with pytest.raises(ValueError, match="another call"):
        derive(transcript, derive_setup, [review.model_copy(update={"call_id": "windows"})])
