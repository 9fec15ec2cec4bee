"""Call sources behind one interface (`CallSource`): a local folder, an S3 prefix (Bitrix24 comes later)."""

from __future__ import annotations

from pipeline.sources.base import CallRecord, CallSource, TimeWindow
from pipeline.sources.local import FolderSource
from pipeline.sources.s3 import S3Source
from pipeline.support.s3 import S3Settings

__all__ = ["CallRecord", "CallSource", "FolderSource", "S3Source", "TimeWindow", "open_source"]


def open_source(spec: str, s3: S3Settings, bitrix24=None, *, rate_share: float = 1.0) -> CallSource:
    """`--source`: a folder path, `s3://bucket/prefix` or `bitrix24` (settings in `bitrix24`)."""
    if spec.startswith("s3://"):
        return S3Source(spec, s3)
    if spec == "bitrix24":
        from pipeline.bitrix24.settings import Bitrix24Settings
        from pipeline.bitrix24.source import Bitrix24Source

        return Bitrix24Source(bitrix24 or Bitrix24Settings(), rate_share=rate_share)
    return FolderSource(spec)
