"""Who spoke each word: the channels of a stereo call (`channels`); in a mono call a diarizer (`diarization`:
`embedded` on the CPU, `pyannote` on the GPU box) and word-level assignment (`assign`), or one undiarized voice
(`mono`) when no diarizer runs.

Every backend returns the same thing, a list of `SpeakerWord` (the ASR word with its speaker id, the channel when
there is one, and whether the word was spoken over the other party), so roles, turns and metrics do not care how
the speakers were found.
"""

import functools

from pipeline.speakers.base import SpeakerWord
from pipeline.speakers.channels import (
    CHANNEL_SPEAKERS,
    ChannelOptions,
    attribute_by_channel,
    channel_activity,
    mark_overlaps,
)
from pipeline.speakers.diarization import Diarizer, SpeakerOptions
from pipeline.speakers.mono import MIXED_SPEAKER, single_speaker

__all__ = ["CHANNEL_SPEAKERS", "MIXED_SPEAKER", "ChannelOptions", "SpeakerWord", "attribute_by_channel",
           "channel_activity", "load_diarizer", "mark_overlaps", "single_speaker"]


@functools.lru_cache(maxsize=2)
def load_diarizer(options: SpeakerOptions) -> Diarizer | None:
    """The configured diarizer, loaded once per process (None for "none").

    Raises:
        ConfigError: the pyannote pipeline is missing, incomplete or refers to a hub.
    """
    backend = options.backend
    if backend == "none":
        return None
    if backend == "pyannote":
        from pipeline.speakers.pyannote import PyannoteDiarizer

        return PyannoteDiarizer.load(options.pyannote, voices=options.voices)
    from pipeline.speakers.embedded import EmbeddedDiarizer

    return EmbeddedDiarizer(options.embedded, voices=options.voices)
