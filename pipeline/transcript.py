"""Where the audio half ends: a call's `Transcript` (schema `callqa.transcript/1`), stored per call.

It holds everything the recording told us and nothing a lexicon, a scorecard or an option of the reading half
decides: the words with their speaker ids (no roles), the layout, each stereo leg's voice activity, the
speakers' voices, the role evidence only the audio gives (channel map, direction, voiceprint similarities), the
ASR and diarizer facts, and the audio's own warnings. `pipeline.derive.derive` turns it into the `CallResult` a
reader sees, as often as lexicons change, without the audio.

A result JSON written before this schema existed (a stored `transcript.json` of callqa 0.1, or any result a
user kept) is read as a Transcript too (`read_transcript`), so re-scoring keeps working on what users have.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from pipeline.roles import VoiceprintMatch, unknown_roles_warning
from pipeline.schema import (
    AudioGapInfo,
    CallMetadata,
    CallResult,
    Layout,
    Metrics,
    ModelInfo,
    RoleEvidence,
    SourceInfo,
)

__all__ = ["TRANSCRIPT_SCHEMA", "DetectedLanguage", "SpokenWord", "Transcript", "TranscriptSpeaker",
           "read_transcript"]

TRANSCRIPT_SCHEMA = "callqa.transcript/1"

Interval = tuple[float, float]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SpokenWord(_Frozen):
    """A recognised word and who said it (a speaker id: a stereo leg or a diarized voice), without a role."""

    start: float
    end: float
    text: str
    speaker: str
    prob: float
    overlap: bool = False


class TranscriptSpeaker(_Frozen):
    """A voice of the call, in the order the result lists speakers."""

    id: str
    channel: int | None = None
    confidence: float | None = Field(None, description="diarized: share of its speech attributed clearly")


class DetectedLanguage(_Frozen):
    language: str = Field(description="the language Whisper heard most likely")
    probability: float
    expected_probability: float = Field(description="the probability of the configured language")


class Transcript(_Frozen):
    """One call as the audio half left it; `derive()` makes its result.

    Attributes:
        separation: how speakers were told apart: the stereo legs ("channels"), a diarizer ("diarized", roles
            are then detected), or not at all ("none": one undivided voice, roles unknown).
        layout_reason: why the layout was chosen (`audio.ChannelLayout.reason`), e.g. "dual_mono".
        activity: stereo calls: when each leg was audibly speaking, which overlaps are measured on.
        voices: a diarized call's speaker -> voice embedding (256 floats, unit length).
        manager_voice, manager_speech_s: a stereo call's manager leg as a voiceprint sample, when collected.
        voiceprint: the manager's voiceprint compared with a diarized call's voices, when one was known.
        kept_role_evidence: direction and voiceprint evidence of a result stored before this schema (its
            voices are gone); counted as it stands.
        audio_warnings, speaker_warnings, asr_warnings: what the reader must know, in the result's order.
        stored_metrics: the metrics of a result stored before this schema, whose channel activity was not kept.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_id: str = Field(TRANSCRIPT_SCHEMA, alias="schema")
    call_id: str
    source: SourceInfo
    metadata: CallMetadata = CallMetadata()
    duration_s: float
    channels: int
    layout: Layout
    layout_reason: str = ""
    silent_channels: tuple[int, ...] = ()
    language: str
    detected_language: DetectedLanguage | None = None
    direction: Literal["in", "out"] | None = None
    manager_channel: int | None = None
    separation: Literal["channels", "diarized", "none"]
    model: ModelInfo
    audio_gaps: list[AudioGapInfo] = []
    speakers: list[TranscriptSpeaker]
    words: list[SpokenWord]
    activity: dict[str, list[Interval]] | None = None
    voices: dict[str, list[float]] = {}
    manager_voice: list[float] | None = None
    manager_speech_s: float = 0.0
    voiceprint: VoiceprintMatch | None = None
    kept_role_evidence: list[RoleEvidence] = []
    audio_warnings: list[str] = []
    speaker_warnings: list[str] = []
    asr_warnings: list[str] = []
    stored_metrics: Metrics | None = None
    analyzed_at: str
    callqa_version: str

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"

    @classmethod
    def from_result(cls, result: CallResult) -> Transcript:
        """A result stored before `callqa.transcript/1` as a transcript: its words, speakers and facts.

        What it lacks is kept as it was measured: the stereo metrics (no channel activity was stored), the
        direction and voiceprint evidence (no voices were stored). Warnings the reading half adds (quality
        gates, roles, score) are dropped; the audio's own stay.
        """
        detection = result.role_detection
        if result.layout == "stereo":
            separation = "channels"
        elif detection is not None and detection.method == "detected":
            separation = "diarized"
        else:
            separation = "none"
        derived = {gate.message for gate in result.quality.gates if gate.message}
        if detection is not None and (roles_warning := unknown_roles_warning(detection)) is not None:
            derived.add(roles_warning)
        own = [warning for warning in result.warnings
               if warning not in derived and not warning.startswith(_SCORE_WARNING)]
        audio = [warning for warning in own if warning.startswith("damaged audio ")]
        asr = [warning for warning in own if warning.startswith("dropped ")]
        stereo_legs = next((gate for gate in result.quality.gates if gate.id == "stereo_legs"), None)
        language = next((gate for gate in result.quality.gates if gate.id == "language"), None)
        return cls(
            call_id=result.call_id, source=result.source, metadata=result.metadata, duration_s=result.duration_s,
            channels=result.channels, layout=result.layout,
            layout_reason=str(stereo_legs.value) if stereo_legs is not None else result.layout,
            silent_channels=_silent_channels(str(stereo_legs.message)) if stereo_legs is not None else (),
            language=result.language,
            detected_language=_detected_language(language, result.language) if language is not None else None,
            direction=result.direction, manager_channel=result.manager_channel, separation=separation,
            model=result.model, audio_gaps=result.audio_gaps,
            speakers=[TranscriptSpeaker(id=s.id, channel=s.channel, confidence=s.confidence)
                      for s in result.speakers],
            words=_SPOKEN_WORDS.validate_python([{"start": w.start, "end": w.end, "text": w.text, "speaker": w.speaker,
                                                  "prob": w.prob, "overlap": w.overlap} for w in result.words],
                                                strict=True),
            kept_role_evidence=[item for item in (detection.evidence if detection else [])
                                if item.kind in ("direction", "voiceprint")],
            audio_warnings=audio, asr_warnings=asr,
            speaker_warnings=[warning for warning in own if warning not in audio and warning not in asr],
            stored_metrics=result.metrics if result.layout == "stereo" else None,
            analyzed_at=result.analyzed_at, callqa_version=result.callqa_version)


