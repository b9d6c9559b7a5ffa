"""The models stage: the registry (official URLs, SHA-256), weight files (resolve, download, cache), one loader
per model (diffusion, secondary, clip, lpips, depth), a render's models (load), architectures, tiny models.

May import: spec (and the foundation modules errors, atomic). Importing this package is cheap: the
management functions load on first use, so `models.types` (which the engine needs) pulls in nothing heavy.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "list_models": "registry",
    "fetch_model": "resolve",
    "verify_model": "resolve",
    "make_tiny": "tiny",
    "resolve_weights": "resolve",
    "get_entry": "registry",
    "REGISTRY": "registry",
    "ModelEntry": "registry",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
