"""The result of analysing one call: the pydantic models behind the result JSON (contract `callqa.result/1`).

docs/result-json.md documents every field. Times are seconds from the start of the recording. The models are
frozen: stages build new objects instead of changing what they were given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "RESULT_SCHEMA",
    "AsrModelInfo",
    "CallMetadata",
    "CallResult",
    "CriterionResult",
    "CriterionReview",
    "Evidence",
    "GroupScore",
    "Hit",
    "Layout",
    "Metrics",
    "ModelInfo",
    "PerRole",
    "PerRoleCount",
    "Quality",
    "RoleDetection",
    "RoleEvidence",
    "QualityGate",
    "ReviewVerdict",
    "Role",
    "Score",
    "SourceInfo",
    "Speaker",
    "SpeakerModelInfo",
    "Turn",
    "Verdict",
    "Word",
    "roles_known",
]

RESULT_SCHEMA = "callqa.result/1"

Role = Literal["manager", "client", "unknown"]
Layout = Literal["stereo", "mono"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Word(_Frozen):
    start: float
    end: float
    text: str
    speaker: str
    role: Role
    prob: float = Field(description="ASR confidence of the word, 0-1")
    overlap: bool = Field(False, description="both parties were speaking during this word")


def roles_known(words: Sequence[Word]) -> bool:
    """Whether the call has speech and every word's speaker is known as manager or client (what scoring, the
    per-role metrics and role-scoped lexicon terms need)."""
    return bool(words) and "unknown" not in {word.role for word in words}


class Turn(_Frozen):
    start: float
    end: float
    speaker: str
    role: Role
    text: str


class Speaker(_Frozen):
    id: str
    role: Role
    channel: int | None = Field(description="0 = left, 1 = right; null when the speaker is not a channel")
    talk_s: float
    confidence: float | None = Field(None, description="diarized mono calls: share of this speaker's speech "
                                     "attributed with a clear margin; null for channels and a lone voice")


class PerRole(_Frozen):
    """A figure for each party; null where it cannot be known (roles unknown) or has no meaning."""

    manager: float | None = None
    client: float | None = None


class PerRoleCount(_Frozen):
    manager: int | None = None
    client: int | None = None


class Metrics(_Frozen):
    talk_ratio_manager: float | None
    manager_talk_s: float | None
    client_talk_s: float | None
    total_talk_s: float
    silence_s: float
    long_silences: int
    overlap_s: float
    longest_monologue_s: PerRole
    interruptions: PerRoleCount
    speech_rate_wpm: PerRole
    questions: PerRoleCount


class Hit(_Frozen):
    lexicon: str
    term: str
    role: Role
    start: float
    end: float
    text: str = Field(description="the words as said (recognised)")
    turn: int | None = Field(None, description="index of the turn in `turns`")
    phrase: str | None = Field(None, description="the lexicon phrase that matched")
    match: Literal["lemma", "fuzzy"] = Field("lemma", description="lemma: as the phrase is written (lemma, word "
                                             "form or wildcard); fuzzy: recognition-tolerant (the term's `fuzzy`)")
    similarity: float = Field(1.0, ge=0, le=1, description="the least similarity of a heard word to its phrase "
                                                           "word (1.0 for a lemma match)")
    missing: str | None = Field(None, description="a short function word of the phrase not heard (fuzzy only)")


class Evidence(_Frozen):
    start: float
    end: float
    role: Role
    text: str


Verdict = Literal["met", "not_met", "uncertain", "not_applicable"]
ReviewVerdict = Literal["met", "not_met", "not_applicable"]  # a person's verdict: never "uncertain"


class CriterionReview(_Frozen):
    """A person's verdict on a criterion of this call (pipeline/reviews.py), which the criterion follows."""

    verdict: ReviewVerdict
    automatic: Verdict = Field(description="the machine's verdict in this result (what this scoring found)")
    reviewer: str = Field(description="the reviewer's login")
    reviewer_name: str = Field(description="the reviewer's name, as people read it")
    at: str = Field(description="ISO 8601 UTC time of the review")
    comment: str = ""
    rule: str | None = Field(None, description="the criterion's rule fingerprint when it was reviewed")
    rule_changed: bool = Field(False, description="the criterion's rule changed since it was reviewed")


