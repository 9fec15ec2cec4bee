"""A mono call before diarization: every word belongs to one undivided voice.

Saying "mixed" rather than guessing two speakers keeps the result honest until a diarizer runs.
"""

from __future__ import annotations

from pipeline.asr import AsrWord
from pipeline.speakers.base import SpeakerWord

MIXED_SPEAKER = "mixed"


def single_speaker(words: list[AsrWord]) -> list[SpeakerWord]:
    return [SpeakerWord(word=word, speaker=MIXED_SPEAKER) for word in words]
