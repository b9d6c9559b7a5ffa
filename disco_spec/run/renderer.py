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

import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..plan.resolve import resolve_plan, resolve_sampling
from ..spec.load import load_spec, spec_to_document
from ..spec.models import JobSpec
from .folders import allocate_run_dir, refuse_finished_run, write_run_documents
from .inputs import InputStore
from .lock import lock_run_dir
from .prepare import prepare_spec
from .records import RenderResult
from .request import DEFAULT_OUT, PreparedRun, RenderRequest, select_items

if TYPE_CHECKING:
    from .cache import RenderCache
    from .records import Observer

__all__ = ["DEFAULT_OUT", "RenderRequest", "prepare_run", "render"]


def render(spec_or_request: RenderRequest | JobSpec | str | os.PathLike, out: str | os.PathLike = DEFAULT_OUT,
           **options: Any) -> RenderResult:
    """Render a request (or a spec / spec file path with RenderRequest.of's keyword options) and return what
    was written.

    `items` renders only those plan items (the plan's seeds make any one renderable alone; 2D/3D frames
    are computed from frame 0 on, since each starts from the previous one).
    `resume=True` continues the latest run of the batch under `out` (or `run_dir`) where it stopped, with
    byte-identical results; a changed spec, plan or weight file is refused (disco_spec.run.journal).
    Files the spec names are read only inside its repository and `allow_paths`, URLs only with
    `allow_network` (spec.access); `access` replaces that policy as a whole (rebuild passes its own).
    The run folder is locked for the render (run.lock): a second render into it is refused.
    A render the device cannot hold (run.resources' estimate against its free memory) is refused before any
    model loads, naming the setting to change; `force=True` starts it anyway.
    """
    if isinstance(spec_or_request, RenderRequest):
        if options or out != DEFAULT_OUT:
            raise TypeError("render(request) takes no other options: they are the request's fields")
        request = spec_or_request
    else:
        request = RenderRequest.of(spec_or_request, out, **options)
    _quiet_guided_diffusion()
    from ..engine.item import deterministic_kernels

    started_at = time.time()
    run = prepare_run(request)  # 1. spec, seed, run folder (locked), plan resolved once; nothing loaded yet
    observers: list[Observer] = []
    try:
        inputs = run.inputs  # 2. the files the spec names: allowed, hashed, pins checked, before any model loads
        if inputs is None:
            inputs = InputStore(request.trust.policy(run.spec_dir))
            inputs.prepare(run.plan)
        result = RenderResult(  # 3. what observers see and render() returns
            run_dir=run.run_dir, spec=run.spec, spec_document=run.document, plan=run.plan, seed_drawn=run.seed_drawn,
            inputs=inputs, started_at=started_at, spec_path=_spec_path(request), branch=run.branch)
        # 4. the spec and plan as rendered; a resume's writes wait for its last check (a refusal changes nothing)
        documents = partial(write_run_documents, run.run_dir, run.document, run.plan)
        documents() if run.resume is None else run.resume.pending_writes.insert(0, documents)
        observers = _observers(request)  # 5. the progress bar first, then the request's (trackers)
        with deterministic_kernels(run.spec.engine.deterministic):  # the manifest records these settings too
            cache = _render_cache(request, run, observers)
            _run_items(result, run, request, observers, cache)  # 6. models, then the item loop (cache first)
            from ..record.manifest import finalize_run

            finalize_run(result, spec_dir=run.spec_dir)  # 7. last: the manifest, its id stamped into every PNG
        if cache is not None:
            cache.store(result)  # 7b. what this render made, for the next render of the same recipe
    finally:
        run.lock.release()
    for o in observers:  # 8. observers see the final files (e.g. a tracker logs the manifest)
        o.on_end(result)
    return result


def prepare_run(request: RenderRequest) -> PreparedRun:
    """The request made concrete: continued (`resume`, DD's resume fields) or new, the run folder locked."""
    spec, spec_dir = request.spec, request.spec_dir
    if not request.resume and not isinstance(spec, JobSpec):
        spec, spec_dir = load_spec(spec), spec_dir or str(Path(spec).resolve().parent)
    if request.resume:
        from .resume import prepare_resume

        run = prepare_resume(request)
    elif spec.run.resume_run:  # DD's resume fields: re-render a run from a frame
        from .branch import prepare_branch

        run = prepare_branch(_with(request, spec=spec, spec_dir=spec_dir))
    else:
        return _prepare_new(request, spec, spec_dir)
    try:
        if not request.force:
            check_fits(run.spec)
    except BaseException:
        run.lock.release()
        raise
    return run


