"""What `disco-spec models list|fetch|verify|make-tiny` does (the CLI only formats the results)."""

from __future__ import annotations

from .registry import ModelEntry, get_entry, list_models
from .resolve import entry_path, resolve_entry
from .tiny import make_tiny
from .types import ResolvedWeights
from .weights import weight_sha256

__all__ = ["fetch_model", "list_models", "make_tiny", "verify_model"]


def fetch_model(name: str) -> ResolvedWeights:
    """Download (or, for tiny entries, generate) `name` into the cache if missing, and verify it.

    A file already cached is checked through the hash cache; `verify_model` always rehashes.
    """
    return resolve_entry(get_entry(name), verify_each_time=False, fetch=True)


def verify_model(name: str) -> tuple[bool, str]:
    """Whether the cached file of `name` is present and has the pinned SHA-256 (always rehashed)."""
    entry: ModelEntry = get_entry(name)
    path = entry_path(entry)
    if not path.is_file():
        how = "disco-spec models make-tiny" if entry.tiny else f"disco-spec models fetch {name}"
        return False, f"{name}: not in the cache (expected at {path}); run `{how}`"
    actual = weight_sha256(path, use_cache=False)
    if not entry.pinned:
        if not actual.startswith(entry.sha256_prefix.lower()):
            return False, (f"{name}: SHA-256 mismatch at {path}\n  expected {entry.sha256_prefix}... (published "
                           f"prefix; no full hash is published)\n  actual   {actual}")
        return True, f"{name}: OK, unpinned ({path}, {path.stat().st_size} bytes, sha256 {actual})"
    if actual != entry.sha256:
        return False, f"{name}: SHA-256 mismatch at {path}\n  expected {entry.sha256}\n  actual   {actual}"
    return True, f"{name}: OK ({path}, {path.stat().st_size} bytes, sha256 {actual})"
