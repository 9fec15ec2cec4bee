"""Who spoke each word: the channels of a stereo call (`channels`); in a mono call a diarizer (`diarization`:
`embedded` on the CPU, `pyannote` on the GPU box) and word-level assignment (`assign`), or one undiarized voice
(`mono`) when no diarizer runs.

Every backend returns the same thing, a list of `SpeakerWord` (the ASR word with its speaker id, the channel when
there is one, and whether the word was spoken over the other party), so roles, turns and metrics do not care how
the speakers were found.
"""

from pipeline.speakers.base import SpeakerWord
from pipeline.speakers.channels import (
    CHANNEL_SPEAKERS,
    ChannelOptions,
    attribute_by_channel,
    channel_activity,
    mark_overlaps,
)
from pipeline.speakers.mono import MIXED_SPEAKER, single_speaker

__all__ = ["CHANNEL_SPEAKERS", "MIXED_SPEAKER", "ChannelOptions", "SpeakerWord", "attribute_by_channel",
           "channel_activity", "mark_overlaps", "single_speaker"]
