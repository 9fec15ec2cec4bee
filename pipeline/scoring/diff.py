"""Re-scoring stored results with new lexicons or a new scorecard: no audio, no ASR.

`derive.derive` makes a stored result afresh (read as a transcript); `diff_results` says what changed (hits gained
and lost, the score before and after, the criteria that flipped): the dry run a QA lead reads before switching a
lexicon edit on for everybody.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import CallError
from pipeline.schema import CallResult, Hit, Verdict

__all__ = ["ResultDiff", "diff_results", "expand_result_paths", "read_result"]


def expand_result_paths(paths: list[Path]) -> list[Path]:
    """Files as given; folders contribute their *.json files (not recursively)."""
    expanded: list[Path] = []
    for path in paths:
        expanded += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return expanded


def read_result(path: Path) -> CallResult:
    """Read a stored result.

    Raises:
        CallError: the file is missing or is not a callqa result.
    """
    try:
        text = path.read_bytes()
    except OSError as error:
        raise CallError(path, f"cannot read: {error.strerror or error}") from error
    try:
        return CallResult.from_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise CallError(path, f"not a callqa result ({where}: {first['msg']})") from error


def _key(hit: Hit) -> tuple:
    return (hit.lexicon, hit.term, hit.role, round(hit.start, 2), round(hit.end, 2))


@dataclass(frozen=True)
class ResultDiff:
    call_id: str
    gained: list[Hit]
    lost: list[Hit]
    total_before: float | None
    total_after: float | None
    grade_before: int | None
    grade_after: int | None
    flipped: list[tuple[str, Verdict | None, Verdict | None]]  # criterion id, verdict before, verdict after

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost or self.flipped or self.total_before != self.total_after)


def diff_results(before: CallResult, after: CallResult) -> ResultDiff:
    old = {_key(hit): hit for hit in before.hits}
    new = {_key(hit): hit for hit in after.hits}
    criteria_before = {c.id: c.verdict for c in before.score.criteria} if before.score else {}
    criteria_after = {c.id: c.verdict for c in after.score.criteria} if after.score else {}
    flipped = [(cid, criteria_before.get(cid), criteria_after.get(cid))
               for cid in dict.fromkeys([*criteria_before, *criteria_after])
               if criteria_before.get(cid) != criteria_after.get(cid)]
    return ResultDiff(
        call_id=after.call_id,
        gained=[hit for key, hit in new.items() if key not in old],
        lost=[hit for key, hit in old.items() if key not in new],
        total_before=before.score.total if before.score else None,
        total_after=after.score.total if after.score else None,
        grade_before=before.score.grade if before.score else None,
        grade_after=after.score.grade if after.score else None,
        flipped=flipped,
    )
