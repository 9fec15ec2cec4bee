"""The output every speaker backend shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from pipeline.asr import AsrWord


class SpeakerWord(BaseModel):
    """An ASR word and who said it. `channel` is the stereo channel (0 left, 1 right) or None."""

    model_config = ConfigDict(frozen=True)

    word: AsrWord
    speaker: str
    channel: int | None = None
    overlap: bool = False
