"""The plan of the house holds: the sandbox stays apart, subpackages are packages, the command line is the only
place that knows typer, the runtime package needs nothing of the tests, and module imports form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PIPELINE = REPO / "pipeline"
# The two commands that serve the sandbox (both contract), and only inside their functions.
SANDBOX_USERS = {"pipeline/cli/bitrix24.py", "pipeline/cli/calls.py"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PIPELINE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, *, top_level_only: bool) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of each import; module-level only (not in functions or TYPE_CHECKING) if asked."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
    return found


def test_only_the_sandbox_commands_import_the_sandbox_and_lazily() -> None:
    offenders = []
    for name, path in _modules().items():
        if name.startswith("pipeline.sandbox"):
            continue
        where = str(path.relative_to(REPO))
        for module, _, line in _imports(path, top_level_only=False):
            if module.startswith("pipeline.sandbox"):
                if where not in SANDBOX_USERS:
                    offenders.append(f"{where}:{line}")
        for module, _, line in _imports(path, top_level_only=True):
            if module.startswith("pipeline.sandbox"):
                offenders.append(f"{where}:{line} (at module level)")
    assert not offenders, offenders


def test_the_command_line_does_not_load_the_sandbox() -> None:
    import subprocess
    import sys

    code = "import sys, pipeline.cli; print(any(m.startswith('pipeline.sandbox') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_every_folder_of_modules_is_a_package() -> None:
    folders = {path.parent for path in PIPELINE.rglob("*.py")}
    assert [str(f.relative_to(REPO)) for f in sorted(folders) if not (f / "__init__.py").is_file()] == []


def test_only_the_command_line_knows_typer_and_nothing_imports_private_names_or_tests() -> None:
    offenders = []
    for name, path in _modules().items():
        where = str(path.relative_to(REPO))
        for module, names, line in _imports(path, top_level_only=False):
            if module.split(".")[0] == "typer" and not name.startswith("pipeline.cli"):
                offenders.append(f"{where}:{line} imports {module}")
            if module.split(".")[0] in ("tests", "jiwer", "pytest"):
                offenders.append(f"{where}:{line} imports {module}")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if module.startswith("pipeline") and private:
                offenders.append(f"{where}:{line} imports {module}.{private[0]}")
    assert not offenders, offenders


def test_module_imports_form_no_cycle() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for module, names, _ in _imports(path, top_level_only=True):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules] or [module]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    cycles = _cycles(graph)
    assert not cycles, cycles


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found
