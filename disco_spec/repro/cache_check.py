"""`disco-spec cache verify`: render cached entries again, without the cache, and compare pixels.

The render cache (run.cache) is only as good as determinism on this stack: an entry is served because one
recipe gives one image. This re-renders a sample of entries (their cached spec, their item or frames) and
compares every output's pixels hash with the cached manifest's: any difference means the stack is no longer
deterministic for that recipe (or the entry came from another stack and the recipe says so).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..record.ids import recipe_id
from ..run.cache import EntryInfo, list_entries, verify_entry


@dataclass
class EntryCheck:
    entry: EntryInfo
    status: str  # "same" | "differs" | "not comparable" (another recipe here) | "unreadable" | "failed"
    details: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = f"{self.entry.recipe_id[:16]}…/{self.entry.key}: {self.status}"
        return "\n".join([head, *(f"  {d}" for d in self.details)])


def check_entry(entry: EntryInfo) -> EntryCheck:
    """Render the entry's recipe again (cache off) and compare the outputs it holds."""
    from ..run.renderer import render
    from ..spec.load import validate_document

    hit = verify_entry(entry.path, entry.recipe_id, lambda o: True)
    if hit is None:
        return EntryCheck(entry, "unreadable", ["its files no longer match its manifest (served never; prune it)"])
    manifest = hit.manifest
    items = sorted({o["item"] for o in hit.outputs})
    spec_dir = (manifest.get("volatile") or {}).get("spec_dir")
    tmp = Path(tempfile.mkdtemp(prefix="disco-spec-cache-verify-"))
    try:
        try:
            spec = validate_document(dict(manifest["hashed"]["spec"]))
            result = render(spec, tmp, run_dir=tmp / "run", items=items, progress=False, spec_dir=spec_dir,
                            fetch=False, cache=False)
        except Exception as exc:  # noqa: BLE001 - a failed re-render is this check's finding
            return EntryCheck(entry, "failed", [f"{type(exc).__name__}: {exc}"])
        fresh = result.manifest or {}
        if recipe_id(fresh) != entry.recipe_id:
            from ..record.environment import differences

            why = [f"{k}: {a!r} (cached) != {b!r} (here)" for k, a, b in differences(
                {k: v for k, v in manifest["hashed"].items() if k not in ("outputs", "items")},
                {k: v for k, v in fresh["hashed"].items() if k not in ("outputs", "items")})][:8]
            return EntryCheck(entry, "not comparable", ["the recipe differs on this machine:", *why])
        now = {o["path"]: o["pixels_sha256"] for o in fresh["hashed"]["outputs"]}
        bad = [f"{o['path']}: pixels {o['pixels_sha256'][:16]} (cached) != {str(now.get(o['path']))[:16]} (now)"
               for o in hit.outputs if now.get(o["path"]) != o["pixels_sha256"]]
        return EntryCheck(entry, "differs" if bad else "same", bad)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify_cache(sample: int | None = None, *, seed: int = 0, root: Path | None = None) -> list[EntryCheck]:
    """Check `sample` entries (chosen with a seeded generator; None: all) of the render cache."""
    entries = list_entries(root)
    if sample is not None and sample < len(entries):
        entries = random.Random(seed).sample(entries, sample)
    return [check_entry(e) for e in entries]


def summary(checks: list[EntryCheck]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.status] = counts.get(c.status, 0) + 1
    return counts
