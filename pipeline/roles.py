"""Manager or client for each speaker.

Stereo calls follow the channel map (the PBX records the manager's leg on a known side; default left). In a mono
call the diarizer's speakers are told apart by three kinds of evidence, each scored in log-odds points for "this
speaker is the manager" and recorded in the result:

- lexicon cues: terms the lexicons mark with `role_cue` (introducing oneself and the company, "чем могу помочь",
  needs questions, naming the price for the manager; objections for the client), each counted once per speaker;
- the call's direction: an incoming call is answered by the manager, an outgoing one by the client ("Алло");
- the manager's voiceprint (speakers/voiceprints.py): how much closer one speaker's voice is to it than the other's.

The two speakers who talk most get the roles; the confidence is the probability of the winning assignment under
those points (a logistic of their margin). Below `min_confidence` the roles stay "unknown", never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.schema import Hit, Role, RoleDetection, RoleEvidence, Turn, Word
from pipeline.speakers import CHANNEL_SPEAKERS
from pipeline.support.russian import call_time_tenths

if TYPE_CHECKING:
    from pipeline.lexicon import LexiconSet

__all__ = ["RoleCue", "RoleOptions", "VoiceprintMatch", "channel_index", "detect_roles", "roles_from_channel_map",
           "roles_of_mono_call", "unknown_roles_warning"]

ChannelName = Literal["left", "right"]
RoleCue = tuple[Literal["manager", "client"], float]  # who says it, and how strongly it tells


class VoiceprintMatch(BaseModel):
    """How close each diarized voice is to the manager's enrolled voiceprint (cosine, resemblyzer space): the
    voiceprint evidence a transcript keeps for `detect_roles`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(None, description="whose voiceprint it is")
    similarity: dict[str, float]


def channel_index(name: ChannelName) -> int:
    return 0 if name == "left" else 1


def roles_from_channel_map(manager_channel: int) -> dict[str, Role]:
    """Speaker id -> role for a stereo call whose manager is on channel `manager_channel` (0 left, 1 right)."""
    return {speaker: ("manager" if index == manager_channel else "client")
            for index, speaker in enumerate(CHANNEL_SPEAKERS)}


