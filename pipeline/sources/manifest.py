"""The optional manifest of a folder of recordings: `manifest.csv` beside them, one row per call.

Columns (all but `file` optional): file (path relative to the folder), call_id, manager, manager_name,
direction (in|out), deal_id, started_at (ISO 8601), manager_channel (left|right).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from pipeline.errors import ConfigError

__all__ = ["MANIFEST_NAME", "parse_manifest"]

MANIFEST_NAME = "manifest.csv"
COLUMNS = ("file", "call_id", "manager", "manager_name", "direction", "deal_id", "started_at", "manager_channel")


def parse_manifest(text: str, where: str) -> dict[str, dict]:
    """file -> its row's values (empty cells dropped, started_at parsed).

    Raises:
        ConfigError: an unknown column, a row without `file`, or a value that does not parse (with its line).
    """
    reader = csv.DictReader(io.StringIO(text))
    unknown = set(reader.fieldnames or ()) - set(COLUMNS)
    if unknown or "file" not in (reader.fieldnames or ()):
        raise ConfigError(f"{where}:1: manifest columns must include 'file' and may be {', '.join(COLUMNS)}"
                          + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
    rows = {}
    for line, row in enumerate(reader, start=2):
        values = {key: value.strip() for key, value in row.items() if value and value.strip()}
        if "file" not in values:
            raise ConfigError(f"{where}:{line}: no file")
        try:
            if "started_at" in values:
                values["started_at"] = datetime.fromisoformat(values["started_at"])
        except ValueError as error:
            raise ConfigError(f"{where}:{line}: started_at: {error}") from error
        if values.get("direction") not in (None, "in", "out"):
            raise ConfigError(f"{where}:{line}: direction must be in or out")
        if values.get("manager_channel") not in (None, "left", "right"):
            raise ConfigError(f"{where}:{line}: manager_channel must be left or right")
        rows[values.pop("file")] = values
    return rows