def _prepare_new(request: RenderRequest, spec: JobSpec, spec_dir: str | None) -> PreparedRun:
    """A new run: every check first (the spec, the memory estimate, the items, the files it names), then the
    run folder, so that a refusal leaves no folder behind. Video Input's frames are extracted into it and
    counted before the plan is resolved, as DD sets max_frames from the frame count
    (disco.py:1977 (AnimSettings cell)); its files are read after that."""
    ready = prepare_spec(spec, seed=request.seed)
    video_input = ready.spec.animation.animation_mode == "Video Input"
    plan = None if video_input else resolve_plan(ready.spec)
    if not request.force:
        check_fits(ready.spec)
    selected = None if plan is None else select_items(plan, request.items)
    inputs = None
    if plan is not None:
        inputs = InputStore(request.trust.policy(spec_dir or ready.spec_dir))
        inputs.prepare(plan)
    if request.run_dir is None:
        rd = allocate_run_dir(request.out, ready.spec.run.batch_name)
    else:
        rd = Path(request.run_dir)
        refuse_finished_run(rd)  # a finished run is never rendered over without --resume (exit 2)
        rd.mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(rd)
    try:
        if video_input:
            from .video_input import prepare_video_input

            ready.spec = prepare_video_input(ready.spec, rd, request.trust.policy(spec_dir or ready.spec_dir))
            ready.document = spec_to_document(ready.spec)
            plan = resolve_plan(ready.spec)
            selected = select_items(plan, request.items)
    except BaseException:
        lock.release()
        raise
    assert plan is not None and selected is not None
    return PreparedRun(spec=ready.spec, document=ready.document, plan=plan, selected=selected,
                       spec_dir=spec_dir or ready.spec_dir, seed_drawn=ready.seed_drawn, run_dir=rd, lock=lock,
                       inputs=inputs)


def check_fits(spec: JobSpec) -> None:
    """Refuse, before any model loads or file is written, a render the device cannot hold (run.resources)."""
    from ..engine.item import select_device
    from .resources import available_bytes, check_fits as fits, estimate_resources

    device = select_device(spec.engine.device).type
    fits(estimate_resources(spec, resolve_sampling(spec), device), available_bytes(device))


def _render_cache(request: RenderRequest, run: PreparedRun, observers: list[Observer]) -> RenderCache | None:
    """The render cache for this render (run.cache), None where it must not be used: --no-cache (rebuild,
    regress, doctor), a resumed or branched run, a dirty working tree; a seed drawn now is never served."""
    from .cache import for_render

    return for_render(enabled=request.cache, seed_drawn=run.seed_drawn,
                      continued=run.resume is not None or run.branch is not None, observers=observers)


def _run_items(result: RenderResult, run: PreparedRun, request: RenderRequest, observers: list[Observer],
               cache: RenderCache | None = None) -> None:
    from . import loop  # torch is imported only when rendering

    start = time.perf_counter()
    try:
        loop.run_plan(result, run, request, observers=observers, cache=cache)
    except BaseException as exc:
        for o in observers:
            if hasattr(o, "on_error"):  # e.g. close a tracking run as FAILED / KILLED
                o.on_error(result, exc)
        raise
    result.seconds = time.perf_counter() - start
    result.ended_at = time.time()


def _observers(request: RenderRequest) -> list[Observer]:
    observers = list(request.observers)
    if request.progress:
        from .progress import ProgressObserver

        observers.insert(0, ProgressObserver())
    return observers


def _spec_path(request: RenderRequest) -> str | None:
    return str(request.spec) if isinstance(request.spec, (str, os.PathLike)) else None


def _with(request: RenderRequest, **fields: Any) -> RenderRequest:
    from dataclasses import replace

    return replace(request, **fields)


def _quiet_guided_diffusion() -> None:
    import warnings

    # guided-diffusion uses a deprecated torch.cuda.amp decorator at import time; not actionable for users
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"guided_diffusion(\..*)?")
