"""YAML files that people edit (lexicons, scorecards): loaded with line numbers, so every error says where.

`load_yaml` parses a file and keeps its node tree; `validate` turns it into a pydantic model and reports each
problem as `file:line: field: what is wrong`. Duplicate keys, which PyYAML silently resolves to the last one,
are refused too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.errors import DefinitionError

__all__ = ["Problem", "YamlDocument", "load_yaml", "validate"]

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an edited file, at a line (1-based)."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    data: Any
    root: yaml.Node | None

    def file_location(self, location: tuple[str | int, ...]) -> tuple[str | int, ...]:
        """`location` without the parts pydantic adds for unions (a member's type name, a discriminator's tag),
        which name no key in the file: what stays reads like a path in the file."""
        node = self.root
        kept: list[str | int] = []
        for index, part in enumerate(location):
            last = index == len(location) - 1
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                child = next((value for key, value in node.value if key.value == part), None)
                if child is None and (not last or _names_a_type(part)):
                    continue  # a union member's name or tag: stay on this node
                node = child
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                node = node.value[part] if part < len(node.value) else None
            elif isinstance(part, str) and node is not None:
                continue  # a member's name under a value that has no keys (a string, a list)
            else:
                node = None
            kept.append(part)
        return tuple(kept)

    def line_of(self, location: tuple[str | int, ...]) -> int:
        """The line of the deepest node on `location` (a pydantic error's `loc`) that exists in the file."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for part in location:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((value for key, value in node.value if key.value == part), None)
                if child is None:  # an unknown or misspelt key: point at the key itself
                    child = next((key for key, _ in node.value if key.value == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line


def _names_a_type(part: str) -> bool:
    """Pydantic's names for union members: builtins, validator wrappers, model classes (never lower-case keys)."""
    return "[" in part or part in ("str", "int", "float", "bool", "list", "dict") or part[:1].isupper()


def _duplicate_keys(path: Path, node: yaml.Node | None) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                problems.append(Problem(path, key.start_mark.line + 1, f"duplicate key {key.value!r}"))
            seen.add(key.value)
            problems += _duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems += _duplicate_keys(path, item)
    return problems


def load_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file, keeping its node tree.

    Raises:
        DefinitionError: the file cannot be read, is not valid YAML, or repeats a key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DefinitionError([Problem(path, 1, f"cannot read the file: {error}")]) from error
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        raise DefinitionError([Problem(path, line, f"not valid YAML: {error.problem or error}")]) from error
    duplicates = _duplicate_keys(path, root)
    if duplicates:
        raise DefinitionError(duplicates)
    return YamlDocument(path=path, data=data, root=root)


def _where(location: tuple[str | int, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validate(document: YamlDocument, model: type[ModelT], **context: Any) -> ModelT:
    """Validate a parsed file against `model`; every problem names its line.

    Raises:
        DefinitionError: the content does not fit the model.
    """
    if not isinstance(document.data, dict):
        raise DefinitionError([Problem(document.path, 1, "expected a mapping of keys at the top of the file")])
    try:
        return model.model_validate(document.data, context=context or None)
    except ValidationError as error:
        raise DefinitionError(_problems(document, error)) from error


# What a union reports for its members that the value was never meant to be (a string given where the other
# member wants a mapping): noise next to the real problem, when there is one.
_WRONG_MEMBER = {"model_type", "model_attributes_type", "dict_type", "string_type"}


def _problems(document: YamlDocument, error: ValidationError) -> list[Problem]:
    found: dict[tuple, list[tuple[str, str]]] = {}
    for item in error.errors():
        location = document.file_location(tuple(item["loc"]))
        found.setdefault(location, []).append((item["type"], item["msg"].removeprefix("Value error, ")))
    problems = []
    for location, errors in found.items():
        real = [message for kind, message in errors if kind not in _WRONG_MEMBER]
        if not real:
            deeper = any(other[: len(location)] == location and len(other) > len(location) for other in found)
            if deeper:  # the value had the other member's shape; its own problem is reported deeper down
                continue
            real = [errors[0][1]]
        for message in dict.fromkeys(real):
            problems.append(Problem(document.path, document.line_of(location),
                                    f"{_where(location) or 'file'}: {message}"))
    return sorted(problems, key=lambda problem: problem.line)