# A result's words as spoken words, validated as one list, strictly (the values are the validated result's
# own): about a third of the time of building each on its own, which `callqa rescore` does for every word.
_SPOKEN_WORDS = TypeAdapter(list[SpokenWord])

# How derive.py's score warnings begin: an old result's are not the audio's, and are made afresh.
_SCORE_WARNING = "score not computed: "


def _silent_channels(message: str) -> tuple[int, ...]:
    if not message.startswith("channel "):
        return ()
    names = message.removeprefix("channel ").split(" ", 1)[0].split("/")
    return tuple(("left", "right").index(name) for name in names if name in ("left", "right"))


def _detected_language(gate, language: str) -> DetectedLanguage | None:
    # The gate stores "ru 0.98"; the configured language's own probability only when the gate failed.
    top, _, probability = str(gate.value).partition(" ")
    try:
        top_probability = float(probability)
    except ValueError:
        return None
    expected = top_probability if top == language else 0.0
    if not gate.passed and "p(" in gate.message:
        expected = float(gate.message.rsplit("= ", 1)[1].rstrip(")"))
    elif gate.passed and top != language:
        expected = 1.0  # it passed on the configured language's probability: keep it passing
    return DetectedLanguage(language=top, probability=top_probability, expected_probability=expected)


def read_transcript(data: str | bytes) -> Transcript:
    """A stored transcript, or a result JSON of any callqa version read as one.

    Raises:
        ValueError (pydantic.ValidationError): neither a transcript nor a result.
    """
    head = data[:200] if isinstance(data, bytes) else data[:200].encode()
    if b'"callqa.transcript/' in head:
        return Transcript.model_validate_json(data)
    return Transcript.from_result(CallResult.from_json(data))

