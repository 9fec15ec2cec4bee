"""A folder of recordings (the embedded default: the bundled sample calls), with an optional manifest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import CallError, ConfigError
from pipeline.sources.base import AUDIO_SUFFIXES, CallRecord, TimeWindow, call_id_from_path, check_unique_ids
from pipeline.sources.manifest import MANIFEST_NAME, parse_manifest

__all__ = ["FolderSource"]


class FolderSource:
    """Every recording under `folder` (recursively); calls are named by their path unless a manifest says."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError(f"source folder not found: {self.folder}")

    def describe(self) -> str:
        return str(self.folder)

    def list_calls(self, window: TimeWindow | None) -> list[CallRecord]:
        manifest_path = self.folder / MANIFEST_NAME
        manifest = (parse_manifest(manifest_path.read_text(encoding="utf-8"), str(manifest_path))
                    if manifest_path.is_file() else {})
        records = []
        for path in sorted(self.folder.rglob("*")):
            relative = path.relative_to(self.folder).as_posix()
            if (path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file()
                    or any(part.startswith(".") for part in path.relative_to(self.folder).parts)):
                continue
            stat = path.stat()
            row = manifest.get(relative, {})
            records.append(CallRecord(
                call_id=row.get("call_id") or call_id_from_path(relative),
                uri=str(path),
                fingerprint=f"{stat.st_size}:{stat.st_mtime_ns}",
                started_at=row.get("started_at") or datetime.fromtimestamp(stat.st_mtime, UTC),
                **{key: value for key, value in row.items() if key not in ("call_id", "started_at")},
            ))
        found = {Path(r.uri).relative_to(self.folder).as_posix() for r in records}
        for relative, row in manifest.items():
            if relative not in found:  # listed but not there: that call fails when fetched, the others go on
                records.append(CallRecord(call_id=row.get("call_id") or call_id_from_path(relative),
                                          uri=str(self.folder / relative), started_at=row.get("started_at"),
                                          **{k: v for k, v in row.items() if k not in ("call_id", "started_at")}))
        check_unique_ids(records, str(self.folder))
        return [r for r in records if window is None or window.contains(r.started_at)]

    def fetch(self, record: CallRecord, workdir: Path) -> Path:
        path = Path(record.uri)
        if not path.is_file():
            raise CallError(record.uri, "recording not found")
        return path
