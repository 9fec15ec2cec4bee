"""The ASR model registry and the assembly of packaged weights into models/cache/ (see registry.py)."""

from models.registry import (
    DEFAULT_ASR_MODEL,
    REGISTRY,
    HubModel,
    PackagedModel,
    ResolvedModel,
    assemble,
    default_cache_dir,
    fetch_from_hub,
    resolve,
)

__all__ = [
    "DEFAULT_ASR_MODEL",
    "REGISTRY",
    "HubModel",
    "PackagedModel",
    "ResolvedModel",
    "assemble",
    "default_cache_dir",
    "fetch_from_hub",
    "resolve",
]
