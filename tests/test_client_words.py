"""`stereo_strategy: mix_redecode` (issue 13, part 6; the default): the client's turns heard again on the client's
leg alone.

The packing and the choice between hypotheses are pure logic, tested on made-up words and levels; the strategy
itself runs on the two shortest sample calls with the real whisper-base, against their scripts: every word on the
right party, and the client's words no worse than the mix hears them (bench/stereo_strategies.py measures all
nine calls: lemma WER 0.28 for the mix, about 0.19 re-decoded).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.analyze import CallAnalyzer
from pipeline.asr import AsrWord
from pipeline.audio import SAMPLE_RATE_HZ
from pipeline.derive import derive
from pipeline.settings import Settings
from pipeline.speakers import ChannelOptions, SpeakerWord
from pipeline.speakers.redecode import LegPatch, apply_leg_patches, leg_turns, pack_turns, unpack_words
from pipeline.transcript import Transcript
from tests.conftest import SAMPLE_CALLS, SampleCall
from tests.evaluation import lemma_wer, role_errors

SHORTEST = sorted(SAMPLE_CALLS, key=lambda call: call.duration_s)[:2]


def _levels(speech: dict[int, list[tuple[float, float]]], duration_s: float) -> np.ndarray:
    """(2, n) frame levels: -70 dB noise, -20 dB where a leg speaks."""
    frame_db = np.full((2, int(duration_s * 100)), -70.0, np.float32)
    for channel, spans in speech.items():
        for start, end in spans:
            frame_db[channel, int(start * 100):int(end * 100)] = -20.0
    return frame_db


def _word(text: str, start: float, end: float, prob: float, channel: int | None = None) -> AsrWord:
    return AsrWord(start=start, end=end, text=text, prob=prob, channel=channel)


def test_turns_are_packed_and_their_words_return_to_the_call_timeline() -> None:
    frame_db = _levels({1: [(2.0, 3.0), (3.5, 4.0), (8.0, 9.0)], 0: [(4.5, 7.5)]}, 12.0)
    turns = leg_turns(frame_db, 1, offset_s=100.0, options=ChannelOptions(redecode_pad_s=0.3, redecode_join_s=1.0))
    assert turns == [(101.7, 104.3), (107.7, 109.3)]  # the first two runs joined; padded; on the call's timeline
    leg = np.arange(12 * SAMPLE_RATE_HZ, dtype=np.float32)
    packed, placement = pack_turns(leg, turns, offset_s=100.0, gap_s=1.0)
    assert len(packed) == round((2.6 + 1.0 + 1.6 + 1.0) * SAMPLE_RATE_HZ)
    assert packed[0] == leg[int(1.7 * SAMPLE_RATE_HZ)]
    assert placement.packed_start_s == [0.0, 3.6]
    patches = unpack_words([_word("Да,", 0.3, 0.6, 0.9), _word("слушаю.", 0.7, 1.2, 0.9),
                            _word("Подходит.", 3.8, 4.4, 0.8)], placement, channel=1)
    assert [(p.start, p.end, [(w.text, w.start, w.end, w.channel) for w in p.words]) for p in patches] == [
        (101.7, 104.3, [("Да,", 102.0, 102.3, 1), ("слушаю.", 102.4, 102.9, 1)]),
        (107.7, 109.3, [("Подходит.", 107.9, 108.5, 1)]),
    ]


def test_the_leg_replaces_the_mix_only_with_a_full_and_probable_hypothesis() -> None:
    frame_db = _levels({0: [(0.0, 2.0)], 1: [(3.0, 5.0), (7.0, 9.0), (11.0, 13.0)]}, 14.0)
    manager = SpeakerWord(word=_word("Удобно?", 0.5, 1.5, 0.9), speaker="left", channel=0)
    mixed = [manager] + [SpeakerWord(word=_word(text, start, start + 0.5, prob), speaker="right", channel=1)
                         for text, start, prob in (("А", 3.2, 0.3), ("у", 3.8, 0.3), ("вас?", 4.3, 0.3),
                                                   ("Да,", 7.2, 0.9), ("удобно.", 8.0, 0.9),
                                                   ("Хорошо,", 11.2, 0.9), ("давайте.", 12.0, 0.9))]
    patches = [
        LegPatch(start=2.7, end=5.3, channel=1, words=[_word("Алло.", 3.2, 4.5, 0.8, 1)]),  # one word for three
        LegPatch(start=6.7, end=9.3, channel=1, words=[_word("Да,", 7.2, 7.6, 0.9, 1),
                                                       _word("удобно.", 8.0, 8.6, 0.1, 1)]),  # far less probable
        LegPatch(start=10.7, end=13.3, channel=1, words=[_word("Хорошо,", 11.2, 11.8, 0.8, 1),
                                                         _word("давайте.", 12.0, 12.6, 0.8, 1)]),
    ]
    words = apply_leg_patches(mixed, patches, frame_db, ChannelOptions(redecode_logprob_slack=0.3))
    assert sorted((w.word.text, w.word.prob, w.speaker) for w in words) == sorted(
        [("Удобно?", 0.9, "left"), ("А", 0.3, "right"), ("у", 0.3, "right"), ("вас?", 0.3, "right"),
         ("Да,", 0.9, "right"), ("удобно.", 0.9, "right"), ("Хорошо,", 0.8, "right"), ("давайте.", 0.8, "right")])


def test_a_negation_the_leg_lost_at_a_turn_s_edge_stays() -> None:
    """A held-out call's "Не знаю, надо подумать": heard again alone, the turn began at "знаю"."""
    frame_db = _levels({1: [(31.9, 33.9), (40.0, 41.0)]}, 45.0)
    mixed = [SpeakerWord(word=_word(text, start, end, prob), speaker="right", channel=1)
             for text, start, end, prob in (("Не", 31.95, 32.14, 0.88), ("знаю,", 32.14, 32.48, 0.98),
                                            ("надо", 32.9, 33.22, 0.97), ("подумать.", 33.22, 33.78, 1.0),
                                            ("Ну", 40.0, 40.2, 0.9), ("не", 40.3, 40.5, 0.9))]
    patches = [LegPatch(start=31.65, end=34.08, channel=1, words=[
                   _word("знаю,", 32.14, 32.48, 0.8, 1), _word("надо", 32.78, 33.18, 0.94, 1),
                   _word("подумать.", 33.18, 33.92, 0.99, 1)]),
               LegPatch(start=39.7, end=41.3, channel=1, words=[  # a negation the leg heard as something else
                   _word("Ну", 40.0, 40.2, 0.9, 1), _word("да", 40.3, 40.5, 0.9, 1)])]
    words = apply_leg_patches(mixed, patches, frame_db, ChannelOptions(redecode_logprob_slack=0.3))
    assert [w.word.text for w in sorted(words, key=lambda w: w.word.start)] == [
        "Не", "знаю,", "надо", "подумать.", "Ну", "да"]


