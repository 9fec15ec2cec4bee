"""Names a package exports without importing the modules that define them until one is asked for.

A package whose settings every command reads (`pipeline.publish.settings`, `pipeline.report.model`) would
otherwise load its whole feature on the way (httpx, structlog, Jinja2: 0.2 s of a fresh `callqa analyze`,
which publishes nothing and renders no report).

    # in pipeline/publish/__init__.py
    __getattr__ = lazy_exports(__name__, {"publish_stored": "pipeline.publish.bitrix24", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` (PEP 562) for `package`: each name in `exports` is loaded from its module on first
    use; any other name is an AttributeError, as for a module without it."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
