"""Run folders: numbered folders reserved atomically, and small text files written atomically."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_write_text


def allocate_numbered_dir(base: str | Path, prefix: str) -> Path:
    """Reserve the next free `{prefix}NNNN` folder under `base` atomically (mkdir): never shared."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    existing = [int(p.name[len(prefix):]) for p in base.glob(f"{prefix}*") if p.name[len(prefix):].isdigit()]
    n = max(existing, default=0) + 1
    while True:
        candidate = base / f"{prefix}{n:04d}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1


def allocate_run_dir(out: str | Path, batch_name: str) -> Path:
    """Reserve the next free `run-NNNN` folder of a batch, so two renders never share one."""
    return allocate_numbered_dir(Path(out) / batch_name, "run-")


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)
