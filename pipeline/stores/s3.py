"""An S3 prefix as the artifact store (AWS, MinIO, any S3-compatible server)."""

from __future__ import annotations

from pipeline.stores.base import StoreError, Versioned
from pipeline.support.s3 import S3Location, S3Settings, make_client

__all__ = ["S3Store"]


class S3Store:
    def __init__(self, uri: str, settings: S3Settings, *, client=None) -> None:
        self.location = S3Location.parse(uri)
        self.client = client or make_client(settings)

    def describe(self) -> str:
        return str(self.location)

    def read(self, key: str) -> bytes | None:
        found = self.read_versioned(key)
        return None if found is None else found.data

    def read_versioned(self, key: str) -> Versioned | None:
        response = self._unless_absent(key, lambda object_key: self.client.get_object(
            Bucket=self.location.bucket, Key=object_key))
        return None if response is None else Versioned(data=response["Body"].read(), version=response["ETag"])

    def size(self, key: str) -> int | None:
        response = self._unless_absent(key, lambda object_key: self.client.head_object(
            Bucket=self.location.bucket, Key=object_key))
        return None if response is None else int(response["ContentLength"])

    def _unless_absent(self, key: str, request) -> dict | None:
        """`request(object_key)`'s answer, None when the object is not there; other failures as StoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return request(self.location.key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise StoreError(f"{self.location}/{key}: cannot read: {_reason(error)}") from error
        except BotoCoreError as error:
            raise StoreError(f"{self.location}/{key}: cannot read: {error}") from error

    def read_range(self, key: str, start: int, length: int) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        if start < 0 or length < 0:
            raise ValueError(f"a range needs start >= 0 and length >= 0, not {start} and {length}")
        if length == 0:  # no such HTTP range; the object must still be there
            if self.size(key) is None:
                raise StoreError(f"{self.location}/{key}: no such object")
            return b""
        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=self.location.key(key),
                                              Range=f"bytes={start}-{start + length - 1}")
            return response["Body"].read()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise StoreError(f"{self.location}/{key}: no such object") from error
            if code in ("InvalidRange", "416"):  # starts at or past the end (of an object that is there)
                return b""
            raise StoreError(f"{self.location}/{key}: cannot read: {_reason(error)}") from error
        except BotoCoreError as error:
            raise StoreError(f"{self.location}/{key}: cannot read: {error}") from error

    def list(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        start = len(self.location.key(""))
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.location.bucket,
                                                                          Prefix=self.location.key(prefix))
            return sorted(item["Key"][start:] for page in pages for item in page.get("Contents", []))
        except ClientError as error:
            raise StoreError(f"{self.location}/{prefix}: cannot list: {_reason(error)}") from error
        except BotoCoreError as error:
            raise StoreError(f"{self.location}/{prefix}: cannot list: {error}") from error

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.location.bucket, Key=self.location.key(key))
        except (ClientError, BotoCoreError) as error:
            reason = _reason(error) if isinstance(error, ClientError) else str(error)
            raise StoreError(f"{self.location}/{key}: cannot delete: {reason}") from error

    def write(self, key: str, data: bytes, *, only_if_absent: bool = False, if_version: str | None = None) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        # An S3 PUT replaces the object in one step; IfNoneMatch makes it "create only", IfMatch "replace only
        # this version" (S3's conditional writes; MinIO and moto honour both).
        extra = {"IfNoneMatch": "*"} if only_if_absent else {"IfMatch": if_version} if if_version else {}
        try:
            self.client.put_object(Bucket=self.location.bucket, Key=self.location.key(key), Body=data,
                                   ContentType=_content_type(key), **extra)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if extra and code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            if if_version and code in ("NoSuchKey", "404"):  # it went away since it was read
                return False
            raise StoreError(f"{self.location}/{key}: cannot write: {_reason(error)}") from error
        except BotoCoreError as error:
            raise StoreError(f"{self.location}/{key}: cannot write: {error}") from error
        return True


def _content_type(key: str) -> str:
    # What a browser is told when it fetches the object straight from S3 (a presigned URL, the console); every
    # other artifact is JSON.
    return "audio/webm" if key.endswith(".webm") else "application/json"


def _reason(error) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")
