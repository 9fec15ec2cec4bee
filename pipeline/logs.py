"""Logging: one structlog setup for the CLI, writing key=value lines to stderr.

Library modules log through the standard `logging.getLogger(__name__)`; this routes those records (and
faster-whisper's) through structlog's formatter, so there is one format and one place to add redaction.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]


def configure_logging(verbosity: int = 0) -> None:
    """verbosity 0: warnings and errors; 1: info; 2: debug (including faster-whisper's own messages)."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    shared = [
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
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.dev.ConsoleRenderer(colors=False)],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # faster-whisper logs every file's duration at INFO; keep that for -vv.
    logging.getLogger("faster_whisper").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
