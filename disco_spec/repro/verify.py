"""`verify RUN_DIR`: every file a run's manifest lists, checked on disk against its recorded hash.

Given the --out folder of a render instead (`verify_folder`), every run folder under it is checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..hashes import file_sha256
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
        sha = file_sha256(p)
        if sha != f.get("sha256"):
            detail = f"changed: sha256 {sha} (manifest: {f.get('sha256')})"
            if size != f.get("bytes"):
                detail += f", {size} bytes (manifest: {f.get('bytes')})"
            report.problems.append((rel, detail))
    return report


@dataclass
class FolderVerifyReport:
    """`verify OUT`: one VerifyReport per finished run folder under OUT, and the unfinished ones (not failures:
    an interrupted render has no manifest yet; `render --resume` continues it)."""

    folder: str
    runs: list[VerifyReport] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "ok": self.ok, "runs": [r.to_dict() for r in self.runs],
                "unfinished": list(self.unfinished)}

    def to_text(self) -> str:
        lines = [r.to_text() for r in self.runs]
        lines += [f"{u}: unfinished (no {MANIFEST_NAME}; `render --resume` continues it)" for u in self.unfinished]
        bad = sum(not r.ok for r in self.runs)
        lines.append(f"{self.folder}: {len(self.runs)} run folder(s) checked, "
                     + (f"{bad} with problems" if bad else "all ok"))
        return "\n".join(lines)


def verify_folder(folder: str | os.PathLike) -> VerifyReport | FolderVerifyReport:
    """A run folder: verify_run. Any other folder (the --out of a render): every run folder under it."""
    from .sources import is_run_folder, out_folder_runs

    p = Path(folder)
    if not p.is_dir() or is_run_folder(p):
        return verify_run(p)
    finished, unfinished = out_folder_runs(p, arg="RUN_DIR")
    return FolderVerifyReport(folder=str(p), runs=[verify_run(r) for r in finished],
                              unfinished=[str(u) for u in unfinished])
