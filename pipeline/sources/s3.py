"""Recordings under an S3 prefix (boto3; any S3-compatible server through `endpoint_url`)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import CallError, ConfigError
from pipeline.sources.base import AUDIO_SUFFIXES, CallRecord, TimeWindow, call_id_from_path, check_unique_ids
from pipeline.sources.manifest import MANIFEST_NAME, parse_manifest
from pipeline.support.s3 import S3Location, S3Settings, make_client

__all__ = ["S3Source"]


class S3Source:
    def __init__(self, uri: str, settings: S3Settings, *, client=None) -> None:
        self.location = S3Location.parse(uri)
        self.client = client or make_client(settings)

    def describe(self) -> str:
        return str(self.location)

    def _objects(self) -> list[dict]:
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = f"{self.location.prefix}/" if self.location.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.location.bucket,
                                                                          Prefix=prefix)
            return [item for page in pages for item in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as error:
            raise ConfigError(f"cannot list {self.location}: {error}") from error

    def list_calls(self, window: TimeWindow | None) -> list[CallRecord]:
        objects = self._objects()
        names = {item["Key"][len(self.location.prefix) + 1 if self.location.prefix else 0:]: item for item in objects}
        manifest = {}
        if MANIFEST_NAME in names:
            body = self.client.get_object(Bucket=self.location.bucket, Key=self.location.key(MANIFEST_NAME))["Body"]
            manifest = parse_manifest(body.read().decode("utf-8"), f"{self.location}/{MANIFEST_NAME}")
        records = []
        for relative, item in sorted(names.items()):
            if Path(relative).suffix.lower() not in AUDIO_SUFFIXES:
                continue
            row = manifest.get(relative, {})
            records.append(CallRecord(
                call_id=row.get("call_id") or call_id_from_path(relative),
                uri=f"s3://{self.location.bucket}/{item['Key']}",
                fingerprint=item.get("ETag", "").strip('"') or None,
                started_at=row.get("started_at") or item.get("LastModified"),
                **{key: value for key, value in row.items() if key not in ("call_id", "started_at")},
            ))
        check_unique_ids(records, str(self.location))
        return [r for r in records if window is None or window.contains(r.started_at)]

    def fetch(self, record: CallRecord, workdir: Path) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        location = S3Location.parse(record.uri)
        target = workdir / f"{record.call_id}{Path(location.prefix).suffix}"
        try:
            self.client.download_file(location.bucket, location.prefix, str(target))
        except (BotoCoreError, ClientError) as error:
            raise CallError(record.uri, f"cannot download the recording: {error}") from error
        return target
