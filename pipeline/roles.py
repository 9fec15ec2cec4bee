"""Manager or client for each speaker.

Stereo calls follow the channel map (the PBX records the manager's leg on a known side; default left). A mono
call has no roles until diarization and role detection exist: it stays "unknown", never a guess.
"""

from __future__ import annotations

from typing import Literal

from pipeline.schema import Role
from pipeline.speakers import CHANNEL_SPEAKERS

__all__ = ["channel_index", "roles_from_channel_map"]

ChannelName = Literal["left", "right"]


def channel_index(name: ChannelName) -> int:
    return CHANNEL_SPEAKERS.index(name)


def roles_from_channel_map(manager_channel: int) -> dict[str, Role]:
    """Speaker id -> role for a stereo call whose manager is on channel `manager_channel` (0 left, 1 right)."""
    return {speaker: ("manager" if index == manager_channel else "client")
            for index, speaker in enumerate(CHANNEL_SPEAKERS)}