class RoleOptions(BaseModel):
    """How manager and client are told apart in a mono call (docs/speakers.md).

    Attributes:
        min_confidence: below this probability the roles stay "unknown". 0.85 (a margin of 1.73 points) needs
            more than the direction alone (0.73) or one cue with a weak one (0.82: a client's "хочу приехать"
            reads as the manager's next step), and is met by the direction and a cue, or two cues (0.88).
        direction_weight: log-odds points for the speaker the direction favours (who spoke first).
        voiceprint_weight: log-odds points per 0.1 of cosine similarity by which one speaker's voice is closer
            to the manager's voiceprint than the other's. Measured: the manager's own voice is 0.1-0.3 closer.
        min_cue_weight: lexicon cues below this weight are ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_confidence: float = Field(0.85, ge=0.5, le=1)
    direction_weight: float = Field(1.0, ge=0)
    voiceprint_weight: float = Field(2.0, ge=0)
    min_cue_weight: float = Field(0.0, ge=0)


def _talk_s(turns: Sequence[Turn]) -> dict[str, float]:
    talk: dict[str, float] = {}
    for turn in turns:
        talk[turn.speaker] = talk.get(turn.speaker, 0.0) + turn.end - turn.start
    return talk


def _unknown(speakers: Sequence[str], detail: str, evidence: list[RoleEvidence] | None = None,
             confidence: float | None = None) -> tuple[dict[str, Role], RoleDetection]:
    evidence = [*(evidence or []), RoleEvidence(kind="undecided", detail=detail)]
    return dict.fromkeys(speakers, "unknown"), RoleDetection(method="detected", confidence=confidence,
                                                              evidence=evidence)


def detect_roles(speakers: Sequence[str], turns: Sequence[Turn], hits: Sequence[Hit], *,
                 cues: Mapping[tuple[str, str], RoleCue], direction: str | None = None,
                 voiceprint: VoiceprintMatch | None = None, kept: Sequence[RoleEvidence] = (),
                 options: RoleOptions | None = None) -> tuple[dict[str, Role], RoleDetection]:
    """Roles of a diarized mono call.

    Args:
        speakers: speaker ids, in order of first speech.
        turns: the call's turns (roles unknown); `hits[i].turn` indexes them.
        hits: lexicon hits on the call with roles unknown.
        cues: (lexicon, term) -> (who says it, weight), from `LexiconSet.role_cues()`.
        direction: "in", "out" or None (unknown).
        voiceprint: how close each voice is to the manager's enrolled voiceprint, when one was known.
        kept: direction and voiceprint evidence of a result stored before transcripts kept the voices, counted
            as it stands instead of `direction` and `voiceprint`.

    Returns:
        speaker -> role, and how they were found.
    """
    options = options or RoleOptions()
    talk = _talk_s(turns)
    ranked = sorted(speakers, key=lambda s: -talk.get(s, 0.0))
    if len(ranked) < 2:
        return _unknown(speakers, f"{len(ranked)} voice(s) heard: roles need two")
    first_speaker = next((turn.speaker for turn in turns if turn.speaker in ranked[:2]), ranked[0])
    a, b = (first_speaker, next(s for s in ranked[:2] if s != first_speaker))  # a spoke first
    evidence: list[RoleEvidence] = []
    if len(ranked) > 2:
        evidence.append(RoleEvidence(kind="speakers", detail=f"{len(ranked)} voices: roles go to the two who talk "
                                                            f"most ({a}, {b}); the others stay unknown"))
    margin = 0.0  # log-odds that `a` is the manager
    counted: set[tuple[str, str, str]] = set()
    for hit in hits:
        cue = cues.get((hit.lexicon, hit.term))
        if cue is None or hit.turn is None or hit.turn >= len(turns) or cue[1] <= options.min_cue_weight:
            continue
        speaker = turns[hit.turn].speaker
        if speaker not in (a, b) or (speaker, hit.lexicon, hit.term) in counted:
            continue
        counted.add((speaker, hit.lexicon, hit.term))
        said_by, weight = cue
        towards_manager = weight if said_by == "manager" else -weight
        margin += towards_manager if speaker == a else -towards_manager
        evidence.append(RoleEvidence(kind="lexicon", speaker=speaker, points=round(towards_manager, 2),
                                     detail=f"{hit.lexicon}/{hit.term}: «{hit.text}» ({call_time_tenths(hit.start)})"))
    for item in kept:
        if item.kind in ("direction", "voiceprint") and item.speaker in (a, b) and item.points is not None:
            margin += item.points if item.speaker == a else -item.points
            evidence.append(item)
    if direction in ("in", "out") and options.direction_weight:
        # Incoming: the manager picks up and speaks first; outgoing: the client answers first ("Алло").
        favoured = a if direction == "in" else b
        margin += options.direction_weight if favoured == a else -options.direction_weight
        evidence.append(RoleEvidence(kind="direction", speaker=favoured, points=options.direction_weight,
                                     detail=f"{'incoming' if direction == 'in' else 'outgoing'} call: "
                                            f"{'the first' if favoured == a else 'the second'} voice is the manager's"))
    if voiceprint is not None and a in voiceprint.similarity and b in voiceprint.similarity:
        similarity = {s: voiceprint.similarity[s] for s in (a, b)}
        points = options.voiceprint_weight * 10 * (similarity[a] - similarity[b])
        margin += points
        closer = a if points >= 0 else b
        evidence.append(RoleEvidence(kind="voiceprint", speaker=closer, points=round(abs(points), 2),
                                     detail=f"cosine to {voiceprint.name or 'the manager'}'s voiceprint: "
                                            + ", ".join(f"{s} {v:.2f}" for s, v in similarity.items())))
    confidence = round(1.0 / (1.0 + math.exp(-abs(margin))), 3)
    if confidence < options.min_confidence:
        return _unknown(speakers, f"evidence too weak (confidence {confidence:.2f} < {options.min_confidence:.2f})",
                        evidence, confidence)
    manager, client = (a, b) if margin > 0 else (b, a)
    roles: dict[str, Role] = {s: "unknown" for s in speakers}
    roles[manager], roles[client] = "manager", "client"
    return roles, RoleDetection(method="detected", manager=manager, confidence=confidence, evidence=evidence)


def roles_of_mono_call(words: Sequence[Word], turns: Sequence[Turn], hits: Sequence[Hit], *,
                       lexicons: LexiconSet | None, direction: str | None = None,
                       voiceprint: VoiceprintMatch | None = None, kept: Sequence[RoleEvidence] = (),
                       options: RoleOptions | None = None) -> tuple[dict[str, Role], RoleDetection]:
    """`detect_roles` on a diarized mono call's words, turns and lexicon hits (roles still "unknown"; the hits
    found with the call's last word as its end, which is what windows of role cues are measured against)."""
    speakers = list(dict.fromkeys(word.speaker for word in words))
    roles, detection = detect_roles(speakers, turns, hits, cues=lexicons.role_cues if lexicons else {},
                                    direction=direction, voiceprint=voiceprint, kept=kept, options=options)
    return roles, detection.model_copy(update={"lexicon_version": lexicons.version if lexicons else None})


def unknown_roles_warning(detection: RoleDetection) -> str | None:
    """The warning a detected-but-undecided mono call carries (None when the manager was found)."""
    if detection.method != "detected" or detection.manager is not None:
        return None
    reason = next((item.detail for item in detection.evidence if item.kind == "undecided"), "")
    return f"mono recording: roles are unknown: {reason}"
