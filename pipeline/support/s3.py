"""S3 access shared by the S3 source and store: `s3://bucket/prefix` URIs and a boto3 client from settings.

Works with AWS and with S3-compatible servers (MinIO, moto) through `endpoint_url`. Credentials come from the
settings (`CALLQA_S3__ACCESS_KEY_ID`, `CALLQA_S3__SECRET_ACCESS_KEY`) or boto3's usual chain (environment,
profile, instance role); they are never part of a URI, a log line or an artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pipeline.errors import ConfigError

__all__ = ["S3Location", "S3Settings", "make_client", "public_endpoint"]


class S3Settings(BaseModel):
    """
    Attributes:
        endpoint_url: an S3-compatible server (MinIO: http://minio:9000); None for AWS.
        region: the region name.
        access_key_id, secret_access_key: credentials; None uses boto3's default chain.
        timeout_s: a request that gets no answer for this long is given up and retried (a server that hangs).
        max_attempts: tries of one request, the first included, on 5xx answers, throttling and time-outs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(6, ge=1)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without leading or trailing "/"

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError(f"not an S3 location: {uri!r} (expected s3://bucket/prefix)")
        return cls(bucket=parts.netloc, prefix=parts.path.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def public_endpoint(endpoint_url: str | None) -> str | None:
    """The endpoint without any user:password part, for messages."""
    if not endpoint_url:
        return None
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def make_client(settings: S3Settings):
    """A boto3 S3 client for these settings (retries in standard mode, timeouts bounded)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id.get_secret_value() if settings.access_key_id else None,
        aws_secret_access_key=settings.secret_access_key.get_secret_value() if settings.secret_access_key else None,
        config=Config(retries={"max_attempts": settings.max_attempts, "mode": "standard"}, connect_timeout=10,
                      read_timeout=settings.timeout_s),
    )
