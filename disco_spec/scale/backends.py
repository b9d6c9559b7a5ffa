"""Where renders run: in this process (`local`) or as Ray tasks (`ray`), with identical bytes.

A `Job` is one independent render: a spec document (canonical, with a concrete seed), the run folder it
writes and, optionally, the plan items it renders. `run_jobs(jobs, backend)` runs a list of them and
returns one `JobResult` per job, in job order:

* `local`: one after the other in this process (`render()`, which writes the manifest).
* `ray`: one Ray task per job, each reserving one GPU (`num_gpus=1`; with no GPU in the cluster, one CPU,
  with a warning). The task receives the spec as its canonical document and renders with the device the
  spec's `engine.device` picks (CUDA when available), never with Ray's GPU ids: on a CPU machine a
  Ray instance with logical GPUs (`ray.init(num_gpus=2)`) renders on the CPU. Animation frames stay
  sequential inside one job (each frame starts from the previous one).

Identical bytes. A task renders with the numeric settings the driver (the process that calls run_jobs)
would use: the driver's `OMP_NUM_THREADS`, `MKL_NUM_THREADS`, `CUBLAS_WORKSPACE_CONFIG` and torch thread
counts are applied in the worker for the length of the task; on the CPU the `CUDA_VISIBLE_DEVICES` Ray
sets for its logical GPU is replaced by the driver's value (on a GPU it is kept: it selects the GPU
Ray reserved, and the manifest records it, so on GPUs the manifest's environment part can differ from a
local render's while the pixels are the same). The manifest is written by `finalize_run` inside the
task, so it records the worker's machine, GPU and packages.

Files. A task writes into the job's run folder when it runs on the driver's node (or when the folder
is on storage shared by the nodes); on another node (`ship_files=None`, automatic) it renders into a
temporary folder and returns every file, which the driver writes into the run folder (the manifest's
unhashed `volatile.run_dir` is corrected to that folder).

Tracking. Workers need no MLflow access: each result carries the per-step statistics, and callers log
them in the driver (`replay_observers`), e.g. as MLflow child runs.

`render_on_backend()` is `render` for the `--backend` option: on Ray a batch of stills becomes one job
per image, rendered into `.parts/item-NNNN/` under the run folder; one more task (on a worker, so that
the manifest records the worker's environment, with the determinism settings a render leaves in its
process) moves the parts into the run folder, writes the resume journal a local render would have
written and calls `finalize_run` once over all images: the manifest and every file equal the local
backend's.

Pieces: `jobs` (the job model; one job in this process) and `ray_backend` (Ray tasks, the driver's
settings, files from other nodes, a batch of stills as parts, merged). This module picks the backend
and re-exports their names.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .jobs import BackendError, Job, JobResult, run_job
from ..run.replay import StepStat, replay_observers
from .ray_backend import (CPU_ONLY_MIRRORED_ENV, MIRRORED_ENV, PARTS_DIR, RAY_INSTALL_HINT, ensure_ray, import_ray,
                          merge_on_ray, merge_parts, part_dir, run_on_ray)
from ..errors import SpecError

BACKENDS = ("local", "ray")

__all__ = [
    "BACKENDS", "BackendError", "Job", "JobResult", "StepStat", "check_backend", "render_on_backend",
    "replay_observers", "run_job", "run_jobs",
]
# Also importable from here, for other modules and tests (this module does not use them itself).
__all__ += [
    "CPU_ONLY_MIRRORED_ENV", "MIRRORED_ENV", "PARTS_DIR", "RAY_INSTALL_HINT", "ensure_ray", "import_ray", "merge_parts",
]


def check_backend(backend: str, address: str | None = None) -> None:
    """Refuse an unknown backend, or `--address` without Ray (SpecError names the option)."""
    if backend not in BACKENDS:
        raise SpecError("--backend", [("--backend", f"must be one of {', '.join(BACKENDS)} (got {backend!r})")])
    if address and backend != "ray":
        raise SpecError("--address", [("--address", "only used with --backend ray")])


# ---------------------------------------------------------------------------------------------
# Running several jobs
# ---------------------------------------------------------------------------------------------


def run_jobs(
    jobs: Sequence[Job],
    backend: str = "local",
    address: str | None = None,
    *,
    progress: bool = False,
    gpus_per_job: float = 1,
    ship_files: bool | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run independent jobs; return their results in job order (on_result is called as each finishes).

    `ship_files`: None (automatic: only for tasks on another node than the driver), True (always render
    into a worker temp folder and copy the files back), False (never: run folders on shared storage).
    """
    check_backend(backend, address)
    jobs = [_absolute(j) for j in jobs]
    if backend == "local":
        results = []
        for job in jobs:
            r = run_job(job, progress=progress)
            if on_result is not None:
                on_result(r)
            results.append(r)
        return results
    return run_on_ray(list(jobs), address, gpus_per_job=gpus_per_job, ship_files=ship_files, on_result=on_result)


