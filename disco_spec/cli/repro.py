"""Reproducibility commands: inspect, rebuild, diff, verify, regress (added to the main app by `register`).

Thin wrappers over disco_spec.record.pngmeta / rebuild / compare / manifest / regress. Exit codes: 0 same/ok,
1 differs/failed, 2 bad input (SpecError, mapped by cli.main).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def inspect(
    image: Path = typer.Argument(..., metavar="IMAGE.png|VIDEO.mp4", help="A PNG or an mp4 written by disco-spec."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Show what a PNG carries (spec, manifest id, item, seed, frame, models, environment, the A1111 parameters)
    or an mp4 (spec, manifest id)."""
    from ..record import mp4meta
    from ..record.pngmeta import format_info, png_info

    if mp4meta.is_mp4(image):
        info = mp4meta.video_info(image)
        _print_json(info) if as_json else typer.echo(mp4meta.format_video_info(info))
        return
    info = png_info(image)
    if as_json:
        _print_json(info)
    else:
        typer.echo(format_info(info))


def rebuild(
    source: str = typer.Argument(..., metavar="SOURCE", help="manifest.json, a run folder, a PNG, or an MLflow run id."),
    item: Optional[int] = typer.Option(None, "--item", help="Rebuild only this plan item (image/frame)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Render into this folder (default: a temporary one)."),
    spec_dir: Optional[Path] = typer.Option(
        None, "--spec-dir", help="Folder relative paths in the spec resolve against (and may read from)."
    ),
    allow_path: Optional[list[Path]] = typer.Option(
        None, "--allow-path", metavar="DIR",
        help="Also read files the spec names from DIR (repeatable; also $DISCO_SPEC_ALLOW_PATHS). By default only "
             "the source's own folder (its git work tree) and --spec-dir.",
    ),
    allow_network: bool = typer.Option(False, "--allow-network", help="Fetch the URLs the spec names (image prompts, init images)."),
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Never download weights."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri", metavar="URI",
        help="MLflow store for a run-id SOURCE (default: $MLFLOW_TRACKING_URI, else MLflow's default).",
    ),
) -> None:
    """Render a recorded run again and check every output is identical. Exit 0 identical, 1 not."""
    from ..repro.rebuild import rebuild as do_rebuild
    from ..tracking.tracker import register_run_resolver

    register_run_resolver(tracking_uri)

    import os

    from ..spec.access import allow_paths_from_env

    report = do_rebuild(source, out=out, item=item, fetch=not no_fetch, spec_dir=spec_dir, progress=not quiet,
                        allow_paths=[*(allow_path or []), *allow_paths_from_env(os.environ)], allow_network=allow_network)
    if as_json:
        _print_json(report.to_dict())
    else:
        typer.echo(report.to_text())
    raise typer.Exit(0 if report.ok else 1)


def diff(
    a: str = typer.Argument(
        ..., metavar="A", help="A spec, manifest, run folder, PNG, MLflow run id, or a render's --out folder."
    ),
    b: str = typer.Argument(..., metavar="B", help="Another one."),
    as_json: bool = typer.Option(False, "--json", help="Print the differences as JSON."),
    diff_dir: Optional[Path] = typer.Option(None, "--diff-dir", help="Write a difference image per differing output here."),
    html_file: Optional[Path] = typer.Option(
        None, "--html", metavar="FILE",
        help="Also write a comparison page: one self-contained HTML file (images side by side, an A/B wipe, a "
             "difference heatmap, PSNR, the settings that differ). A and B must be runs, manifests, PNGs or specs.",
    ),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri", metavar="URI",
        help="MLflow store for a run-id SOURCE (default: $MLFLOW_TRACKING_URI, else MLflow's default).",
    ),
) -> None:
    """What differs between A and B: parameters (per frame), models, environment, outputs. Exit 0 same, 1 differ.

    With --out folders, their run folders are paired by relative path (batch/run-NNNN) and each pair is
    reported; runs only one folder has make them differ. A folder and one other source: each run with it.
    """
    from ..repro.folder_diff import diff_any as do_diff, is_out_folder
    from ..tracking.tracker import register_run_resolver

    register_run_resolver(tracking_uri)

    if html_file is not None and (is_out_folder(a) or is_out_folder(b)):
        from ..errors import SpecError

        why = "compares two runs: give run folders (batch/run-NNNN), manifests, PNGs or specs, not --out folders"
        raise SpecError(f"--html: {why}", [("--html", why)])
    report = do_diff(a, b, diff_dir=diff_dir)
    if html_file is not None:
        from ..repro.compare_page import diff_page, write_page

        written = write_page(html_file, diff_page(a, b))
        typer.echo(f"comparison page: {written} ({written.stat().st_size} bytes)", err=True)
    if as_json:
        _print_json(report.to_dict())
    else:
        typer.echo(report.to_text())
    raise typer.Exit(0 if report.same else 1)


def verify(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN_DIR", help="A run folder (with manifest.json), or a render's --out folder (every run under it)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check the files of a run (or of every run under an --out folder) against its manifest; name every changed
    or missing one. Exit 0 ok, 1 not."""
    from ..repro.verify import verify_folder

    report = verify_folder(run_dir)
    if as_json:
        _print_json(report.to_dict())
    else:
        typer.echo(report.to_text())
    raise typer.Exit(0 if report.ok else 1)


def regress(
    specs: list[Path] = typer.Argument(..., metavar="SPECS...", help="Spec files to render and compare."),
    golden: Path = typer.Option(..., "--golden", help="Folder of golden manifests (<spec stem>.manifest.json)."),
    update: bool = typer.Option(False, "--update", help="Write the golden files from this render instead of comparing."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report here."),
    psnr_threshold: float = typer.Option(60.0, "--psnr-threshold", metavar="DB",
                                         help="Off-fingerprint, images must be at least this close (PSNR, dB; one "
                                              "grey level everywhere is 48.13)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Keep the renders (and difference images) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(True, "--quiet/--progress", help="Progress bars off (default) or on."),
) -> None:
    """Render specs and compare with golden manifests: byte-exact in the same environment, else within PSNR."""
    from ..repro.regress import regress as do_regress

    report = do_regress(specs, golden, update=update, junit=junit, psnr_threshold=psnr_threshold, out=out,
                        progress=not quiet)
    if as_json:
        _print_json(report.to_dict())
    else:
        typer.echo(report.to_text())
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    """Add inspect, rebuild, diff, verify and regress to the `disco-spec` app."""
    app.command("inspect")(inspect)
    app.command("rebuild")(rebuild)
    app.command("diff")(diff)
    app.command("verify")(verify)
    app.command("regress")(regress)
