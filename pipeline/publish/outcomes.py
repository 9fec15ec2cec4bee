"""What each kind of write did (one outcome per call or deal), and how commands are packed into `batch`es."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

from pipeline.bitrix24.client import PAGE
from pipeline.bitrix24.encoding import php_query

__all__ = ["BATCH_CHARS", "Kind", "WriteOutcome", "WriteStatus", "command_size", "packed"]

Kind = Literal["transcript", "deal_fields", "notification"]
# written: the portal confirmed it. unchanged: the ledger says it is there already (or was maybe sent: never again).
# ambiguous: sent, and the answer may mean either; recorded so, never re-sent (a deal's fields: read back).
WriteStatus = Literal["written", "unchanged", "ambiguous", "skipped", "failed", "dry-run"]
# A batch's commands travel as PHP-style query strings inside one request (Cyrillic takes six characters per
# letter): a night of long transcripts in one batch would be megabytes. About 1 MB per request keeps each one
# well inside what a portal's web server accepts.
BATCH_CHARS = 1_000_000

T = TypeVar("T")


@dataclass(frozen=True)
class WriteOutcome:
    kind: Kind
    key: str  # the call id, or "deal:456"
    status: WriteStatus
    reason: str = ""


def command_size(method: str, params: dict) -> int:
    """The characters a command takes in a batch."""
    return len(method) + 1 + len(php_query(params))


def packed(items: list[T], size: Callable[[T], int], *, max_chars: int = BATCH_CHARS) -> Iterator[list[T]]:
    """`items` in batches of at most 50 and about `max_chars` (an item larger than that goes alone)."""
    chunk: list[T] = []
    used = 0
    for item in items:
        cost = size(item)
        if chunk and (len(chunk) >= PAGE or used + cost > max_chars):
            yield chunk
            chunk, used = [], 0
        chunk.append(item)
        used += cost
    if chunk:
        yield chunk
