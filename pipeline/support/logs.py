"""Logging: one structlog setup for the CLI, writing key=value lines to stderr.

Library modules log through the standard `logging.getLogger(__name__)`; this routes those records (and
faster-whisper's) through structlog's formatter, so there is one format and one place to add redaction.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["add_secret", "configure_logging", "redact", "register_secrets"]

_SECRETS: set[str] = set()
REDACTED = "***"
# Libraries that log request URLs (httpx logs every request at INFO, URL and all): a webhook's secret is part of
# its URL, so their records are redacted at the source, whatever handler later prints them.
URL_LOGGERS = ("httpx", "httpcore", "urllib3", "botocore")


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


_FILTER = _RedactingFilter()


def add_secret(secret: str) -> None:
    """Never show this value in a log line (and filter the loggers that print URLs)."""
    if len(secret) >= 4:
        _SECRETS.add(secret)
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def register_secrets(settings) -> None:
    """Remember the secret values in `settings` (pydantic SecretStr fields), so no log line ever shows them."""
    from pydantic import BaseModel, SecretStr

    def walk(value) -> None:
        if isinstance(value, SecretStr):
            add_secret(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))

    walk(settings)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, REDACTED)
    return text


def _without_traceback(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """At the default verbosity a library's error is one line: its traceback is for -v."""
    event_dict.pop("exc_info", None)
    event_dict.pop("exception", None)
    return event_dict


def _redact_event(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # The last line of defence: secrets are kept out of messages in the first place (SecretStr, URIs without
    # credentials), but a library's exception text could still carry one.
    if _SECRETS:
        for key, value in event_dict.items():
            if isinstance(value, str):
                event_dict[key] = redact(value)
    return event_dict


def configure_logging(verbosity: int = 0) -> None:
    """verbosity 0: warnings and errors; 1: info; 2: debug (including faster-whisper's own messages)."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    shared: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    tracebacks: list[Processor] = [] if verbosity else [_without_traceback]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _redact_event, *tracebacks,
                    structlog.dev.ConsoleRenderer(colors=False)],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # faster-whisper logs every file's duration at INFO; keep that for -vv. botocore's debug output shows
    # request signing details: never let it through.
    logging.getLogger("faster_whisper").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    # Dask's client reports the connections its own shutdown closes as errors with tracebacks: not actionable.
    for name in ("distributed.batched", "distributed.comm", "distributed.core"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.CRITICAL)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
