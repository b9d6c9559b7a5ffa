"""`disco-spec diff` with the --out folder of a render as A or B (or both): every run folder under it.

What is compared with what:

* two --out folders: their run folders are paired by their path relative to each folder
  (`smoke/run-0001` with `smoke/run-0001`, `smoke/sweep-0001/cell-02` with the same), each pair is diffed
  as two run folders are, and the runs only one folder has are listed (they make the folders differ);
* an --out folder and a single source (a run folder, manifest, PNG, spec or MLflow run): each run under
  the folder is diffed with that source;
* anything else: `compare.diff` as before.

Pairing by relative path, not by content or time, because two renders of the same specs into two --out
folders number their runs the same way; when the numbering differs, diff the run folders themselves.
Unfinished runs (no manifest.json yet) are named in a note, not compared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare import DiffReport, diff_sources
from .sources import is_run_folder, load_source, out_folder_runs


@dataclass
class RunPair:
    path: str  # the run's path relative to its --out folder (A's when only A is a folder)
    report: DiffReport


@dataclass
class FolderDiffReport:
    a: str
    b: str
    pairs: list[RunPair] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_differences(self) -> int:
        return sum(p.report.n_differences for p in self.pairs) + len(self.only_a) + len(self.only_b)

    @property
    def same(self) -> bool:
        return self.n_differences == 0

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "differences": self.n_differences, "a": self.a, "b": self.b,
                "pairs": [{"path": p.path, **p.report.to_dict()} for p in self.pairs],
                "only_a": list(self.only_a), "only_b": list(self.only_b), "notes": list(self.notes)}

    def to_text(self) -> str:
        lines = [f"A: {self.a}", f"B: {self.b}"]
        for p in self.pairs:
            lines.append(f"== {p.path}: " + ("same" if p.report.same else f"{p.report.n_differences} difference(s)"))
            lines.extend(f"  {line}" for line in p.report.to_text().splitlines())
        lines += [f"only in A: {r}" for r in self.only_a] + [f"only in B: {r}" for r in self.only_b]
        lines += [f"note: {n}" for n in self.notes]
        n_same = sum(p.report.same for p in self.pairs)
        summary = f"{len(self.pairs)} run pair(s): {n_same} same, {len(self.pairs) - n_same} differ"
        if self.only_a or self.only_b:
            summary += f"; {len(self.only_a)} only in A, {len(self.only_b)} only in B"
        lines.append(("same: " if self.same else "differ: ") + summary)
        return "\n".join(lines)


def is_out_folder(source: str | os.PathLike) -> bool:
    """An existing folder that is not itself a run folder: the --out folder of a render (or a batch folder)."""
    p = Path(source)
    return p.is_dir() and not is_run_folder(p)


def diff_any(a: str | os.PathLike, b: str | os.PathLike, *,
             diff_dir: str | os.PathLike | None = None) -> DiffReport | FolderDiffReport:
    """`diff A B` where either may be an --out folder (see the module docstring for the pairing)."""
    from .compare import diff

    folder_a, folder_b = is_out_folder(a), is_out_folder(b)
    if not folder_a and not folder_b:
        return diff(a, b, diff_dir=diff_dir)
    report = FolderDiffReport(a=str(a), b=str(b))
    runs_a = _runs(a, "A", report) if folder_a else None
    runs_b = _runs(b, "B", report) if folder_b else None

    def sub_dir(rel: str) -> Path | None:
        return None if diff_dir is None else Path(diff_dir) / rel

    if runs_a is not None and runs_b is not None:
        report.only_a = [rel for rel in runs_a if rel not in runs_b]
        report.only_b = [rel for rel in runs_b if rel not in runs_a]
        for rel in (r for r in runs_a if r in runs_b):
            report.pairs.append(RunPair(rel, diff_sources(load_source(runs_a[rel], arg="A"),
                                                          load_source(runs_b[rel], arg="B"), diff_dir=sub_dir(rel))))
        return report
    runs, single, single_arg = (runs_a, b, "B") if runs_a is not None else (runs_b, a, "A")
    other = load_source(single, arg=single_arg)
    for rel, run in (runs or {}).items():
        mine = load_source(run, arg="B" if single_arg == "A" else "A")
        sa, sb = (mine, other) if single_arg == "B" else (other, mine)
        report.pairs.append(RunPair(rel, diff_sources(sa, sb, diff_dir=sub_dir(rel))))
    return report


def _runs(folder: str | os.PathLike, arg: str, report: FolderDiffReport) -> dict[str, Path]:
    root = Path(folder)
    finished, unfinished = out_folder_runs(root, arg=arg)
    for u in unfinished:
        report.notes.append(f"{arg}: {u.relative_to(root).as_posix()} is unfinished (no manifest.json): not compared")
    return {r.relative_to(root).as_posix(): r for r in finished}
