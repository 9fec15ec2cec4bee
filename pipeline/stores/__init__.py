"""Artifact stores behind one interface (`ArtifactStore`): a local folder (default) or an S3 prefix."""

from __future__ import annotations

from pipeline.stores.base import (
    ArtifactStore,
    StoreError,
    Versioned,
    audio_copy_key,
    audio_key,
    claim_key,
    crm_key,
    result_key,
    reviews_key,
    run_key,
    transcript_key,
)
from pipeline.stores.concurrent import concurrently
from pipeline.stores.local import FolderStore
from pipeline.stores.s3 import S3Store
from pipeline.support.s3 import S3Settings

__all__ = ["ArtifactStore", "FolderStore", "S3Store", "StoreError", "Versioned", "audio_copy_key", "audio_key",
           "claim_key", "concurrently", "crm_key", "open_store", "result_key", "reviews_key", "run_key",
           "transcript_key"]


def open_store(spec: str, s3: S3Settings) -> ArtifactStore:
    """`--store`: a folder path or `s3://bucket/prefix`."""
    return S3Store(spec, s3) if spec.startswith("s3://") else FolderStore(spec)
