"""The sweep folder on disk: reserving `sweep-NNNN`, the results of its cells (`CellResult`,
`SweepResult`), the `sweep.json` document rewritten (atomically) as the sweep runs, the output each
cell shows on the contact sheet, and reading the cell folders of a finished sweep back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .plan import Cell, SweepPlan

SWEEP_VERSION = 1
SWEEP_JSON = "sweep.json"
CONTACT_SHEET = "contact_sheet.png"


@dataclass
class CellResult:
    cell: Cell
    run_dir: Path
    manifest_id: str | None
    outputs: list[dict[str, Any]]  # {path, kind, item, sha256, bytes}
    sheet_image: str | None  # the output shown on the contact sheet
    mlflow_run_id: str | None = None


@dataclass
class SweepResult:
    sweep_dir: Path
    plan: SweepPlan
    cells: list[CellResult] = field(default_factory=list)
    contact_sheet: Path | None = None
    backend: str = "local"
    parent_run_id: str | None = None
    tracking_failure: str | None = None

    @property
    def sweep_json(self) -> Path:
        return self.sweep_dir / SWEEP_JSON


def allocate_sweep_dir(out: str | os.PathLike, batch_name: str) -> Path:
    """Reserve the next free `sweep-NNNN` folder under {out}/{batch_name} (mkdir, so never shared)."""
    from ..run.folders import allocate_numbered_dir

    return allocate_numbered_dir(Path(out) / batch_name, "sweep-")


def sheet_output(result: Any) -> str | None:
    """The output shown for a cell: item 0's image for stills, the last frame for animations."""
    images = [o for o in result.outputs if o.kind == "image"]
    if not images:
        return None
    plan = result.plan
    wanted = plan.items[-1].output if plan.animation_mode != "None" else plan.items[0].output
    return next((o.path for o in images if o.path == wanted), images[0].path)


def sweep_document(plan: SweepPlan, sweep_dir: Path, cells: Mapping[int, CellResult], *, status: str,
                   backend: str, parent_run_id: str | None, tracking_uri: str | None) -> dict[str, Any]:
    from ..record.manifest import spec_sha256

    layout = plan.layout()
    out_cells = []
    for c in plan.cells:
        r = cells.get(c.index)
        out_cells.append({
            "index": c.index, "name": c.name, "coords": list(c.coords), "row": layout["positions"][c.index][0],
            "column": layout["positions"][c.index][1], "overrides": c.overrides, "labels": c.labels,
            "run_dir": c.name, "spec_sha256": spec_sha256(c.document),
            "manifest_id": r.manifest_id if r else None, "outputs": r.outputs if r else [],
            "contact_sheet_image": r.sheet_image if r else None, "mlflow_run_id": r.mlflow_run_id if r else None,
        })
    return {
        "sweep_version": SWEEP_VERSION,
        "status": status,
        "spec": plan.spec_path,
        "spec_dir": plan.spec_dir,
        "base_spec_sha256": spec_sha256(plan.base_document),
        "base_seed": plan.base_document["run"]["set_seed"],
        "seed_drawn": plan.seed_drawn,
        "mode": plan.mode,
        "shape": list(plan.shape()),
        "axes": [{"key": a.key, "path": a.path, "values": list(a.values), "labels": list(a.labels)} for a in plan.axes],
        "layout": {k: layout[k] for k in ("row_title", "col_title", "rows", "cols")},
        "backend": backend,
        "cells": out_cells,
        "contact_sheet": CONTACT_SHEET if status == "finished" else None,
        "mlflow": {"parent_run_id": parent_run_id, "tracking_uri": tracking_uri} if parent_run_id else None,
        "sweep_dir": str(sweep_dir.resolve()),
    }


def write_sweep_json(path: Path, doc: dict[str, Any]) -> None:
    from ..run.folders import write_text_atomic

    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def iter_cell_dirs(sweep_dir: str | os.PathLike) -> Iterable[Path]:
    """The cell run folders of a finished sweep, in cell order (from sweep.json)."""
    from ..errors import SpecError
    from ..record.manifest_schema import inside_run_dir
    from ..spec.untrusted_json import read_file

    sd = Path(sweep_dir)
    doc = read_file(sd / SWEEP_JSON)  # the one bounded reader
    cells = doc.get("cells") if isinstance(doc, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("run_dir"), str)
                                              and inside_run_dir(sd, c["run_dir"]) is not None for c in cells):
        why = "not the sweep record disco-spec writes (cells with run_dir folders inside the sweep folder)"
        raise SpecError(f"{sd / SWEEP_JSON}: {why}", [(str(sd / SWEEP_JSON), why)])
    return [sd / c["run_dir"] for c in cells]
