"""Role detection in mono calls as pure logic: hand-made turns, hits and voices, no audio or model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import DefinitionError
from pipeline.lexicon import DEFAULT_LEXICONS, load_lexicons
from pipeline.roles import RoleOptions, VoiceprintMatch, detect_roles
from pipeline.schema import Hit, Turn

CUES = {("greeting", "name"): ("manager", 1.5), ("needs", "question"): ("manager", 1.0),
        ("objections", "price"): ("client", 1.0)}


def turns(*speakers: str) -> list[Turn]:
    return [Turn(start=i * 3.0, end=i * 3.0 + 2.5, speaker=s, role="unknown", text="…")
            for i, s in enumerate(speakers)]


def hit(lexicon: str, term: str, turn: int) -> Hit:
    return Hit(lexicon=lexicon, term=term, role="unknown", start=turn * 3.0, end=turn * 3.0 + 1, text="…",
               turn=turn)


def test_cues_name_the_manager_whoever_spoke_first() -> None:
    call = turns("S1", "S2", "S1", "S2")
    roles, found = detect_roles(["S1", "S2"], call, [hit("greeting", "name", 1), hit("objections", "price", 2)],
                                cues=CUES)
    assert roles == {"S1": "client", "S2": "manager"} and found.manager == "S2"
    # margin 2.5 points -> logistic 0.924
    assert found.confidence == pytest.approx(1 / (1 + np.exp(-2.5)), abs=1e-3)
    assert [(e.kind, e.speaker, e.points) for e in found.evidence] == [("lexicon", "S2", 1.5),
                                                                     ("lexicon", "S1", -1.0)]


def test_a_cue_counts_once_per_speaker_however_often_it_is_said() -> None:
    call = turns("S1", "S2", "S1", "S2", "S1")
    hits = [hit("needs", "question", 0), hit("needs", "question", 2), hit("needs", "question", 4)]
    _, found = detect_roles(["S1", "S2"], call, hits, cues=CUES, options=RoleOptions(min_confidence=0.5))
    assert found.confidence == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-3)


def test_the_direction_alone_is_not_enough() -> None:
    roles, found = detect_roles(["S1", "S2"], turns("S1", "S2"), [], cues=CUES, direction="in")
    assert set(roles.values()) == {"unknown"} and found.manager is None
    assert found.confidence == pytest.approx(0.731, abs=1e-3) and found.evidence[-1].kind == "undecided"
    # ... but it tips the balance: incoming calls are answered by the manager.
    roles, found = detect_roles(["S1", "S2"], turns("S1", "S2"), [hit("greeting", "name", 0)], cues=CUES,
                                direction="in")
    assert roles == {"S1": "manager", "S2": "client"} and found.confidence == pytest.approx(0.924, abs=1e-3)
    _, outgoing = detect_roles(["S1", "S2"], turns("S1", "S2"), [], cues=CUES, direction="out")
    assert outgoing.evidence[0].speaker == "S2"  # the client answers an outgoing call ("Алло")


def test_a_voiceprint_points_at_the_closer_voice() -> None:
    rng = np.random.default_rng(1)
    manager, client = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 256)))
    noisy = manager + 0.6 * rng.normal(size=256) / 16
    voices = {"S1": client, "S2": noisy / np.linalg.norm(noisy)}
    match = VoiceprintMatch(name="Ольга", similarity={s: float(np.dot(v, manager)) for s, v in voices.items()})
    roles, found = detect_roles(["S1", "S2"], turns("S1", "S2"), [], cues=CUES, voiceprint=match)
    assert roles == {"S1": "client", "S2": "manager"} and found.confidence > 0.99
    assert found.evidence[0].kind == "voiceprint" and "Ольга" in found.evidence[0].detail


def test_one_voice_keeps_roles_unknown_and_a_third_voice_stays_unknown() -> None:
    roles, found = detect_roles(["S1"], turns("S1", "S1"), [hit("greeting", "name", 0)], cues=CUES)
    assert roles == {"S1": "unknown"} and "1 voice" in found.evidence[-1].detail
    call = turns("S1", "S2", "S1", "S3", "S2", "S1")
    roles, found = detect_roles(["S1", "S2", "S3"], call, [hit("greeting", "name", 0), hit("needs", "question", 2)],
                                cues=CUES)
    assert roles == {"S1": "manager", "S2": "client", "S3": "unknown"}
    assert found.evidence[0].kind == "speakers"


def test_the_shipped_lexicons_mark_role_cues() -> None:
    cues = load_lexicons(DEFAULT_LEXICONS).role_cues
    assert cues[("greeting", "how_can_i_help")] == ("manager", 1.5)
    assert cues[("objections", "price")] == ("client", 1.0)
    assert ("greeting", "hello") not in cues  # both parties say hello
    assert ("politeness", "polite") not in cues


def test_a_role_cue_on_a_term_anyone_may_say_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "mixed.yaml").write_text(
        "title: Смешанное\nspeaker: any\nterms:\n  - id: price\n    phrases: [цена]\n    role_cue: 1.0\n",
        encoding="utf-8")
    with pytest.raises(DefinitionError) as raised:
        load_lexicons(tmp_path)
    assert "mixed.yaml:6" in str(raised.value) and "a role cue needs speaker manager or client" in str(raised.value)
