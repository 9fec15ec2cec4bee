"""Retention: delete what the store keeps of people once it is older than the settings allow.

Three kinds, each with its own limit in days (`retention:` in the settings; None keeps it forever):

    audio        calls/<id>/audio.webm       by when a run stored the call
    transcript   calls/<id>/transcript.json  by when a run stored the call
    voiceprint   voiceprints/<manager>/...   by when the sample was enrolled

A call's time is `stored_at` in its audio.json (the run that last stored it), else its result's `analyzed_at`;
a call with neither (one being stored right now) is left alone. Results and audio facts are never deleted: the
result keeps the score. A call without its transcript can no longer be re-scored: the nightly run skips it with
"no stored transcript to re-score" and its result stays as it was.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pipeline.settings import RetentionOptions
from pipeline.stores.base import ArtifactStore, audio_copy_key, audio_key, result_key, transcript_key

__all__ = ["KINDS", "Expired", "RetentionReport", "apply_retention"]

logger = logging.getLogger(__name__)

Kind = Literal["audio", "transcript", "voiceprint"]
KINDS: tuple[Kind, ...] = ("audio", "transcript", "voiceprint")
_VOICEPRINTS = "voiceprints/"


@dataclass(frozen=True)
class Expired:
    """One object past its limit: deleted, or to be deleted in a dry run."""

    kind: Kind
    key: str
    stored_at: datetime


@dataclass
class RetentionReport:
    """What a pass found: `removed` (or, in a dry run, what would be), `kept` per kind (younger than the limit, or
    with no limit), and `undated`: keys left alone because their time is unknown."""

    dry_run: bool
    removed: list[Expired] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    undated: list[str] = field(default_factory=list)

    def count(self, kind: Kind) -> int:
        return sum(item.kind == kind for item in self.removed)


def apply_retention(store: ArtifactStore, options: RetentionOptions, *, now: datetime | None = None,
                    dry_run: bool = False) -> RetentionReport:
    """Delete the audio copies, transcripts and voice samples older than `options` allows.

    Args:
        store: the artifact store.
        options: the limits in days (None: keep forever).
        now: the current time (tests fix it); default the system's. A time without a zone is taken as UTC.
        dry_run: find, but delete nothing.

    Returns:
        What was (or would be) deleted and what was kept.

    Raises:
        StoreError: the store cannot be listed, read, or an object cannot be deleted (those deleted before stay
            deleted: a second pass finishes the work).

    Example:
        >>> report = apply_retention(open_store("callqa-artifacts", S3Settings()),  # doctest: +SKIP
        ...                          RetentionOptions(audio_days=90), dry_run=True)
    """
    moment = now or datetime.now(UTC)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    report = RetentionReport(dry_run=dry_run)
    limits: dict[Kind, float | None] = {"audio": options.audio_days, "transcript": options.transcript_days,
                                        "voiceprint": options.voiceprint_days}
    cutoff = {kind: None if days is None else moment - timedelta(days=days) for kind, days in limits.items()}
    _calls(store, cutoff, report)
    _voiceprints(store, cutoff["voiceprint"], report)
    for item in report.removed:
        if not dry_run:
            store.delete(item.key)
            logger.info("retention: deleted %s (stored %s)", item.key, item.stored_at.isoformat())
    return report


def _calls(store: ArtifactStore, cutoff: dict[Kind, datetime | None], report: RetentionReport) -> None:
    keys = set(store.list("calls/"))
    targets: tuple[tuple[Kind, Callable[[str], str]], ...] = (("audio", audio_copy_key),
                                                              ("transcript", transcript_key))
    for call_id in sorted({key.split("/")[1] for key in keys if key.count("/") == 2}):
        present = [(kind, make(call_id)) for kind, make in targets if make(call_id) in keys]
        if not present:
            continue
        if all(cutoff[kind] is None for kind, _ in present):  # nothing to decide: no need to read the call's time
            for kind, _ in present:
                report.kept[kind] += 1
            continue
        stored_at = _call_time(store, call_id)
        for kind, key in present:
            limit = cutoff[kind]
            if limit is None:
                report.kept[kind] += 1
            elif stored_at is None:
                report.undated.append(key)
            elif stored_at < limit:
                report.removed.append(Expired(kind=kind, key=key, stored_at=stored_at))
            else:
                report.kept[kind] += 1


def _call_time(store: ArtifactStore, call_id: str) -> datetime | None:
    """When a run stored the call: audio.json's stored_at, else the result's analyzed_at."""
    return (_time_in(store.read(audio_key(call_id)), "stored_at")
            or _time_in(store.read(result_key(call_id)), "analyzed_at"))


def _voiceprints(store: ArtifactStore, cutoff: datetime | None, report: RetentionReport) -> None:
    keys = store.list(_VOICEPRINTS)
    if cutoff is None:
        report.kept["voiceprint"] += len(keys)
        return
    for key in keys:
        enrolled = _time_in(store.read(key), "enrolled_at")
        if enrolled is None:
            report.undated.append(key)
        elif enrolled < cutoff:
            report.removed.append(Expired(kind="voiceprint", key=key, stored_at=enrolled))
        else:
            report.kept["voiceprint"] += 1


def _time_in(data: bytes | None, name: str) -> datetime | None:
    """A top-level ISO 8601 time of a stored JSON object (audio.json's stored_at, a result's analyzed_at, a voice
    sample's enrolled_at), without validating the rest of it; None when absent or unreadable."""
    if not data:
        return None
    try:
        moment = datetime.fromisoformat(json.loads(data)[name])
    except (ValueError, TypeError, KeyError):  # not JSON, not an object, no such key, not a time
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
