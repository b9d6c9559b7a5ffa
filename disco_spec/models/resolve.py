"""From a model reference (registry name or custom file) to a verified file on disk.

Nothing is ever loaded before its SHA-256 matched. Real entries live in the cache's models/
folder and are downloaded when missing; tiny entries are generated when missing; custom files are
taken where the spec says, relative to the spec's folder. `fetch_model` and `verify_model` are what
`disco-spec models fetch|verify` does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import errors
from ..spec.access import InputPolicy
from .registry import ModelEntry, get_entry
from .types import ResolvedWeights
from .weights import download, tiny_dir, weight_sha256, weights_dir


def entry_path(entry: ModelEntry) -> Path:
    """Where the cache keeps `entry`'s file."""
    return (tiny_dir() if entry.tiny else weights_dir()) / entry.filename


def _what(entry: ModelEntry) -> str:
    if entry.tiny:
        return f"{entry.role} model {entry.name} (generated; `disco-spec models make-tiny` rewrites it)"
    return f"{entry.role} model {entry.name}"


def _verify(path: Path, expected: str, what: str, *, role: str, name: str, use_cache: bool,
            source_url: str | None = None, own_file: bool = False) -> ResolvedWeights:
    actual = weight_sha256(path, use_cache=use_cache)
    if actual != expected.lower():
        raise errors.WeightsHashMismatch(what, str(path), expected.lower(), actual, own_file=own_file)
    return ResolvedWeights(role=role, name=name, path=str(path.resolve()), sha256=actual,
                           size=path.stat().st_size, source_url=source_url)


def expected_hash_text(entry: ModelEntry) -> str:
    """What the registry expects of the file's SHA-256, in words."""
    if entry.pinned:
        return entry.sha256
    return f"starting with {entry.sha256_prefix} (unpinned: no full hash is published)"


def _missing_message(entry: ModelEntry, path: Path) -> str:
    urls = "\n".join(f"  {u}" for u in entry.urls)
    return (
        f"{_what(entry)} is not in the cache and fetching is off. Download it from one of:\n{urls}\n"
        f"and place it at:\n  {path}\n(SHA-256 {expected_hash_text(entry)}), or run "
        f"`disco-spec models fetch {entry.name}`."
    )


def _verify_prefix(path: Path, entry: ModelEntry, what: str, *, use_cache: bool,
                   source_url: str | None) -> ResolvedWeights:
    """An unpinned entry: the file's SHA-256 must start with the published prefix (MiDaS' own check).

    The full hash is returned, so manifests pin the exact bytes that were used.
    """
    prefix = entry.sha256_prefix.lower()
    if len(prefix) < 8:
        raise errors.ModelError(f"{what}: the registry has neither a SHA-256 nor a hash prefix for it")
    actual = weight_sha256(path, use_cache=use_cache)
    if not actual.startswith(prefix):
        raise errors.WeightsHashMismatch(what, str(path), f"{prefix}... (published prefix)", actual)
    return ResolvedWeights(role=entry.role, name=entry.name, path=str(path.resolve()), sha256=actual,
                           size=path.stat().st_size, source_url=source_url)


def resolve_entry(entry: ModelEntry, *, verify_each_time: bool = False, fetch: bool = True) -> ResolvedWeights:
    """The verified cache file of a registry entry (downloaded or generated first when missing)."""
    path = entry_path(entry)
    what = _what(entry)
    # The canonical source (whichever mirror served it, the bytes are pinned by the hash).
    source_url = entry.urls[0] if entry.urls else None
    if not path.is_file():
        if entry.tiny:
            from .tiny import generate

            # generate() refuses bytes that differ from the pinned hash, so the result is verified.
            return generate(entry.name, path.parent)
        if not fetch:
            raise errors.ModelError(_missing_message(entry, path))
        if not entry.pinned:
            download(entry.urls, path, None, what)
            try:
                return _verify_prefix(path, entry, what, use_cache=False, source_url=source_url)
            except errors.WeightsHashMismatch:
                path.unlink(missing_ok=True)  # never keep bytes that failed their check
                raise
        # download() hashed the bytes while streaming and only kept them if they matched.
        download(entry.urls, path, entry.sha256, what)
        return ResolvedWeights(role=entry.role, name=entry.name, path=str(path.resolve()),
                               sha256=entry.sha256.lower(), size=path.stat().st_size, source_url=source_url)
    if entry.size is not None and path.stat().st_size != entry.size:
        # A truncated download is caught without reading gigabytes.
        raise errors.WeightsHashMismatch(
            what, f"{path} (size {path.stat().st_size} bytes, expected {entry.size})", expected_hash_text(entry),
            "(not computed: the size already differs)",
        )
    if not entry.pinned:
        return _verify_prefix(path, entry, what, use_cache=not verify_each_time, source_url=source_url)
    return _verify(path, entry.sha256, what, role=entry.role, name=entry.name,
                   use_cache=not verify_each_time, source_url=source_url)


# The spec field that names a custom file of each role (for error messages).
ROLE_FIELDS = {
    "diffusion": "models.diffusion_model.path",
    "secondary": "models.secondary_model.path",
    "lpips": "models.lpips_model.path",
    "clip": "models.extra_clip_models.pretrained",
}


def custom_path(ref: Any, spec_dir: str | os.PathLike | None, *, access: InputPolicy | None = None,
                field: str = "models") -> Path:
    """The real path of a model file a spec names, inside the folders `access` allows (SpecError otherwise;
    nothing outside is looked at). Without `access`: the default policy of a spec in `spec_dir`."""
    if access is None:
        access = InputPolicy.for_spec(spec_dir)
    return access.resolve(str(ref.path), field)


def resolve_weights(
    ref: Any,
    role: str,
    *,
    spec_dir: str | os.PathLike | None = None,
    verify_each_time: bool = False,
    fetch: bool = True,
    access: InputPolicy | None = None,
) -> ResolvedWeights:
    """Resolve `ref` (a registry name, or an object with `.path` and `.sha256`) to a verified file.

    A custom file must lie inside the folders `access` allows (default: the spec's repository, see
    spec.access); a path outside is a SpecError (exit 2) before the file is looked at.

    Raises ModelError for unknown names, wrong roles and missing files, WeightsHashMismatch when the
    bytes are not the expected ones (the file is then never loaded).
    """
    if isinstance(ref, str):
        entry = get_entry(ref)
        if entry.role != role:
            raise errors.ModelError(f"{ref!r} is a {entry.role} model, but a {role} model is needed here")
        return resolve_entry(entry, verify_each_time=verify_each_time, fetch=fetch)
    if hasattr(ref, "path") and hasattr(ref, "sha256"):
        path = custom_path(ref, spec_dir, access=access, field=ROLE_FIELDS.get(role, f"models.{role}"))
        what = f"custom {role} checkpoint"
        if not ref.sha256:
            raise errors.ModelError(f"{what} {path}: a sha256 is required for a local file")
        if not path.is_file():
            raise errors.ModelError(f"{what}: file not found: {path}")
        return _verify(path, str(ref.sha256), what, role=role, name="custom", use_cache=not verify_each_time,
                       own_file=True)
    raise errors.ModelError(f"cannot resolve a {role} model from {ref!r}: give a registry name or {{path, sha256}}")


# -- what `disco-spec models fetch|verify` does (the CLI only formats the results) ------------------

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
