"""Call sources behind one interface (`CallSource`): a local folder, an S3 prefix (Bitrix24 comes later)."""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.s3 import S3Settings
from pipeline.sources.base import CallRecord, CallSource, TimeWindow
from pipeline.sources.local import FolderSource
from pipeline.sources.s3 import S3Source

__all__ = ["CallRecord", "CallSource", "FolderSource", "S3Source", "TimeWindow", "open_source"]


def open_source(spec: str, s3: S3Settings) -> CallSource:
    """`--source`: a folder path or `s3://bucket/prefix`."""
    if spec.startswith("s3://"):
        return S3Source(spec, s3)
    if spec == "bitrix24":
        raise ConfigError("the bitrix24 source is not available in this version (see the Bitrix24 issue)")
    return FolderSource(spec)
