"""List-method plumbing shared by the sandbox's methods: the documented filter operators, `order`, `select` and
`start` paging (reference sections 2.3, 5.1, 10; api-reference/crm/universal/crm-item-list.md)."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

__all__ = ["PAGE", "ApiError", "field_key", "matches", "page", "resolve_references", "select", "sort_rows",
           "split_operator"]

PAGE = 50
# Longest first: "!@" must win over "!", ">=" over ">".
_OPERATORS = (">=", "<=", "!@", "!=", "=%", "%=", ">", "<", "@", "!", "=", "%")


class ApiError(Exception):
    """An error answer: `{"error": code, "error_description": description}` with HTTP `status`."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(code)
        self.code, self.description, self.status = code, description, status


def field_key(name: str) -> str:
    """One spelling for `stageId`, `STAGE_ID` and `stage_id`: the portal maps camelCase onto its UPPER_CASE
    columns, so a filter may use either."""
    return name.replace("_", "").lower()


def split_operator(key: str) -> tuple[str, str]:
    op = next((prefix for prefix in _OPERATORS if key.startswith(prefix)), "")
    return op, key[len(op):]


def _scalar(value: Any, wanted: Any) -> tuple[Any, Any]:
    """Both sides as numbers, datetimes or strings, whichever they both are."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return str(value), str(wanted)
    try:
        if isinstance(value, datetime) or (isinstance(value, str) and "T" in value and len(value) >= 19):
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
            return moment, datetime.fromisoformat(str(wanted))
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
            return float(value), float(wanted)
    except (TypeError, ValueError):
        pass
    return str(value), str(wanted)


def _id_key(value: Any) -> str | None:
    """An id as one string (7, "7" and 7.0 alike), or None for anything that is not a plain id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    if isinstance(value, str) and value.isdigit():
        return str(int(value))
    return None


@functools.lru_cache(maxsize=256)
def _id_keys(items: tuple) -> frozenset[str] | None:
    """The ids of an IN list, worked out once per list (a filter is matched against every row)."""
    keys = [_id_key(item) for item in items]
    return None if None in keys else frozenset(k for k in keys if k is not None)


def _compare(value: Any, op: str, wanted: Any) -> bool:
    if op in ("@", "!@") or (isinstance(wanted, list) and op in ("", "=", "!", "!=")):
        items = wanted if isinstance(wanted, list) else [wanted]
        keys = _id_keys(tuple(items)) if all(isinstance(i, (str, int, float)) for i in items[:1]) else None
        if keys is not None and _id_key(value) is not None:  # ids (the common case): one set look-up
            inside = _id_key(value) in keys
        else:
            inside = any(_compare(value, "=", item) for item in items)
        return not inside if op.startswith("!") else inside
    if op in ("%", "=%", "%="):
        return value is not None and str(wanted).strip("%").lower() in str(value).lower()
    if value is None or value == "":
        return (op in ("!", "!=")) == (wanted not in (None, ""))
    if wanted in (None, ""):
        # An empty bound (a `$result[...]` reference that resolved to nothing) matches no row: the portal turns
        # it into a condition nothing satisfies rather than dropping it.
        return op in ("!", "!=")
    left, right = _scalar(value, wanted)
    try:
        return {">=": left >= right, ">": left > right, "<=": left <= right, "<": left < right,
                "!": left != right, "!=": left != right}.get(op, left == right)
    except TypeError:
        return False


def matches(row: dict, conditions: dict, *, known: set[str] | None = None) -> bool:
    """Does `row` satisfy every condition (AND)? `known`: the filterable field keys; another field is refused
    as crm.item.list refuses it."""
    by_key = {field_key(name): value for name, value in row.items()}
    for key, wanted in conditions.items():
        op, name = split_operator(str(key))
        if known is not None and field_key(name) not in known:
            raise ApiError("INVALID_ARG_VALUE", f"Invalid filter: field '{name}' is not allowed in filter")
        if not _compare(by_key.get(field_key(name)), op, wanted):
            return False
    return True


def sort_rows(rows: list[dict], order: dict | None, *, default: str = "ID") -> list[dict]:
    """`order: {field: ASC|DESC}`, the first field most significant; ties and no order: by id ascending."""
    def number_or_text(value: Any) -> tuple:
        try:
            return (0, float(value), "")
        except (TypeError, ValueError):
            return (1, 0.0, "" if value is None else str(value))

    ordered = sorted(rows, key=lambda row: number_or_text(row.get(default, row.get(default.lower()))))
    for name, direction in reversed(list((order or {}).items())):
        direction = str(direction).upper()
        if direction not in ("ASC", "DESC"):
            raise ApiError("INVALID_ARG_VALUE", f"Invalid order: allowed sort directions are ASC, DESC. But got "
                                                f"'{direction}' for field '{name}'")
        key = field_key(str(name))
        ordered.sort(key=lambda row: number_or_text(next((v for k, v in row.items() if field_key(k) == key), None)),
                     reverse=direction == "DESC")
    return ordered


def select(row: dict, fields: list | None) -> dict:
    """Only the selected fields (and the id); `*` or nothing: all of them, `UF_*` adds the user fields."""
    if not fields or "*" in fields:
        return row
    wanted = {field_key(str(name)) for name in fields} | {"id"}
    user_fields = any(str(name).upper() in ("UF_*", "UFCRM_*") for name in fields)
    return {name: value for name, value in row.items()
            if field_key(name) in wanted or (user_fields and field_key(name).startswith("ufcrm"))}


def page(rows: list, params: dict) -> tuple[list, dict]:
    """50 rows from `start`; `total` and, when more remain, `next`. `start=-1`: no count (`total` 0, no `next`),
    for paging by `>ID`."""
    try:
        start = int(params.get("start", params.get("START", 0)) or 0)
    except (TypeError, ValueError):
        start = 0
    if start < 0:
        return rows[:PAGE], {"total": 0}
    chunk = rows[start: start + PAGE]
    extra: dict = {"total": len(rows)}
    if start + PAGE < len(rows):
        extra["next"] = start + PAGE
    return chunk, extra


_REFERENCE = re.compile(r"\$result((?:\[[^\[\]]*\])+)")


def resolve_references(value: Any, results: dict) -> Any:
    """Replace `$result[cmd][0][ID]` in a batch command's parameters with that value from an earlier command's
    result (settings/how-to-call-rest-api/batch.md). A path that leads nowhere becomes an empty string, which
    matches no row in a filter (so a pager chained past the last page gets nothing, not everything again)."""
    if isinstance(value, dict):
        return {key: resolve_references(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_references(item, results) for item in value]
    if not isinstance(value, str) or "$result" not in value:
        return value

    def lookup(match: re.Match) -> str:
        node: Any = results
        for part in re.findall(r"\[([^\[\]]*)\]", match.group(1)):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return ""
        return "" if isinstance(node, (dict, list)) or node is None else str(node)

    return _REFERENCE.sub(lookup, value)