def _absolute(job: Job) -> Job:
    """Workers may start in another folder: paths are made absolute in the driver."""
    run_dir = str(Path(job.run_dir).resolve())
    spec_dir = str(Path(job.spec_dir).resolve()) if job.spec_dir else job.spec_dir
    if (run_dir, spec_dir) == (job.run_dir, job.spec_dir):
        return job
    return dataclasses.replace(job, run_dir=run_dir, spec_dir=spec_dir)


# ---------------------------------------------------------------------------------------------
# render --backend: a batch of stills as one job per image
# ---------------------------------------------------------------------------------------------


def render_on_backend(spec_or_request: Any, out: str | os.PathLike = "images_out", *,
                      ship_files: bool | None = None, **options: Any) -> Any:
    """`render` on the request's backend; returns the RenderResult with `.manifest` set (manifest.json written).
    Takes a RenderRequest, or a spec with RenderRequest.of's keyword options (backend, address, ...).

    local: render() then finalize_run, observers live. ray: stills are split into one job per image and
    merged (see the module docstring); animations are one job; observers see the render afterwards
    (replay_observers: start, every step's statistics without previews, outputs, end).
    """
    from ..run.request import RenderRequest

    request = spec_or_request if isinstance(spec_or_request, RenderRequest) else \
        RenderRequest.of(spec_or_request, out, **options)
    check_backend(request.backend, request.address)
    if request.backend == "local":
        from ..record.manifest import finalize_run
        from ..run.renderer import render

        result = render(request)
        if getattr(result, "manifest", None) is None:
            finalize_run(result, spec_dir=request.spec_dir or _spec_dir_of(request.spec))
        return result

    from ..run.folders import allocate_run_dir, refuse_finished_run
    from ..run.prepare import prepare
    from ..run.request import select_items

    ready = prepare(request.spec, seed=request.seed)
    doc, plan, drawn, items = ready.document, ready.plan, ready.seed_drawn, request.items
    sd = str(Path(request.spec_dir or ready.spec_dir).resolve()) if (request.spec_dir or ready.spec_dir) else None
    selected = select_items(plan, items)
    if request.run_dir is None:
        rd = allocate_run_dir(request.out, plan.batch_name).resolve()
    else:
        rd = Path(request.run_dir).resolve()
        refuse_finished_run(rd)  # a finished run is never rendered over (exit 2)
        rd.mkdir(parents=True, exist_ok=True)
    trust = dataclasses.replace(request.trust, access=None)  # jobs travel to workers; each builds its policy
    backend, address = request.backend, request.address
    start = time.perf_counter()
    if plan.animation_mode != "None" or len(selected) == 1:
        job = Job(spec_document=doc, run_dir=str(rd), items=tuple(selected) if items is not None else None,
                  spec_dir=sd, label=rd.name, seed_drawn=drawn, trust=trust,
                  cache=request.cache)
        (r,) = run_jobs([job], backend, address, ship_files=ship_files)
        result, steps = r.result, r.steps
    else:
        jobs = [Job(spec_document=doc, run_dir=str(part_dir(rd, i)), items=(i,), spec_dir=sd, finalize=False,
                    label=f"item {i}", trust=trust, cache=request.cache)
                for i in selected]
        parts = run_jobs(jobs, backend, address, ship_files=ship_files)
        result = merge_on_ray(rd, parts, address, seconds=time.perf_counter() - start, seed_drawn=drawn,
                               spec_dir=sd, ship_files=ship_files)
        steps = [s for p in parts for s in p.steps]
    result.seconds = time.perf_counter() - start
    replay_observers(result, steps, list(request.observers))
    return result


def _spec_dir_of(spec_or_path: Any) -> str | None:
    if isinstance(spec_or_path, (str, os.PathLike)):
        return str(Path(spec_or_path).resolve().parent)
    return None

