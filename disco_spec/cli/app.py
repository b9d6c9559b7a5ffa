"""The `disco-spec` command line: a thin typer layer over library functions.

Exit codes: 0 ok; 1 ran and the answer is no (a difference, a failed render); 2 your input is wrong;
3 an internal error (a bug: please report it). No command prints a Python traceback for bad input.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from ..errors import DiscoSpecError, Interrupted, RenderError, SpecError, Terminated
from .cache import NO_CACHE_HELP

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Declarative, reproducible Disco Diffusion renders.")
models_app = typer.Typer(no_args_is_help=True, help="List, fetch, verify and generate model weights.")
app.add_typer(models_app, name="models")

REPORT_URL = "https://github.com/disco-spec/disco-spec/issues"


def _err(line: str) -> None:
    typer.echo(line, err=True)


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Spec files (.toml or .json).")) -> None:
    """Check specs; print one line per problem. Exit 0 when all are valid, 2 otherwise."""
    from ..models.spec_check import spec_file_problems

    bad = 0
    for f in files:
        problems = spec_file_problems(f)  # every stage: fields, prompt lengths, model names
        if problems:
            bad += 1
            for loc, msg in problems:
                # syntax locations already carry FILE:LINE:COL
                _err(f"{loc}: {msg}" if loc.startswith(str(f)) else f"{f}: {loc}: {msg}")
        else:
            typer.echo(f"{f}: ok")
    raise typer.Exit(2 if bad else 0)


@app.command()
def schema() -> None:
    """Print the JSON Schema of spec version 1."""
    from ..spec.schema import schema_text

    sys.stdout.write(schema_text())


@app.command()
def plan(
    spec_file: Path = typer.Argument(..., metavar="SPEC"),
    as_json: bool = typer.Option(False, "--json", help="Print the whole plan as JSON."),
    seed: Optional[int] = typer.Option(None, help="Use this base seed (needed to show seeds of a 'random_seed' spec)."),
    frames: Optional[str] = typer.Option(None, help="Only these items, e.g. '0:20' (table only)."),
    resources: bool = typer.Option(
        False, "--resources", help="Print the expected peak memory (GPU and CPU) and time per step instead."
    ),
) -> None:
    """Show exactly what each image/frame will use."""
    from ..plan.table import plan_for_display, plan_table

    p, seed_note = plan_for_display(spec_file, seed)
    if resources:
        from ..run.resources import estimate_resources
        from ..spec.load import load_spec

        spec = load_spec(spec_file)
        for device in ("cuda", "cpu"):
            typer.echo(estimate_resources(spec, p, device).text())
        return
    if as_json:
        sys.stdout.write(p.to_json() + "\n")
        return
    if seed_note:
        _err(seed_note)
    for w in p.warnings:
        _err(f"warning: {w}")
    typer.echo(plan_table(p, frames))


@app.command("import-dd")
def import_dd(
    report: Path = typer.Argument(..., metavar="SETTINGS.txt", help="A DD settings report (JSON)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the spec here (default: print it)."),
    animation_mode: Optional[str] = typer.Option(
        None, help="The run's animation mode, which reports do not record: None, 2D, 3D or 'Video Input'."
    ),
    batch_name: Optional[str] = typer.Option(None, "--batch-name", help="The spec's batch_name (default: the file's "
                                             "batch_name, else its file name)."),
    dd_version: Optional[str] = typer.Option(None, "--dd-version", help="The DD version that wrote the file (5.0 ... "
                                             "5.7), where its keys cannot tell (5.0 rotations were radians)."),
) -> None:
    """Convert a Disco Diffusion settings report into a spec (values the report lacks are listed as assumed).

    Also reads DD notebook variables, progrockdiffusion settings.json and discoart YAML/JSON configs."""
    from ..spec.dd_import import import_dd_report, report_to_toml

    if animation_mode is not None and animation_mode not in ("None", "2D", "3D", "Video Input"):
        raise SpecError("--animation-mode", [("--animation-mode", f"must be None, 2D, 3D or 'Video Input' (got {animation_mode!r})")])
    try:
        result = import_dd_report(report, animation_mode=animation_mode, batch_name=batch_name, dd_version=dd_version)
    except SpecError as exc:
        for w in getattr(exc, "warnings", []):  # what was read before the problem helps find it
            _err(f"warning: {w}")
        raise
    text = report_to_toml(result)
    _err(f"{report}: detected Disco Diffusion {result.detected_version}")
    for w in result.warnings:
        _err(f"warning: {w}")
    if result.assumed:
        _err(f"assumed (not in the report): {', '.join(result.assumed)}")
    if output is None:
        sys.stdout.write(text)
    else:
        from ..run.folders import write_text_atomic

        write_text_atomic(output, text)
        _err(f"wrote {output}")


@app.command()
def render(
    spec_file: Path = typer.Argument(..., metavar="SPEC|IMAGE.png",
                                     help="A spec file, or a PNG disco-spec wrote: render the spec, seed and item it carries."),
    out: Path = typer.Option(Path("images_out"), "--out", help="Output folder; each render gets {out}/{batch_name}/run-NNNN/."),
    seed: Optional[int] = typer.Option(None, help="Override run.set_seed."),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", metavar="KEY=VALUE",
        help="Override one setting for this render (repeatable), e.g. steps=100 or clip_guidance_scale=1500; "
             "keys and values as in `sweep --set`, one value each. Recorded in spec.json and the manifest.",
    ),
    item: Optional[list[int]] = typer.Option(None, "--item", help="Render only these plan items (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run (the latest of the batch, or --run-dir) where it stopped."
    ),
    run_dir: Optional[Path] = typer.Option(
        None, "--run-dir", help="Render into (or with --resume, continue) this run folder (locked while rendering)."
    ),
    allow_path: Optional[list[Path]] = typer.Option(
        None, "--allow-path", metavar="DIR",
        help="Also read files the spec names (init images, image prompts, videos, model files) from DIR (repeatable; "
             "also $DISCO_SPEC_ALLOW_PATHS). By default only the spec's git work tree (else its folder).",
    ),
    allow_network: bool = typer.Option(
        False, "--allow-network", help="Fetch the URLs the spec names (image prompts, init images); off by default."
    ),
    force: bool = typer.Option(
        False, "--force", help="Start even when the memory estimate (plan --resources) exceeds the device's free memory."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help=NO_CACHE_HELP),
    no_track: bool = typer.Option(False, "--no-track", help="Do not record the render in MLflow."),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri", metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default, sqlite:///mlflow.db here).",
    ),
    experiment: Optional[str] = typer.Option(
        None, "--experiment", help="MLflow experiment (default: the spec's `name`, else its batch_name)."
    ),
    backend: str = typer.Option(
        "local", "--backend", help="Where to render: local (this process) or ray (one Ray task per image, one GPU each)."
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="Ray cluster address, e.g. auto or ray://head:10001 (default: RAY_ADDRESS, else a local Ray instance)."
    ),
) -> None:
    """Render a spec, or remix a PNG: its spec, seed and item, with --set overrides."""
    import os

    from ..run.renderer import render as render_spec
    from ..run.request import RenderRequest
    from ..scale.remix import is_png_source
    from ..spec.access import allow_paths_from_env
    from ..tracking.tracker import make_tracker

    spec: Any = spec_file
    spec_dir = access = base_document = None
    allowed = [*(str(p) for p in allow_path or []), *allow_paths_from_env(os.environ)]
    if is_png_source(spec_file):  # a remix: the spec the PNG carries, read as rebuild reads it (scale.remix)
        if resume or backend != "local" or address:
            raise SpecError("IMAGE.png", [("IMAGE.png", "a PNG renders as a new run on the local backend "
                                                        "(no --resume, no --backend ray)")])
        from ..scale.remix import remix_from_png

        remix = remix_from_png(spec_file, sets or [], items=item, allow_paths=allowed, allow_network=allow_network)
        spec, spec_dir, access, item, base_document = remix.spec, remix.spec_dir, remix.access, remix.items, remix.base_document
    elif sets:  # checked before tracking starts: a bad --set is exit 2 with nothing recorded
        from ..scale.overrides import spec_with_overrides

        spec, spec_dir = spec_with_overrides(spec_file, sets), str(spec_file.resolve().parent)
    # the file is the run's Source and what its name says it differs from, also when --set made a new spec
    tracker = make_tracker(enabled=not no_track, tracking_uri=tracking_uri, experiment=experiment, spec_path=spec_file,
                           base_document=base_document)
    folder = RunFolderNoted()
    request = RenderRequest.of(
        spec, out, seed=seed, items=item, run_dir=run_dir, resume=resume, spec_dir=spec_dir, allow_paths=allowed,
        allow_network=allow_network, observers=[tracker, folder] if tracker is not None else [folder],
        progress=not quiet, backend=backend, address=address, force=force, access=access,
        cache=not no_cache)
    with render_faults(spec_file, folder):
        if backend != "local" or address:
            from .scale import render_with_backend

            result = render_with_backend(request)
        else:
            result = render_spec(request)
    if tracker is not None and tracker.run_id is not None and tracker.failure is None:
        from ..tracking.ui import where_to_look

        _err(f"MLflow run {tracker.run_id} in {tracker.tracking_uri}")
        for line in where_to_look(tracker.tracking_uri, tracker.experiment_id, tracker.run_id):
            _err(line)
    if result.seed_drawn and not resume:
        _err(f"set_seed = 'random_seed': drew seed {result.plan.base_seed} (recorded in spec.json and every PNG)")
    for w in result.plan.warnings:
        _err(f"warning: {w}")
    images = [o for o in result.outputs if o.kind == "image"]
    typer.echo(f"{len(images)} image(s) in {result.run_dir} ({result.seconds:.1f} s on {result.device})")
    if result.cached_from:  # say so: the images were not rendered here (docs/render-cache.md; --no-cache)
        _err(f"{len(result.cached_from)} item(s) served from the render cache, verified against their manifest "
             "(--no-cache renders them)")


@models_app.command("list")
def models_list() -> None:
    """Every model the registry knows: name, role, size, cached or not."""
    from .models import list_table

    typer.echo(list_table())


@models_app.command("fetch")
def models_fetch(names: list[str] = typer.Argument(..., help="Registry names, e.g. ViTB32 secondary_model_imagenet_2.")) -> None:
    """Download (or generate, for tiny models) and verify weights into the cache."""
    from .models import fetch

    for line in fetch(names):
        typer.echo(line)


@models_app.command("verify")
def models_verify(names: Optional[list[str]] = typer.Argument(None, help="Names to check (default: every cached one).")) -> None:
    """Check cached weight files against their SHA-256. Exit 1 if any is missing or wrong."""
    from .models import verify

    ok, lines = verify(names or [])
    for line in lines:
        typer.echo(line)
    raise typer.Exit(0 if ok else 1)


@models_app.command("make-tiny")
def models_make_tiny(dest: Optional[Path] = typer.Option(None, help="Folder (default: the cache).")) -> None:
    """Generate the tiny random-weight checkpoints (deterministic bytes, pinned SHA-256)."""
    from ..models.tiny import make_tiny

    for w in make_tiny(dest):
        typer.echo(f"{w.name}  {w.sha256}  {w.size} bytes  {w.path}")


# A write that failed for a reason outside disco-spec: the disk, the folder's permissions, the file system.
WRITE_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


class RunFolderNoted:
    """An observer that only remembers the run folder, so a fault or an interrupt can name it."""

    run_dir: Path | None = None

    def on_start(self, result: Any) -> None:
        self.run_dir = Path(result.run_dir)

    def on_step(self, event: Any) -> None:
        pass

    def on_output(self, result: Any, record: Any) -> None:
        pass

    def on_end(self, result: Any) -> None:
        pass


@contextlib.contextmanager
def render_faults(spec_file: Path, folder: RunFolderNoted) -> Iterator[None]:
    """A render stopped from outside (Ctrl-C, SIGTERM) or by the machine (full disk, read-only folder, a
    permission): exit 130/143 or 1, saying what was kept and how to continue, never 'a bug'."""
    def resume_hint() -> str:
        run = f" --run-dir {folder.run_dir}" if folder.run_dir else ""
        kept = f"the images finished so far are kept in {folder.run_dir}" if folder.run_dir else "nothing was rendered"
        return f"{kept}; `disco-spec render {spec_file} --resume{run}` continues"

    try:
        yield
    except Terminated:
        raise Interrupted(f"terminated (SIGTERM); {resume_hint()}", exit_code=143) from None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {resume_hint()}", exit_code=130) from None
    except OSError as exc:
        if exc.errno not in WRITE_FAULTS:
            raise
        path = exc.filename or folder.run_dir or "the output folder"
        raise RenderError(f"cannot write {path}: {exc.strerror or exc} ({errno.errorcode.get(exc.errno, exc.errno)}); "
                          f"{resume_hint()} once that is fixed") from None


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main() -> None:
    """Console entry point: maps errors to exit codes and never shows a traceback for user errors."""
    with contextlib.suppress(ValueError, AttributeError):  # (not the main thread; no SIGTERM on this platform)
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = app(standalone_mode=False)  # click returns the exit code instead of raising in this mode
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except SpecError as exc:
        for loc, msg in exc.problems or [("", str(exc))]:
            _err(f"{loc}: {msg}" if loc else f"error: {msg}")
        sys.exit(2)
    except DiscoSpecError as exc:
        _err(f"error: {exc}")
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top in RENDER_MODULES:
            _err(f"error: this command needs the rendering dependencies (missing module {top!r}): "
                 "pip install 'disco-spec[render]'")
            sys.exit(1)
        if top == "ray":
            _err("error: the Ray backend needs Ray: pip install 'disco-spec[ray]'")
            sys.exit(1)
        _report_bug(exc)
    except Terminated:
        _err("terminated")
        sys.exit(143)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except OSError as exc:
        if exc.errno not in WRITE_FAULTS:
            _report_bug(exc)
        _err(f"error: {exc.filename or 'a file'}: {exc.strerror or exc}")
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: say it is a bug, where to report
        # Usage errors from the CLI framework (click, or the copy typer may vendor) know how to show themselves.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            _err("aborted")
            sys.exit(130)
        _report_bug(exc)


RENDER_MODULES = {
    "torch", "torchvision", "open_clip", "guided_diffusion", "lpips", "resize_right", "cv2", "imageio_ffmpeg",
    "mlflow", "PIL", "numpy", "tqdm", "timm", "safetensors",
}


def _report_bug(exc: BaseException) -> None:
    _err(f"internal error (a bug in disco-spec): {type(exc).__name__}: {exc}")
    _err(f"Please report it at {REPORT_URL} with the command line and the spec. "
         "Set DISCO_SPEC_DEBUG=1 to see the traceback.")
    if _debug():
        raise exc
    sys.exit(3)


def _debug() -> bool:
    import os

    return os.environ.get("DISCO_SPEC_DEBUG") == "1"


from . import repro as cli_repro  # noqa: E402 - registers inspect, rebuild, diff, verify, regress

cli_repro.register(app)

from . import scale as cli_scale  # noqa: E402 - registers sweep

cli_scale.register(app)

from . import new as cli_new  # noqa: E402 - registers new

cli_new.register(app)

from . import ui as cli_ui  # noqa: E402 - registers ui

cli_ui.register(app)

from . import doctor as cli_doctor  # noqa: E402 - registers doctor

cli_doctor.register(app)

if __name__ == "__main__":  # pragma: no cover
    main()

from . import cache as cli_cache  # noqa: E402 - registers cache ls, prune, verify

cli_cache.register(app)
