"""The artifact store: where each call's audio facts, transcript and result live, under keys from its id.

    calls/<call_id>/audio.json        the recording's identity (uri, fingerprint, sha256) and when it was stored
    calls/<call_id>/transcript.json   the analysis before scoring (words, turns, metrics): what re-scoring reads
    calls/<call_id>/result.json       the result (contract: docs/result-json.md)
    calls/<call_id>/reviews.json      people's verdicts on its criteria, which its result follows (append-only)
    calls/<call_id>/audio.webm        a compressed copy of the recording (Opus in WebM), for playback
    runs/<run_id>.json                what a run did, call by call

Every write is atomic: a reader sees the old object, the new one, or none, never half of one. Two writes can be
made conditional: "create if absent" (`only_if_absent`) and "replace if unchanged since I read it" (`if_version`
with the version `read_versioned` gave, S3's ETag compare), so that two runs on one store never both win a claim
on a call and two reviewers never overwrite each other blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pipeline.errors import CallqaError

__all__ = ["ArtifactStore", "StoreError", "Versioned", "audio_copy_key", "audio_key", "claim_key", "result_key",
           "reviews_key", "run_key", "transcript_key"]


class StoreError(CallqaError):
    """A store operation failed; `str()` names the key and the reason (never credentials)."""

    exit_code = 1


def audio_key(call_id: str) -> str:
    return f"calls/{call_id}/audio.json"


def audio_copy_key(call_id: str) -> str:
    """The compressed copy of the recording kept for playback (pipeline/audio_copy.py)."""
    return f"calls/{call_id}/audio.webm"


def transcript_key(call_id: str) -> str:
    return f"calls/{call_id}/transcript.json"


def result_key(call_id: str) -> str:
    return f"calls/{call_id}/result.json"


def claim_key(call_id: str) -> str:
    return f"calls/{call_id}/claim.json"


def reviews_key(call_id: str) -> str:
    """People's verdicts on the call's criteria, append-only (pipeline/reviews.py)."""
    return f"calls/{call_id}/reviews.json"


def run_key(run_id: str) -> str:
    return f"runs/{run_id}.json"


def crm_key(run_id: str) -> str:
    """What a run read from the CRM (a `CrmSnapshot`)."""
    return f"crm/{run_id}.json"


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and its version: an opaque tag that changes whenever the object does."""

    data: bytes
    version: str


class ArtifactStore(Protocol):
    def describe(self) -> str:
        """Where the store is, for people (no credentials)."""

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none.

        Raises:
            StoreError: the store cannot be read.
        """

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none.

        Raises:
            StoreError: the store cannot be read.
        """

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of the object, fewer where it ends first (none from its end on), without
        reading the rest: how audio is played from the store (HTTP range requests).

        Raises:
            StoreError: there is no such object, or the store cannot be read.
            ValueError: `start` or `length` is negative.
        """

    def list(self, prefix: str) -> list[str]:
        """The keys under `prefix` (relative to the store), sorted.

        Raises:
            StoreError: the store cannot be listed.
        """

    def delete(self, key: str) -> None:
        """Remove the object if it is there (forgetting a voiceprint).

        Raises:
            StoreError: the delete failed.
        """

    def read_versioned(self, key: str) -> Versioned | None:
        """The object's bytes with its version (for a later `write(..., if_version=...)`), or None.

        Raises:
            StoreError: the store cannot be read.
        """

    def write(self, key: str, data: bytes, *, only_if_absent: bool = False, if_version: str | None = None) -> bool:
        """Write atomically and say whether it did. `only_if_absent`: only if nothing is there yet; `if_version`:
        only if the object is still at that version (False when it changed or went away meanwhile).

        Raises:
            StoreError: the write failed.
        """
