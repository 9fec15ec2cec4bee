"""The artifact store: where each call's audio facts, transcript and result live, under keys from its id.

    calls/<call_id>/audio.json        the recording's identity (uri, fingerprint, sha256) and when it was stored
    calls/<call_id>/transcript.json   the analysis before scoring (words, turns, metrics): what re-scoring reads
    calls/<call_id>/result.json       the result (contract: docs/result-json.md)
    runs/<run_id>.json                what a run did, call by call

Every write is atomic: a reader sees the old object, the new one, or none, never half of one.
"""

from __future__ import annotations

from typing import Protocol

from pipeline.errors import CallqaError

__all__ = ["ArtifactStore", "StoreError", "audio_key", "result_key", "run_key", "transcript_key"]


class StoreError(CallqaError):
    """A store operation failed; `str()` names the key and the reason (never credentials)."""

    exit_code = 1


def audio_key(call_id: str) -> str:
    return f"calls/{call_id}/audio.json"


def transcript_key(call_id: str) -> str:
    return f"calls/{call_id}/transcript.json"


def result_key(call_id: str) -> str:
    return f"calls/{call_id}/result.json"


def run_key(run_id: str) -> str:
    return f"runs/{run_id}.json"


class ArtifactStore(Protocol):
    def describe(self) -> str:
        """Where the store is, for people (no credentials)."""

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none.

        Raises:
            StoreError: the store cannot be read.
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

    def write(self, key: str, data: bytes, *, only_if_absent: bool = False) -> bool:
        """Write atomically; with `only_if_absent`, write only if nothing is there yet and say whether it did.

        Raises:
            StoreError: the write failed.
        """
