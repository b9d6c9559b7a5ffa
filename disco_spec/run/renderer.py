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
from typing import Iterable, Sequence

from ..errors import SpecError
from ..plan.resolve import Plan
from ..spec.load import load_spec, spec_to_document
from ..spec.models import JobSpec
from ..spec.access import InputPolicy
from .folders import allocate_run_dir, refuse_finished_run, write_run_documents
from .inputs import InputStore
from .lock import lock_run_dir
from .prepare import prepare
from .records import Observer, RenderResult

DEFAULT_OUT = "images_out"


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
    allow_paths: Iterable[str | os.PathLike] = (),
    allow_network: bool = False,
    access: InputPolicy | None = None,
    force: bool = False,
) -> RenderResult:
    """Render a spec (or a file path) and return what was written.

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
    import warnings

    # guided-diffusion uses a deprecated torch.cuda.amp decorator at import time; not actionable for users
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"guided_diffusion(\..*)?")
    from ..engine.item import deterministic_kernels
    from . import loop as runner  # torch is imported only when rendering

    allow_paths = tuple(allow_paths)  # read twice on resume

    def policy(found: str | None) -> InputPolicy:
        return access or InputPolicy.for_spec(found, allow_paths=allow_paths, allow_network=allow_network)

    started_at = time.time()
    spec_path = str(spec_or_path) if isinstance(spec_or_path, (str, os.PathLike)) else None
    resume_info = branch = None
    lock = None
    if not resume and not isinstance(spec_or_path, JobSpec):
        found_dir = str(Path(spec_or_path).resolve().parent)
        spec_or_path, spec_dir = load_spec(spec_or_path), spec_dir or found_dir
    try:
        if not resume and spec_or_path.run.resume_run:  # DD's resume fields: re-render a run from a frame
            from .branch import prepare_branch

            spec, doc, plan, spec_dir, drawn, rd, resume_info, branch = prepare_branch(
                spec_or_path, out, seed=seed, spec_dir=spec_dir, access=policy(spec_dir)
            )
            items = None
            lock = resume_info.lock
        elif resume:
            from .resume import prepare_resume

            spec, doc, plan, spec_dir, drawn, rd, resume_info = prepare_resume(
                spec_or_path, out, run_dir=run_dir, seed=seed, items=items, spec_dir=spec_dir, access=access,
                allow_paths=allow_paths, allow_network=allow_network,
            )
            items = resume_info.items
            lock = resume_info.lock
        else:
            spec, doc, plan, found_dir, drawn = prepare(spec_or_path, seed=seed)
            spec_dir = spec_dir or found_dir
        if not force:  # before any model loads or file is written: refuse what the device cannot hold
            from ..engine.item import select_device
            from .resources import available_bytes, check_fits, estimate_resources

            device = select_device(spec.engine.device).type
            check_fits(estimate_resources(spec, plan, device), available_bytes(device))
        policy_now = policy(spec_dir)

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
                refuse_finished_run(rd)
                rd.mkdir(parents=True, exist_ok=True)
            lock = lock_run_dir(rd)
            if plan.animation_mode == "Video Input":  # extract into the run folder; max_frames = frame count (§7.4)
                from .video_input import prepare_video_input

                spec, plan = prepare_video_input(spec, rd, policy_now)
                doc = spec_to_document(spec)
                selected = select(plan)
        inputs = InputStore(policy_now)
        inputs.prepare(plan)  # init images and image prompts: allowed, hashed, pins checked, before models load
        result = RenderResult(run_dir=rd, spec=spec, spec_document=doc, plan=plan, seed_drawn=drawn, inputs=inputs,
                              started_at=started_at, spec_path=spec_path, branch=branch)
        documents = partial(write_run_documents, rd, doc, plan)  # a resume's writes wait for its last check
        documents() if resume_info is None else resume_info.pending_writes.insert(0, documents)

        observers = list(observers)
        if progress:
            from .progress import ProgressObserver

            observers.insert(0, ProgressObserver())
        start = time.perf_counter()
        with deterministic_kernels(spec.engine.deterministic):  # the manifest records these settings too
            try:
                runner.run_plan(result, selected, observers=observers, spec_dir=spec_dir, fetch=fetch,
                                resume=resume_info)
            except BaseException as exc:
                for o in observers:
                    if hasattr(o, "on_error"):  # e.g. close a tracking run as FAILED / KILLED
                        o.on_error(result, exc)
                raise
            result.seconds = time.perf_counter() - start
            result.ended_at = time.time()
            from ..record.manifest import finalize_run

            finalize_run(result, spec_dir=spec_dir)  # last: the manifest, and its id stamped into every PNG
    finally:
        if lock is not None:
            lock.release()
    for o in observers:
        o.on_end(result)
    return result