def _client_text(call: SampleCall, transcript: Transcript) -> tuple[str, str]:
    client_leg = "right" if call.manager_channel == "left" else "left"
    return (" ".join(u.text for u in call.utterances if u.role == "client"),
            " ".join(w.text for w in transcript.words if w.speaker == client_leg))


@pytest.fixture(scope="module")
def mixing(analyzer: CallAnalyzer, settings: Settings) -> CallAnalyzer:
    return CallAnalyzer(settings.model_copy(update={"stereo_strategy": "mix"}), asr_model=analyzer.asr_model,
                        setup=analyzer.setup)


def test_redecoded_client_words_are_on_the_right_party_and_no_worse_than_the_mix(
        stereo_transcripts: dict[str, Transcript], mixing: CallAnalyzer, derive_setup) -> None:
    references, mixed, redecoded = [], [], []
    for call in SHORTEST:
        # The re-decoded transcript is the suite's shared one (the default strategy), transcribed once per session.
        transcripts = [mixing.transcribe(call.stereo, call_id=call.call_id, manager_channel=call.manager_channel,
                                         direction=call.direction),
                       stereo_transcripts[call.call_id]]
        assert transcripts[0].model.speakers.version == "mix/1"
        assert transcripts[1].model.speakers.version == "mix_redecode/1"
        result = derive(transcripts[1], derive_setup)
        wrong = role_errors(result.words, call.utterances)
        assert not wrong, (call.call_id, [(w.start, w.text, w.role) for w in wrong])
        reference, mix_text = _client_text(call, transcripts[0])
        references.append(reference)
        mixed.append(mix_text)
        redecoded.append(_client_text(call, transcripts[1])[1])
    mix_wer = lemma_wer(" ".join(references), " ".join(mixed))
    redecoded_wer = lemma_wer(" ".join(references), " ".join(redecoded))
    assert redecoded_wer <= mix_wer, (redecoded_wer, mix_wer, redecoded)
