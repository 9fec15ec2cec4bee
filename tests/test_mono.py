"""Mono calls: the embedded diarizer (resemblyzer on CPU), word-level speaker assignment and role detection,
measured against ground truth.

Bounds: DER at most 15 % on the synthetic calls (the issue's goal; measured 1.8-7.1 % with the usual 0.25 s collar,
bench/README.md), and role-attributed word error within 10 points of the stereo result on the same calls (stereo
puts every word on the right party, mono measured 1.3 % wrong, 2.6 % before a sentence was kept on one speaker).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.asr import AsrWord
from pipeline.audio import SAMPLE_RATE_HZ, decode_all
from pipeline.metrics import speech_intervals
from pipeline.schema import CallResult
from pipeline.speakers.assign import assign_speakers
from pipeline.speakers.base import SpeakerWord
from pipeline.speakers.diarization import DiarizationSegment
from pipeline.speakers.sentences import SentenceVoice, realign_to_sentences, settle_short_sentences
from tests.audio_write import write_audio
from tests.conftest import SAMPLE_CALLS, common_voice_clips, join_clips
from tests.evaluation import diarization_error_rate, role_errors

CALL_IDS = [call.call_id for call in SAMPLE_CALLS]
BY_ID = {call.call_id: call for call in SAMPLE_CALLS}


def _hypothesis(result: CallResult) -> list[tuple[str, float, float]]:
    return [(speaker, start, end) for speaker, spans in speech_intervals(result.words, 1.0).items()
            for start, end in spans]


@pytest.mark.parametrize("call_id", CALL_IDS)
def test_diarization_error_rate_on_the_synthetic_calls(mono_results, call_id: str) -> None:
    call = BY_ID[call_id]
    reference = [(u.role, u.start, u.end) for u in call.utterances]
    assert diarization_error_rate(reference, _hypothesis(mono_results[call_id])) <= 0.15


def test_roles_in_mono_are_close_to_stereo(mono_results, stereo_results) -> None:
    mono_wrong = sum(len(role_errors(mono_results[c.call_id].words, c.utterances)) for c in SAMPLE_CALLS)
    mono_words = sum(len(mono_results[c.call_id].words) for c in SAMPLE_CALLS)
    stereo_wrong = sum(len(role_errors(stereo_results[c.call_id].words, c.utterances)) for c in SAMPLE_CALLS)
    stereo_words = sum(len(stereo_results[c.call_id].words) for c in SAMPLE_CALLS)
    assert mono_wrong / mono_words <= stereo_wrong / stereo_words + 0.10


def test_a_sentence_stays_with_its_speaker(mono_results) -> None:
    """The sentence rules (pipeline/speakers/sentences.py) on the whole mono analysis: without them 20 of 768
    words had the wrong role (2.6 %), at the turn changes; with them none (bench/README.md). The bound, 1 %,
    leaves room for a few words that another CPU's recognition cuts differently, and fails if either rule stops
    working. The stroymat client's opening "Алло" (heard "А у вас?") sat inside the window of the manager's
    greeting."""
    wrong = sum(len(role_errors(mono_results[c.call_id].words, c.utterances)) for c in SAMPLE_CALLS)
    words = sum(len(mono_results[c.call_id].words) for c in SAMPLE_CALLS)
    assert wrong / words <= 0.01, (wrong, words)
    opening = mono_results["stroymat"].words[0]
    assert opening.start < 1.5 and opening.role == "client", opening


@pytest.mark.parametrize("call_id", CALL_IDS)
def test_roles_do_not_follow_the_pitch(mono_results, call_id: str) -> None:
    """The samples give the manager the lower voice in some calls and the higher in others: each call's
    manager is found either way, with the evidence recorded."""
    result, call = mono_results[call_id], BY_ID[call_id]
    manager = [s for s in result.speakers if s.role == "manager"]
    assert len(manager) == 1 and {s.role for s in result.speakers} == {"manager", "client"}, call.manager_voice
    truth_manager_talk = call.talk_s("manager")
    assert manager[0].talk_s == pytest.approx(truth_manager_talk, rel=0.25)
    detection = result.role_detection
    assert detection.method == "detected" and detection.confidence >= 0.5
    assert {item.kind for item in detection.evidence} >= {"lexicon", "direction"}
    assert result.model.speakers.name == "embedded" and result.metrics.talk_ratio_manager is not None
    assert result.score is not None


def test_two_real_voices_joined(analyzer, tmp_path: Path) -> None:
    """Common Voice clips of two different people, alternating with pauses: exact turns are known."""
    clips = common_voice_clips()
    order = [("ecb22ff2", 0), ("9042795c", 0), ("ecb22ff2", 1), ("9042795c", 1)]
    samples, spans = join_clips([clips[speaker][index] for speaker, index in order])
    reference = [(speaker, start, end) for (speaker, _), (start, end) in zip(order, spans)]
    path = write_audio(tmp_path / "two-voices.wav", samples, SAMPLE_RATE_HZ)
    result = analyzer.analyze(path)
    assert len(result.speakers) == 2
    assert diarization_error_rate(reference, _hypothesis(result)) <= 0.15


def test_one_speaker_comes_out_as_one(analyzer, tmp_path: Path) -> None:
    call = BY_ID["stroymat"]
    _, stereo = decode_all(call.stereo)
    leg = stereo[0 if call.manager_channel == "left" else 1]
    spans = [leg[int(u.start * SAMPLE_RATE_HZ): int(u.end * SAMPLE_RATE_HZ)] for u in call.utterances
             if u.role == "manager"]
    pause = np.zeros(int(0.7 * SAMPLE_RATE_HZ), np.float32)
    path = write_audio(tmp_path / "alone.wav", np.concatenate([x for s in spans for x in (s, pause)]), SAMPLE_RATE_HZ)
    result = analyzer.analyze(path)
    assert [s.id for s in result.speakers] == ["S1"] and result.speakers[0].role == "unknown"
    assert any("1 voice" in warning for warning in result.warnings)


def test_words_get_the_speaker_covering_most_of_them() -> None:
    segments = [DiarizationSegment(0.0, 2.0, "S1"), DiarizationSegment(2.0, 4.0, "S2"),
                DiarizationSegment(3.6, 5.0, "S1")]

    def word(start: float, end: float) -> AsrWord:
        return AsrWord(start=start, end=end, text="слово", prob=1.0)

    assigned = assign_speakers([word(0.2, 0.6), word(1.7, 2.6), word(2.5, 3.0), word(3.85, 4.3), word(6.0, 6.3)],
                               segments)
    assert [a.speaker for a in assigned] == ["S1", "S2", "S2", "S1", "S1"]
    assert [a.overlap for a in assigned] == [False, True, False, True, False]


def _spoken(*items: tuple[str, str], pause_before: dict[int, float] | None = None) -> list[SpeakerWord]:
    """Words 0.3 s long, 0.1 s apart (plus `pause_before[i]` before word i), with their speakers."""
    words, start = [], 0.0
    for index, (text, speaker) in enumerate(items):
        start += (pause_before or {}).get(index, 0.0)
        words.append(SpeakerWord(word=AsrWord(start=start, end=start + 0.3, text=text, prob=0.9), speaker=speaker))
        start += 0.4
    return words


def test_a_sentences_edge_words_go_to_its_speaker() -> None:
    """The mis-attributions of the sample calls' mono mixes: a diarizer's window straddling a change of speaker
    gives a sentence's first or last words to the other party; the sentence's full stop says whose they are."""
    said = _spoken(("Меня", "S1"), ("зовут", "S1"), ("Алексей,", "S1"), ("вам", "S1"), ("удобно", "S1"),
                   ("сейчас", "S1"), ("говорить.", "S2"), ("Да,", "S2"), ("слушаю", "S2"), ("вас.", "S2"),
                   ("Понял,", "S2"), ("а", "S1"), ("какой", "S1"), ("объем?", "S1"))
    realigned = realign_to_sentences(said, max_run_s=1.6)
    assert [item.speaker for item in realigned] == ["S1"] * 7 + ["S2"] * 3 + ["S1"] * 4
    assert [item.word for item in realigned] == [item.word for item in said]
    assert realign_to_sentences(said, max_run_s=0) == said


def test_a_change_of_speaker_the_sentence_cannot_decide_stays() -> None:
    # As many words each: no main speaker.
    even = _spoken(("Сколько", "S2"), ("окон?", "S1"))
    assert realign_to_sentences(even, max_run_s=1.6) == even
    # The other party's run is longer than a diarizer's window: its own finding, not a straddled window.
    long_run = _spoken(*[("да", "S2")] * 5, *[("слово", "S1")] * 8, ("конец.", "S1"))
    assert realign_to_sentences(long_run, max_run_s=1.6) == long_run
    # A pause ends a sentence though Whisper wrote no full stop: the answer in it is the other party's.
    paused = _spoken(("Вам", "S1"), ("удобно", "S1"), ("говорить", "S1"), ("да", "S2"),
                     pause_before={3: 1.2})
    assert realign_to_sentences(paused, max_run_s=1.6) == paused


def test_a_short_sentence_goes_to_the_voice_it_clearly_matches() -> None:
    """The client's "Алло!" before the manager's greeting: one diarizer window spans both, so the greeting's voice
    took it. Heard on its own, it sounds like the client."""
    manager, client = np.eye(3)[0], np.eye(3)[1]
    voices = {"S1": manager, "S2": client}
    said = _spoken(("Алло!", "S1"), ("Добрый", "S1"), ("день.", "S1"))
    alone = SentenceVoice(start=0.0, end=0.3, embedding=(0.4 * manager + 0.9 * client) / np.hypot(0.4, 0.9))
    settled = settle_short_sentences(said, [alone], voices, margin=0.05)
    assert [item.speaker for item in settled] == ["S2", "S1", "S1"]
    # Not clearly either voice: the words keep their speakers.
    unsure = SentenceVoice(start=0.0, end=0.3, embedding=(0.7 * manager + 0.72 * client) / np.hypot(0.7, 0.72))
    assert settle_short_sentences(said, [unsure], voices, margin=0.05) == said
    # One voice in the call: nobody to give the sentence to.
    assert settle_short_sentences(said, [alone], {"S1": manager}, margin=0.05) == said


def test_short_sentences_are_embedded_in_one_batch_as_each_alone() -> None:
    """Real speech through the real encoder: the batched voices are resemblyzer's own `embed_utterance` of each
    clip; a sentence over `max_s` or past the samples' end gets none."""
    from pipeline.speakers.sentences import embed_short_sentences
    from pipeline.speakers.voices import embed_clips, load_encoder

    _, samples = decode_all(BY_ID["stroymat"].mono)
    speech = samples[0, : 12 * SAMPLE_RATE_HZ]
    clips = [speech[: SAMPLE_RATE_HZ // 2], speech[SAMPLE_RATE_HZ: 3 * SAMPLE_RATE_HZ], speech[4 * SAMPLE_RATE_HZ:]]
    alone = np.stack([load_encoder().embed_utterance(clip) for clip in clips])
    assert np.allclose(embed_clips(clips), alone, atol=1e-4)

    def word(start: float, end: float, text: str) -> AsrWord:
        return AsrWord(start=start, end=end, text=text, prob=0.9)

    words = [word(0.4, 0.8, "Алло."), word(2.0, 2.5, "Добрый"), word(2.6, 5.0, "день."), word(11.5, 12.5, "Да.")]
    found = embed_short_sentences(speech, words, offset_s=0.0, max_s=2.0)
    assert [(voice.start, voice.end) for voice in found] == [(0.4, 0.8)]  # 3 s long; past the end
    assert np.isclose(np.linalg.norm(found[0].embedding), 1.0)
    assert embed_short_sentences(speech, words, offset_s=0.0, max_s=0) == []


def test_dual_mono_is_diarized_like_mono(analyzer, tmp_path: Path) -> None:
    """A PBX that writes the same mix on both channels: no channel map to trust, so the call is diarized."""
    call = BY_ID["internet"]
    _, mono = decode_all(call.mono)
    path = write_audio(tmp_path / "dual-mono.flac", np.stack([mono[0], mono[0] * 0.8]), SAMPLE_RATE_HZ)
    result = analyzer.analyze(path, direction=call.direction)
    assert (result.channels, result.layout) == (2, "mono")
    assert result.model.speakers.name == "embedded" and result.role_detection.method == "detected"
    assert {s.role for s in result.speakers} == {"manager", "client"}
    assert len(role_errors(result.words, call.utterances)) / len(result.words) <= 0.1


@pytest.mark.parametrize("speaker", ["ecb22ff2", "9042795c"])
def test_one_real_voice_comes_out_as_one(speaker: str) -> None:
    """A real person's two Common Voice clips joined: the diarizer alone (no ASR) must hear one voice. The second
    speaker's clips split into two clusters 0.59 alike (one clip is 1.5 s): the 2 s minimum folds them."""
    from pipeline.speakers import load_diarizer
    from pipeline.speakers.diarization import SpeakerOptions

    samples, _ = join_clips(common_voice_clips()[speaker])
    session = load_diarizer(SpeakerOptions()).session()
    session.add(samples, offset_s=0.0)
    diarization = session.finish()
    assert diarization.speakers == ["S1"] and diarization.confidence == {"S1": None}


def test_rescoring_finds_the_roles_again_from_edited_cues(analyzer, derive_setup, tmp_path: Path) -> None:
    """A QA lead's lexicons without role cues leave a mono call's roles unknown (the direction alone is too
    weak); re-scoring with the shipped lexicons finds them, as analysing with them does, without the audio."""
    import re
    import shutil

    from pipeline.derive import DeriveSetup, derive
    from pipeline.lexicon import DEFAULT_LEXICONS
    from pipeline.transcript import Transcript

    folder = Path(shutil.copytree(DEFAULT_LEXICONS, tmp_path / "lexicons"))
    for path in folder.glob("*.yaml"):
        path.write_text(re.sub(r"^\s*role_cue:.*\n", "", path.read_text(encoding="utf-8"), flags=re.M),
                        encoding="utf-8")
    no_cues = DeriveSetup.load(folder)
    assert not no_cues.lexicons.role_cues
    call = BY_ID["furniture"]
    transcript = analyzer.transcribe(call.mono, direction=call.direction)
    before = derive(transcript, no_cues)
    assert before.role_detection.manager is None and before.score is None
    assert [e.kind for e in before.role_detection.evidence] == ["direction", "undecided"]

    direct = derive(transcript, derive_setup)  # what `callqa analyze` with the shipped lexicons gives
    assert direct == analyzer.analyze(call.mono, direction=call.direction).model_copy(
        update={"analyzed_at": direct.analyzed_at})
    # A result stored before transcripts had their own schema is re-scored the same way.
    after = derive(Transcript.from_result(before), derive_setup)
    assert after.role_detection.manager == direct.role_detection.manager is not None
    assert after.role_detection.confidence == pytest.approx(direct.role_detection.confidence, abs=1e-3)
    assert {e.kind for e in after.role_detection.evidence} == {"lexicon", "direction"}
    assert [w.role for w in after.words] == [w.role for w in direct.words]
    assert after.metrics == direct.metrics and after.score == direct.score
    assert not any("roles are unknown" in warning for warning in after.warnings)
    assert derive(Transcript.from_result(direct), derive_setup) == direct  # the same lexicons change nothing
