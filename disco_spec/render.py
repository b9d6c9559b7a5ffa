"""render(spec) -> RenderResult: spec → plan → engine → files, with observers for progress and tracking.

The engine itself (disco_spec.engine) reads plan items and tensors only; this module owns the run
folder, file names and the order of work. Observers (progress bars, previews, trackers, manifest
writers) receive plain events and decide what to keep; nothing here imports mlflow.

Run folder layout under `out` (default `images_out`):

    {out}/{batch_name}/run-{NNNN}/      a new number per render (reserved at start with mkdir)
        spec.json                       the spec as rendered (canonical, with the concrete seed)
        plan.json                       the resolved plan
        {batch_name}_{i:04d}.png        still image i / animation frame i
        partials/{batch_name}_{i:04d}-{j:03d}.png   intermediate saves (loop iteration j)
        progress.png                    the latest preview (every display_rate steps)
        manifest.json                   written last: what was rendered, how, and every output's hash
        run_state.json, frames.jsonl    resume journal: hashes at start, one line per finished item
        state/                          turbo loop state per frame (animation.resume)
        {batch_name}_{f:04d}_l.png / _r.png   VR eye views (3D + vr_mode)
        video_frames/, inputs.json      Video Input: extracted frames, the input video's SHA-256
        {batch_name}.mp4, {batch_name}_vr*.mp4  videos (video.skip_video_for_run_all = false)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from . import __version__
from .atomic import atomic_write_text
from .errors import SpecError
from .plan import Plan, PlanItem, resolve_plan, with_concrete_seed
from .spec.load import load_spec, spec_to_document
from .spec.models import JobSpec

DEFAULT_OUT = "images_out"


@dataclass(frozen=True)
class OutputRecord:
    path: str  # relative to the run folder, with '/' separators
    sha256: str
    bytes: int
    kind: str  # "image" | "partial" | "video"
    item_index: int
    batch_index: int
    frame: int
    seed: int


@dataclass
class StepEvent:
    item: PlanItem
    j: int  # loop iteration, 0-based from the first non-skipped step
    k: int  # respaced step index (counts down to 0)
    total: int  # iterations for this item
    stats: dict[str, float]
    preview: Any | None = None  # PIL image on display steps


@dataclass
class RenderResult:
    run_dir: Path
    spec: JobSpec
    spec_document: dict[str, Any]
    plan: Plan
    outputs: list[OutputRecord] = field(default_factory=list)
    weights: list[Any] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0
    seed_drawn: bool = False
    manifest: dict[str, Any] | None = None  # set by disco_spec.manifest.finalize_run


class Observer(Protocol):
    def on_start(self, result: RenderResult) -> None: ...
    def on_step(self, event: StepEvent) -> None: ...
    def on_output(self, result: RenderResult, record: OutputRecord) -> None: ...
    def on_end(self, result: RenderResult) -> None: ...


class BaseObserver:
    """An observer that ignores every event; subclass and override what you need."""

    def on_start(self, result: RenderResult) -> None:
        pass

    def on_step(self, event: StepEvent) -> None:
        pass

    def on_output(self, result: RenderResult, record: OutputRecord) -> None:
        pass

    def on_end(self, result: RenderResult) -> None:
        pass


def canonical_json(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def prepare(
    spec_or_path: JobSpec | str | os.PathLike, *, seed: int | None = None
) -> tuple[JobSpec, dict[str, Any], Plan, str | None, bool]:
    """Load (if a path), fix the seed, and resolve the plan."""
    spec_dir = None
    if isinstance(spec_or_path, JobSpec):
        spec = spec_or_path
    else:
        spec = load_spec(spec_or_path)
        spec_dir = str(Path(spec_or_path).resolve().parent)
    if seed is not None:
        if not 0 <= seed < 2**32:
            raise SpecError("--seed", [("--seed", f"must be between 0 and 4294967295 (got {seed})")])
        spec = spec.model_copy(update={"run": spec.run.model_copy(update={"set_seed": seed})})
    spec, drawn = with_concrete_seed(spec)
    from .spec.prompt_tokens import check_prompt_lengths

    check_prompt_lengths(spec)  # before any model loads
    return spec, spec_to_document(spec), resolve_plan(spec), spec_dir, drawn


def render(
    spec_or_path: JobSpec | str | os.PathLike,
    out: str | os.PathLike = DEFAULT_OUT,
    *,
    run_dir: str | os.PathLike | None = None,
    seed: int | None = None,
    items: Sequence[int] | None = None,
    observers: Iterable[Observer] = (),
    progress: bool = True,
    spec_dir: str | None = None,
    fetch: bool = True,
    resume: bool = False,
) -> RenderResult:
    """Render a spec (or a file path) and return what was written.

    `items` renders only those plan items (the plan's seeds make any one renderable alone; 2D/3D frames
    are computed from frame 0 on, since each starts from the previous one).
    `resume=True` continues the latest run of the batch under `out` (or `run_dir`) where it stopped, with
    byte-identical results; a changed spec, plan or weight file is refused (disco_spec.animation.resume).
    """
    import warnings

    # guided-diffusion uses a deprecated torch.cuda.amp decorator at import time; not actionable for users
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"guided_diffusion(\..*)?")
    from .engine import runner  # torch is imported only when rendering

    resume_info = None
    if resume:
        from .animation.resume import prepare_resume

        spec, doc, plan, spec_dir, drawn, rd, resume_info = prepare_resume(
            spec_or_path, out, run_dir=run_dir, seed=seed, items=items, spec_dir=spec_dir
        )
        items = resume_info.items
    else:
        spec, doc, plan, found_dir, drawn = prepare(spec_or_path, seed=seed)
        spec_dir = spec_dir or found_dir

    def select(plan: Plan) -> list[int]:
        chosen = list(range(plan.n_items)) if items is None else sorted(set(items))
        for i in chosen:
            if not 0 <= i < plan.n_items:
                raise SpecError("items", [("items", f"item {i} does not exist (the plan has {plan.n_items})")])
        return chosen

    selected = select(plan)
    if resume_info is None:
        if run_dir is None:
            rd = allocate_run_dir(out, plan.batch_name)
        else:
            rd = Path(run_dir)
            rd.mkdir(parents=True, exist_ok=True)
        if plan.animation_mode == "Video Input":  # extract into the run folder; max_frames = frame count (§7.4)
            from .animation.frames import prepare_video_input

            spec, plan = prepare_video_input(spec, rd, spec_dir)
            doc = spec_to_document(spec)
            selected = select(plan)
    result = RenderResult(run_dir=rd, spec=spec, spec_document=doc, plan=plan, seed_drawn=drawn)
    write_text_atomic(rd / "spec.json", json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    write_text_atomic(rd / "plan.json", plan.to_json() + "\n")

    observers = list(observers)
    if progress:
        from .progress import ProgressObserver

        observers.insert(0, ProgressObserver())
    start = time.perf_counter()
    try:
        runner.run_plan(result, selected, observers=observers, spec_dir=spec_dir, fetch=fetch, resume=resume_info)
    except BaseException as exc:
        for o in observers:
            if hasattr(o, "on_error"):  # e.g. close a tracking run as FAILED / KILLED
                o.on_error(result, exc)
        raise
    result.seconds = time.perf_counter() - start
    from .manifest import finalize_run

    finalize_run(result, spec_dir=spec_dir)  # last: the manifest, and its id stamped into every PNG
    for o in observers:
        o.on_end(result)
    return result


def png_metadata(result: RenderResult, item: PlanItem) -> dict[str, str]:
    """Text chunks every final PNG carries: enough to rebuild it from the PNG alone."""
    return {
        "disco-spec:version": __version__,
        "disco-spec:spec": canonical_json(result.spec_document),
        "disco-spec:plan-sha256": result.plan.sha256(),
        "disco-spec:item": str(item.index),
        "disco-spec:batch-index": str(item.batch_index),
        "disco-spec:frame": str(item.frame),
        "disco-spec:seed": str(item.seed),
    }
