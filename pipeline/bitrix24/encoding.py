"""PHP-style query strings, as Bitrix24 reads them (`filter[>=CALL_START_DATE]=...`, `ID[0]=1&ID[1]=7`).

`batch` commands carry their parameters this way inside a JSON body (docs: settings/how-to-call-rest-api/
batch.md, data-encoding.md); the sandbox parses them back with `parse_php_query`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote

__all__ = ["parse_php_query", "php_query"]


def _pairs(prefix: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _pairs(f"{prefix}[{key}]", item)]
    if isinstance(value, (list, tuple)):
        return [pair for index, item in enumerate(value) for pair in _pairs(f"{prefix}[{index}]", item)]
    if isinstance(value, bool):
        return [(prefix, "1" if value else "0")]
    return [(prefix, str(value))]


def php_query(params: dict[str, Any]) -> str:
    """Encode nested params the way PHP's http_build_query does (brackets kept readable, the rest quoted)."""
    pairs = [pair for key, value in params.items() for pair in _pairs(str(key), value)]
    return "&".join(f"{quote(key, safe='[]')}={quote(value, safe='')}" for key, value in pairs)


def _path(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    while rest:
        inner, _, rest = rest.partition("]")
        parts.append(inner)
        rest = rest[1:] if rest.startswith("[") else ""
    return parts


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {key: _listify(item) for key, item in value.items()}
        if value and all(key.isdigit() for key in value) and sorted(map(int, value)) == list(range(len(value))):
            return [value[str(index)] for index in range(len(value))]
    return value


def parse_php_query(query: str) -> dict[str, Any]:
    """The reverse: `a[b][0]=x` -> {"a": {"b": ["x"]}}; `a[]=x&a[]=y` -> {"a": ["x", "y"]}."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parts = _path(key)
        node = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":  # "a[]": append
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(result)
