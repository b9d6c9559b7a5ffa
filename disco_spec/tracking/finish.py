"""What a render adds to its MLflow run as it ends: tags read from its manifest (manifest id, git commit,
the spec hash; short forms for the UI's chips) and the per-frame summary metrics. No mlflow import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .names import short_tags
from .params import dig, sanitize_key

TAG_PREFIX = "disco_spec."
FRAME_PREFIX = "frame/"

# Where disco_spec.record.manifest keeps these (older/other layouts after the first path).
MANIFEST_GIT_COMMIT = ("volatile.code_checkout.git_commit", "hashed.code.git_commit", "code.git_commit", "git_commit")
MANIFEST_GIT_DIRTY = ("volatile.code_checkout.git_dirty", "hashed.code.git_dirty", "code.git_dirty", "git_dirty")
MANIFEST_SPEC_SHA256 = ("hashed.spec_sha256", "spec_sha256")


def read_manifest(result: Any) -> dict[str, Any] | None:
    """The manifest set on the result by disco_spec.record.manifest.finalize_run, else the run folder's file."""
    manifest = getattr(result, "manifest", None)
    if isinstance(manifest, dict):
        return manifest
    path = Path(result.run_dir) / "manifest.json"
    if path.is_file():
        from ..errors import SpecError
        from ..record.manifest_schema import read_json_file

        try:
            loaded = read_json_file(path)  # the one bounded reader
        except SpecError:
            return None
        return loaded if isinstance(loaded, dict) else None
    return None


def manifest_tags(manifest: dict[str, Any], seed: Any) -> dict[str, str]:
    """`disco_spec.manifest_id`, `manifest` (short), git commit (also `mlflow.source.git.commit`), spec hash,
    `disco_spec.recipe_id` (record.ids.recipe_id) and, for outputs served by the render cache,
    `disco_spec.cached_from`."""
    tags: dict[str, str] = {}
    mid = dig(manifest, "id", "manifest_id")
    if mid is not None:
        tags[TAG_PREFIX + "manifest_id"] = str(mid)
        tags.update(short_tags(seed=seed, manifest_id=str(mid)))
    commit = dig(manifest, *MANIFEST_GIT_COMMIT)
    if commit is not None:
        tags[TAG_PREFIX + "git_commit"] = str(commit)
        tags["mlflow.source.git.commit"] = str(commit)
        dirty = dig(manifest, *MANIFEST_GIT_DIRTY)
        if isinstance(dirty, bool):
            tags[TAG_PREFIX + "git_dirty"] = str(dirty).lower()
    hashed = manifest.get("hashed")
    if isinstance(hashed, dict):  # the render cache's key: a finished run with this tag is a shared cache entry
        from ..record.ids import recipe_id

        tags[TAG_PREFIX + "recipe_id"] = recipe_id(hashed)
    cached_from = dig(manifest, "volatile.cached_from")
    if isinstance(cached_from, list) and cached_from:  # served from the render cache: from which runs
        tags[TAG_PREFIX + "cached_from"] = cached_from_text(cached_from)
    spec_hash = dig(manifest, *MANIFEST_SPEC_SHA256)
    if isinstance(spec_hash, str):
        tags[TAG_PREFIX + "spec_sha256"] = spec_hash
        tags.update(short_tags(seed=seed, spec_sha256=spec_hash))
    return tags


def cached_from_text(cached_from: list[Any]) -> str:
    """`item 0: manifest <id> (mlflow run <id> | <run folder>)`, one per served item, `; `-separated."""
    parts = []
    for c in cached_from:
        if isinstance(c, dict):
            where = f"mlflow run {c['mlflow_run_id']}" if c.get("mlflow_run_id") else str(c.get("run_dir"))
            parts.append(f"item {c.get('item')}: manifest {c.get('manifest_id')} ({where})")
    return "; ".join(parts)[:5000]


def frame_metrics(stats: dict[str, float]) -> dict[str, float]:
    """A frame's summary from its last step's stats: `frame/clip_loss` (sum over models), `frame/<stat>`."""
    out: dict[str, float] = {}
    clip = [float(v) for k, v in stats.items() if k.startswith("clip_loss/")]
    if clip:
        out[FRAME_PREFIX + "clip_loss"] = sum(clip)
    for key, value in stats.items():
        if not key.startswith("clip_loss"):
            out[sanitize_key(FRAME_PREFIX + key)] = float(value)
    return out
