"""Quality gates: can this call's analysis be trusted? Each gate says what it measured and why it failed.

A failed gate does not fail the call: the result is written with `quality.passed = false`, so a supervisor sees
that a call was too short or not in Russian instead of a silently wrong score.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.schema import Metrics, Quality, QualityGate

__all__ = ["QualityOptions", "assess_quality"]


class QualityOptions(BaseModel):
    """
    Attributes:
        min_duration_s: shorter recordings are not a conversation (a dropped call, a voicemail beep).
        min_talk_s: less speech than this is "no speech".
        min_language_probability: the probability Whisper gives Russian must reach this (telephone Russian is
            sometimes heard as Ukrainian or Bulgarian by small models, with Russian still likely).
        max_damaged_share: the share of the call that may be undecodable (analysed as silence) before its
            analysis is not trusted: past a tenth, a missing greeting or a lost objection is as likely as not.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_duration_s: float = 3.0
    min_talk_s: float = 1.0
    min_language_probability: float = 0.2
    max_damaged_share: float = Field(0.1, ge=0, le=1)


def assess_quality(*, duration_s: float, metrics: Metrics, word_count: int, file_channels: int,
                   layout: str, layout_reason: str, silent_channels: tuple[int, ...] = (),
                   detected_language: tuple[str, float, float] | None, language: str, damaged_s: float = 0.0,
                   options: QualityOptions | None = None) -> Quality:
    """Run the gates; `layout`, `layout_reason` and `silent_channels` are `audio.ChannelLayout`'s;
    `detected_language` is (top language, its probability, probability of `language`); `damaged_s` is how much
    of the recording could not be decoded."""
    options = options or QualityOptions()
    gates = [
        QualityGate(id="min_duration", passed=duration_s >= options.min_duration_s, value=round(duration_s, 2),
                    threshold=options.min_duration_s,
                    message="" if duration_s >= options.min_duration_s else "recording too short for a conversation"),
    ]
    has_speech = metrics.total_talk_s >= options.min_talk_s and word_count > 0
    gates.append(QualityGate(id="speech_present", passed=has_speech, value=metrics.total_talk_s,
                             threshold=options.min_talk_s, message="" if has_speech else "no speech recognised"))
    if detected_language is not None:
        top, top_probability, expected_probability = detected_language
        ok = top == language or expected_probability >= options.min_language_probability
        gates.append(QualityGate(
            id="language", passed=ok, value=f"{top} {top_probability:.2f}", threshold=language,
            message="" if ok else f"speech sounds like {top!r}, not {language!r} "
                                  f"(p({language}) = {expected_probability:.2f})"))
    if file_channels == 2:
        ok = layout == "stereo"
        messages = {
            "dual_mono": "both channels carry the same mix (dual mono): analysed as mono",
            "silent_channel": f"channel {'/'.join(('left', 'right')[c] for c in silent_channels)} is silent: "
                              "one leg was not recorded; analysed as mono",
            "silent": "both channels are silent",
        }
        gates.append(QualityGate(id="stereo_legs", passed=ok, value=layout_reason, threshold="stereo",
                                 message="" if ok else messages.get(layout_reason, layout_reason)))
    if damaged_s > 0:
        share = damaged_s / duration_s if duration_s else 1.0
        ok = share <= options.max_damaged_share
        gates.append(QualityGate(
            id="audio_intact", passed=ok, value=round(share, 3), threshold=options.max_damaged_share,
            message="" if ok else f"{share:.0%} of the recording could not be decoded (analysed as silence)"))
    return Quality(passed=all(gate.passed for gate in gates), gates=gates)
