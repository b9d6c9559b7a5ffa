"""`disco-spec doctor`: check a machine renders, and renders reproducibly (added to the app by `register`).

A thin wrapper over disco_spec.repro.doctor.run_doctor. Exit codes: 0 the two renders are identical,
1 they differ or one failed, 2 bad input (e.g. --device cuda without CUDA; SpecError, mapped by cli.main).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def doctor(
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cuda or cpu."),
    steps: int = typer.Option(
        6, "--steps", min=0,  # = repro.doctor.DEFAULT_STEPS (a test checks) help="diffusion.steps of the two renders (0: the spec's own; the smoke spec has 12)."
    ),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Render this spec instead of specs/smoke.toml."),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the two renders here (run-1/, run-2/)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Print the device, versions, determinism settings and model cache; render the smoke spec twice and
    compare. Exit 0 only when both renders are identical."""
    from ..repro.doctor import run_doctor

    report = run_doctor(device, steps=steps or None, spec_path=spec, workdir=keep)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
    else:
        typer.echo(report.to_text())
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    """Add `doctor` to the `disco-spec` app."""
    app.command("doctor")(doctor)
