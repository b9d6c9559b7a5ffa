"""`verify RUN_DIR`: every file a run's manifest lists, checked on disk against its recorded hash."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..record import pngmeta
from ..record.manifest import MANIFEST_NAME, id_matches, load_manifest, manifest_id
from ..record.manifest_schema import inside_run_dir


@dataclass
class VerifyReport:
    run_dir: str
    manifest_id: str | None
    checked: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, what is wrong)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir, "manifest_id": self.manifest_id, "ok": self.ok, "checked": self.checked,
            "problems": [{"path": p, "problem": m} for p, m in self.problems],
        }

    def to_text(self) -> str:
        lines = [f"{p}: {m}" for p, m in self.problems]
        if self.ok:
            lines.append(f"{self.run_dir}: ok ({self.checked} files match manifest {self.manifest_id})")
        else:
            lines.append(f"{self.run_dir}: {len(self.problems)} problem(s) in {self.checked} files checked")
        return "\n".join(lines)


def verify_run(run_dir: str | os.PathLike) -> VerifyReport:
    """Check every file a run's manifest lists (size and SHA-256); name each one changed or missing."""
    rd = Path(run_dir)
    if not rd.is_dir():
        raise SpecError(f"{rd}: not a folder", [(str(rd), "not a run folder (no such folder)")])
    if not (rd / MANIFEST_NAME).is_file():
        raise SpecError(f"{rd}: no manifest", [(str(rd), f"no {MANIFEST_NAME} here: not a finished run folder")])
    m = load_manifest(rd / MANIFEST_NAME)
    report = VerifyReport(run_dir=str(rd), manifest_id=m.get("id"))
    if not id_matches(m):
        report.problems.append(
            (MANIFEST_NAME, f"edited: its hashed part hashes to {manifest_id(m)}, not to its id {m.get('id')}")
        )
    for f in m.get("files") or []:
        rel = f["path"]  # the schema made it a relative path without '..'
        report.checked += 1
        p = inside_run_dir(rd, rel)
        if p is None:  # a symlink out of the folder: never hashed, its target never named
            report.problems.append((rel, "outside the run folder (a symlink?): not checked"))
            continue
        if not p.is_file():
            report.problems.append((rel, "missing"))
            continue
        size = p.stat().st_size
        sha = pngmeta.file_sha256(p)
        if sha != f.get("sha256"):
            detail = f"changed: sha256 {sha} (manifest: {f.get('sha256')})"
            if size != f.get("bytes"):
                detail += f", {size} bytes (manifest: {f.get('bytes')})"
            report.problems.append((rel, detail))
    return report
