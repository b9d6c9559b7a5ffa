"""Text for `disco-spec models list|fetch|verify` (the CLI prints these lines; tests call them directly)."""

from __future__ import annotations

from ..models.registry import list_models
from ..models.resolve import fetch_model, verify_model
from ..models.resolve import entry_path


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def list_table() -> str:
    rows = [("name", "role", "size", "cached", "sha256")]
    for e in list_models():
        path = entry_path(e)
        size = e.size if e.size is not None else (path.stat().st_size if path.is_file() else None)
        rows.append((e.name + (" (tiny)" if e.tiny else ""), e.role, _size(size), "yes" if path.is_file() else "no", e.sha256[:16] + "…"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def fetch(names: list[str]) -> list[str]:
    lines = []
    for name in names:
        w = fetch_model(name)
        lines.append(f"{name}: {w.path} ({w.size} bytes, sha256 {w.sha256})")
    return lines


def verify(names: list[str]) -> tuple[bool, list[str]]:
    """Check the named models, or every cached one when no name is given."""
    if not names:
        names = [e.name for e in list_models() if entry_path(e).is_file()]
        if not names:
            return True, ["no model files in the cache yet"]
    results = [verify_model(n) for n in names]
    return all(ok for ok, _ in results), [line for _, line in results]
