"""Scale commands: `disco-spec sweep` (added to the main app by `register`) and the `render --backend`
helper (`render_with_backend`), thin wrappers over disco_spec.scale.sweep / backends / sweep_tracking.

Exit codes as everywhere: 0 ok, 1 a render failed (or Ray is missing), 2 bad input (SpecError naming the
option or `--set KEY`, mapped by cli.main).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from .cache import NO_CACHE_HELP

if TYPE_CHECKING:
    from ..run.records import RenderResult
    from ..run.request import RenderRequest

BACKEND_HELP = "Where to render: local (this process) or ray (one Ray task per image / sweep cell, one GPU each)."
ADDRESS_HELP = "Ray cluster address, e.g. auto or ray://head:10001 (default: RAY_ADDRESS, else a local Ray instance)."


def _err(line: str) -> None:
    typer.echo(line, err=True)


def sweep(
    spec_file: Path = typer.Argument(..., metavar="SPEC"),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", metavar="KEY=V1,V2,...",
        help="A key to sweep and its values (repeatable), e.g. clip_guidance_scale=1500,5000,10000 or "
             "steps=100,250. Keys: DD field names or dotted paths; values: TOML (quote strings with commas).",
    ),
    zip_mode: bool = typer.Option(False, "--zip", help="Pair the i-th values of every key instead of the full grid."),
    sweep_file: Optional[Path] = typer.Option(
        None, "--sweep-file", metavar="FILE", help="A TOML/JSON sweep file: mode = 'grid' or 'zip', and a `set` table of KEY = list of values."
    ),
    out: Path = typer.Option(Path("images_out"), "--out", help="Output folder; the sweep gets {out}/{batch_name}/sweep-NNNN/."),
    seed: Optional[int] = typer.Option(None, help="Override run.set_seed (the same seed for every cell)."),
    backend: str = typer.Option("local", "--backend", help=BACKEND_HELP),
    address: Optional[str] = typer.Option(None, "--address", help=ADDRESS_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and list the cells; render nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print sweep.json (or, with --dry-run, the cells) as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not record the sweep in MLflow."),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri", metavar="URI", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default)."
    ),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment (default: the spec's name)."),
    no_cache: bool = typer.Option(False, "--no-cache", help=NO_CACHE_HELP),
) -> None:
    """Render a grid (or zip) of variants of a spec: a run folder and MLflow child run per cell, a contact sheet."""
    from ..scale.backends import check_backend
    from ..scale.sweep import SweepRequest, cells_table, plan_sweep, run_sweep

    check_backend(backend, address)
    plan = plan_sweep(spec_file, sets or [], mode="zip" if zip_mode else None, sweep_file=sweep_file, seed=seed)
    if dry_run:
        if as_json:
            doc = [{"name": c.name, "coords": list(c.coords), "overrides": c.overrides, "labels": c.labels}
                   for c in plan.cells]
            sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        else:
            typer.echo(cells_table(plan))
            _err(f"{len(plan.cells)} cell(s), {plan.mode} {'x'.join(map(str, plan.shape()))}; nothing rendered (--dry-run)")
        return

    from ..tracking.sweeps import make_sweep_tracker

    tracker = make_sweep_tracker(enabled=not no_track, tracking_uri=tracking_uri, experiment=experiment)

    def on_cell(cr: Any) -> None:
        mid = (cr.manifest_id or "")[:16]
        _err(f"{cr.cell.name} {cr.cell.caption()}: manifest {mid}… in {cr.run_dir}")

    request = SweepRequest(out=out, tracker=tracker, progress=not quiet, backend=backend, address=address,
                           cache=not no_cache)
    result = run_sweep(plan, request, on_cell=on_cell)
    if plan.seed_drawn:
        _err(f"set_seed = 'random_seed': drew seed {plan.base_document['run']['set_seed']} for every cell")
    if tracker is not None and tracker.parent_run_id and tracker.failure is None:
        from ..tracking.ui import where_to_look

        _err(f"MLflow parent run {tracker.parent_run_id} ({len(tracker.child_run_ids)} child runs) at {tracker.tracking_uri}")
        for line in where_to_look(tracker.tracking_uri, tracker.experiment_id, tracker.parent_run_id):
            _err(line)
    if as_json:
        sys.stdout.write(result.sweep_json.read_text(encoding="utf-8"))
    else:
        typer.echo(f"{len(result.cells)} cell(s) in {result.sweep_dir}; contact sheet {result.contact_sheet}")


def render_with_backend(request: RenderRequest | Any, out: Any = "images_out", **options: Any) -> RenderResult:
    """`render --backend ray`: what cli.render calls instead of render() when --backend is not local (a
    RenderRequest, or a spec with RenderRequest.of's keyword options)."""
    from ..scale.backends import check_backend, render_on_backend
    from ..errors import SpecError
    from ..run.request import RenderRequest

    if not isinstance(request, RenderRequest):
        request = RenderRequest.of(request, out, **options)

    check_backend(request.backend, request.address)
    if request.resume and request.backend != "local":
        raise SpecError("--resume", [("--resume", "continues a run on the local backend only (drop --backend ray)")])
    return render_on_backend(request)


def register(app: typer.Typer) -> None:
    """Add `sweep` to the `disco-spec` app."""
    app.command("sweep")(sweep)
