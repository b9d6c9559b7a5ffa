"""Run folders: numbered folders reserved atomically, and small text files written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import SpecError


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


def write_run_documents(run_dir: Path, doc: Any, plan: Any) -> None:
    """spec.json (the spec as rendered, canonical) and plan.json, beside the outputs."""
    write_text_atomic(run_dir / "spec.json", json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    write_text_atomic(run_dir / "plan.json", plan.to_json() + "\n")


def refuse_finished_run(run_dir: str | os.PathLike) -> None:
    """`--run-dir` without `--resume`: a finished run (its manifest.json) is never written again (exit 2)."""
    rd = Path(run_dir)
    if os.path.lexists(rd / "manifest.json"):
        why = (f"{rd} holds a finished run (manifest.json); it is never rendered over: pass --resume to check "
               "it (and re-render what is missing or damaged), or render into a new folder")
        raise SpecError(f"--run-dir: {why}", [("--run-dir", why)])