class CriterionResult(_Frozen):
    id: str
    title: str
    passed: bool = Field(description="met (and, as before verdicts, true for a criterion that does not apply)")
    points: float
    max_points: float = Field(description="0 when the criterion did not apply to this call")
    evidence: list[Evidence] = []
    kind: Literal["required", "forbidden", "metric"] | None = None
    group: str | None = None
    applicable: bool = True
    value: float | None = Field(None, description="the metric's value, or how many forbidden hits were found")
    expected: str | None = Field(None, description="what was expected, in Russian, when the criterion failed")
    note: str | None = Field(None, description="why the criterion did not apply, or what failed (Russian)")
    verdict: Verdict | None = Field(None, description="met, not_met, uncertain (what was needed was not recognised "
                                                      "reliably) or not_applicable; filled from passed and "
                                                      "applicable for results written before verdicts")
    review: CriterionReview | None = Field(None, description="a person's verdict, which `verdict`, `passed` and "
                                           "`points` follow; null when nobody reviewed the criterion")

    @model_validator(mode="after")
    def _verdict_of_old_results(self) -> CriterionResult:
        if self.verdict is None:
            verdict = "not_applicable" if not self.applicable else "met" if self.passed else "not_met"
            object.__setattr__(self, "verdict", verdict)
        return self


class GroupScore(_Frozen):
    """A group of criteria as one row of the managers' table: its share of points and its 1-5 grade."""

    id: str
    title: str
    total: float | None
    grade: int | None


class Score(_Frozen):
    total: float
    grade: int
    passed: bool
    criteria: list[CriterionResult]
    scorecard: str | None = None
    title: str | None = None
    groups: list[GroupScore] = []
    auto_failed: list[str] = Field([], description="ids of failed auto-fail criteria: they set the total to 0")
    reviewed_by: list[str] = Field([], description="names of the people whose verdicts the score uses (empty: "
                                   "every verdict is the machine's)")


class SourceInfo(_Frozen):
    uri: str = Field(description="where the audio came from (a path or a URI, never with credentials)")
    sha256: str
    size_bytes: int
    container: str
    codec: str
    sample_rate_hz: int
    channels: int


class AsrModelInfo(_Frozen):
    name: str
    engine: str
    engine_version: str
    model_sha256: str | None
    device: str
    compute_type: str
    batch_size: int
    beam_size: int
    hotwords: bool = Field(False, description="recognition was biased towards lexicon phrases")


class SpeakerModelInfo(_Frozen):
    name: str = Field(description="'channels' (stereo legs), 'embedded' or 'pyannote' (diarized mono), or 'none'")
    version: str


class ModelInfo(_Frozen):
    asr: AsrModelInfo
    speakers: SpeakerModelInfo


class QualityGate(_Frozen):
    id: str
    passed: bool
    value: float | str | None = None
    threshold: float | str | None = None
    message: str = ""


class Quality(_Frozen):
    passed: bool
    gates: list[QualityGate]


class AudioGapInfo(_Frozen):
    """A damaged stretch of the recording that could not be decoded; it was analysed as silence."""

    start: float
    end: float
    size_bytes: int = Field(description="unreadable bytes of the file there")


class RoleEvidence(_Frozen):
    """One piece of evidence for who the manager is in a mono call."""

    kind: Literal["lexicon", "direction", "voiceprint", "speakers", "undecided"]
    speaker: str | None = Field(None, description="the speaker it points at as the manager (lexicon: who said it)")
    points: float | None = Field(None, description="log-odds points: > 0 towards manager, < 0 towards client")
    detail: str = ""


class RoleDetection(_Frozen):
    """How the roles were found: the stereo channel map, detected in a diarized mono call, or not at all."""

    method: Literal["channels", "detected", "none"]
    manager: str | None = Field(None, description="the manager's speaker id; null when roles are unknown")
    confidence: float | None = Field(None, description="probability that the roles are right (0.5-1)")
    evidence: list[RoleEvidence] = []
    lexicon_version: str | None = Field(None, description="the lexicons whose role cues were weighed")


class CallMetadata(_Frozen):
    """What the call's source knows about it (empty for a file analysed on its own)."""

    started_at: str | None = Field(None, description="ISO 8601 start time")
    manager_id: str | None = Field(None, description="the manager's id at the source (Bitrix24 PORTAL_USER_ID)")
    manager_name: str | None = None
    deal_id: str | None = None
    crm_target: str | None = Field(None, description="where the score comment goes: deal:ID, contact:ID, lead:ID")


class CallResult(_Frozen):
    """One analysed call; serialise with `to_json()` so the `schema` key is spelled as the contract says."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_id: str = Field(RESULT_SCHEMA, alias="schema")
    call_id: str
    source: SourceInfo
    duration_s: float
    channels: int
    layout: Layout
    language: str
    direction: Literal["in", "out"] | None = None
    manager_channel: int | None = Field(None, description="channel of the manager's leg in a stereo call")
    metadata: CallMetadata = CallMetadata()
    role_detection: RoleDetection | None = None
    model: ModelInfo
    lexicon_version: str | None = None
    scorecard_version: str | None = None
    warnings: list[str] = []
    quality: Quality
    audio_gaps: list[AudioGapInfo] = []
    speakers: list[Speaker]
    words: list[Word]
    turns: list[Turn]
    metrics: Metrics
    hits: list[Hit] = []
    score: Score | None = None
    analyzed_at: str
    callqa_version: str

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> CallResult:
        return cls.model_validate_json(text)
