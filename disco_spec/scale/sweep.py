"""Parameter sweeps: one spec, a grid (or zip) of variants, one run folder and MLflow child run per cell.

    disco-spec sweep specs/smoke.toml --set clip_guidance_scale=1500,5000,10000 --set steps=100,250

Keys are DD's field names, unqualified when the name is unique in the spec (`clip_guidance_scale` is
`guidance.clip_guidance_scale`, `steps` is `diffusion.steps`), or dotted paths (`guidance.tv_scale`,
`prompts.text_prompts`). Values are separated by commas outside brackets and quotes, and each is read
as a TOML value (`1500`, `0.5`, `true`, `"ddim"`, `[64, 128]`, `{0 = ["a cat"]}`); a value that is not
TOML is a string (`plms`, `60%`). Each variant is validated like a spec file: a bad key or value is a
SpecError (exit 2) naming `--set KEY`, with a "did you mean" for unknown keys.

A sweep file holds the same in TOML or JSON (`--sweep-file sweep.toml`):

    mode = "grid"                      # or "zip": the i-th values of every key together
    [set]
    clip_guidance_scale = [1500, 5000, 10000]
    steps = [100, 250]
    "guidance.tv_scale" = [0, 150]     # dotted paths as quoted keys

Grid cells are numbered in row-major order (the first key changes slowest). Every cell renders with
the same seed: the spec's `set_seed` (or `--seed`); a 'random_seed' spec draws one seed for the whole
sweep, unless `set_seed` itself is swept.

Layout on disk, under `{out}/{batch_name}/sweep-NNNN/`:

    sweep.json            cells, their overrides and labels, manifest ids, output SHA-256s (atomic)
    contact_sheet.png     one image per cell; rows = the first key's values, columns = the others'
    comparison.html       the comparison page (repro.compare_page): the cells' grid, any two side by side
    cell-00/, cell-01/    each a normal run folder (spec.json, plan.json, images, manifest.json): any
                          cell can be rebuilt alone with `disco-spec rebuild <sweep dir>/cell-03`

Pieces: `sweep_keys` (keys, values and sweep files into axes), `sweep_plan` (axes into validated
cells and their layout), `sweep_layout` (the sweep folder and sweep.json). This module runs a
sweep and re-exports their names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..run.request import DEFAULT_OUT, InputTrust
from .keys import MODES, Axis, load_sweep_file, parse_set, parse_value, resolve_key, split_values
from .layout import CONTACT_SHEET, SWEEP_JSON, SWEEP_VERSION, CellResult, SweepResult, allocate_sweep_dir, iter_cell_dirs, sheet_output, sweep_document, write_sweep_json
from .plan import MAX_CELLS, Cell, SweepPlan, cells_table, plan_sweep

if TYPE_CHECKING:
    from ..tracking.sweeps import SweepTracker
    from .jobs import JobResult

__all__ = [
    "Axis", "Cell", "CellResult", "SweepPlan", "SweepRequest", "SweepResult", "allocate_sweep_dir", "load_sweep_file",
    "parse_set", "plan_sweep", "resolve_key", "run_sweep", "split_values",
]
# Also importable from here, for other modules and tests (this module does not use them itself).
__all__ += ["MAX_CELLS", "MODES", "SWEEP_VERSION", "cells_table", "iter_cell_dirs", "parse_value"]


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRequest:
    """How a sweep's cells render, built once (by the CLI) and passed down to every cell's job: a RenderRequest's
    options that are the same for every cell (the sweep plan holds each cell's spec, seed and run folder)."""

    out: str | os.PathLike = DEFAULT_OUT  # the sweep gets {out}/{batch_name}/sweep-NNNN/
    sweep_dir: str | os.PathLike | None = None  # render into this sweep folder instead
    # What each cell's spec may make it read and download. Jobs travel to workers, so `access` is not passed
    # on: each cell builds its InputPolicy from the sweep's spec folder (as render --backend does).
    trust: InputTrust = InputTrust()
    # A parent MLflow run for the sweep, a child run per cell (logged in this process from the cell's
    # results), the contact sheet and the cells table on the parent; None: no MLflow.
    tracker: SweepTracker | None = None
    progress: bool = False  # a progress bar per cell on stderr (local backend)
    backend: str = "local"  # where the cells render (scale.backends): "local" here, "ray" one task per cell
    address: str | None = None  # the Ray cluster (backend "ray")
    ship_files: bool | None = None  # Ray: copy each cell's files back from its node (None: only from other nodes)
    cache: bool = True  # serve cells already rendered from the same recipe (run.cache); False: --no-cache


def run_sweep(plan: SweepPlan, request: SweepRequest = SweepRequest(), *,
              on_cell: Callable[[CellResult], None] | None = None) -> SweepResult:
    """Render every cell (backends.run_jobs), then write the contact sheet and sweep.json. A cell whose recipe
    was rendered before is served from the render cache (run.cache) unless `request.cache` is False (--no-cache):
    the local one, then the MLflow store the sweep tracks to (`tracker.cache_lookup()`, the team's shared cache)."""
    from .backends import Job, check_backend, run_jobs
    from .contact_sheet import save_png, sweep_contact_sheet

    backend, tracker = request.backend, request.tracker
    check_backend(backend, request.address)
    if request.sweep_dir is None:
        sd = allocate_sweep_dir(request.out, plan.batch_name)
    else:
        sd = Path(request.sweep_dir)
        sd.mkdir(parents=True, exist_ok=True)
    sd = sd.resolve()
    result = SweepResult(sweep_dir=sd, plan=plan, backend=backend)
    done: dict[int, CellResult] = {}
    by_name = {c.name: c for c in plan.cells}

    def snapshot(status: str) -> None:
        write_sweep_json(sd / SWEEP_JSON, sweep_document(
            plan, sd, done, status=status, backend=backend, parent_run_id=result.parent_run_id,
            tracking_uri=getattr(tracker, "tracking_uri", None)))

    if tracker is not None:
        tracker.start(plan, sd, backend)
        result.parent_run_id = tracker.parent_run_id
    snapshot("running")

    def finished(r: JobResult) -> None:
        cell = by_name[r.job.label]
        outputs = [{"path": o.path, "kind": o.kind, "item": o.item_index, "sha256": o.sha256, "bytes": o.bytes}
                   for o in r.result.outputs]
        cr = CellResult(cell=cell, run_dir=Path(r.job.run_dir), manifest_id=r.manifest_id, outputs=outputs,
                        sheet_image=sheet_output(r.result))
        if tracker is not None:
            cr.mlflow_run_id = tracker.log_cell(cell, r)
        done[cell.index] = cr
        if on_cell is not None:
            on_cell(cr)

    trust = replace(request.trust, access=None)
    shared = tracker.cache_lookup() if tracker is not None and request.cache else None
    jobs = [Job(spec_document=c.document, run_dir=str(sd / c.name), spec_dir=plan.spec_dir, label=c.name,
                seed_drawn=plan.seed_drawn, trust=trust, cache=request.cache,
                shared_caches=(shared,) if shared is not None else ())
            for c in plan.cells]
    try:
        run_jobs(jobs, backend, request.address, progress=request.progress, ship_files=request.ship_files,
                 on_result=finished)
        result.cells = [done[c.index] for c in plan.cells]
        images = {c.index: (done[c.index].run_dir / done[c.index].sheet_image if done[c.index].sheet_image else None)
                  for c in plan.cells}
        save_png(sweep_contact_sheet(plan, images), sd / CONTACT_SHEET)
        result.contact_sheet = sd / CONTACT_SHEET
        write_comparison_page(plan, sd, result.cells)
        snapshot("finished")
    except BaseException:
        snapshot("failed")
        if tracker is not None:
            tracker.finish(sd, status="FAILED")
        raise
    if tracker is not None:
        tracker.finish(sd, status="FINISHED")
        result.tracking_failure = tracker.failure
    return result


COMPARISON_PAGE = "comparison.html"


def write_comparison_page(plan: SweepPlan, sweep_dir: Path, cells: list[CellResult]) -> Path:
    """The sweep's comparison page (`comparison.html`): every cell with its values, any two compared."""
    from ..repro.compare_page import PageRun, page_data, render_page, write_page
    from ..repro.sources import load_source

    runs = [PageRun(c.cell.name, load_source(c.run_dir, arg=c.cell.name), dict(c.cell.labels)) for c in cells]
    keys = " × ".join(a.key for a in plan.axes)
    title = f"{plan.mode} sweep {plan.batch_name}/{sweep_dir.name}: {keys} ({len(cells)} cells)"
    return write_page(sweep_dir / COMPARISON_PAGE, render_page(page_data(title, runs, kind="sweep")))
