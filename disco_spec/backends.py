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
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .errors import DiscoSpecError, SpecError

BACKENDS = ("local", "ray")
RAY_INSTALL_HINT = "the Ray backend needs Ray: pip install 'disco-spec[ray]'"
PARTS_DIR = ".parts"
# Driver settings a worker takes over for the length of a task (see the module docstring).
MIRRORED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")
CPU_ONLY_MIRRORED_ENV = ("CUDA_VISIBLE_DEVICES",)

__all__ = [
    "BACKENDS", "BackendError", "Job", "JobResult", "StepStat", "check_backend", "render_on_backend",
    "replay_observers", "run_job", "run_jobs",
]


class BackendError(DiscoSpecError):
    """The execution backend is unavailable or failed (e.g. Ray is not installed)."""

    exit_code = 1


@dataclass(frozen=True)
class Job:
    spec_document: dict[str, Any]  # canonical spec document with a concrete seed
    run_dir: str  # the run folder the job writes (absolute)
    items: tuple[int, ...] | None = None  # plan items (None: all)
    spec_dir: str | None = None  # where relative paths in the spec resolve (absolute)
    label: str = ""
    finalize: bool = True  # False: a part of a batch (its manifest is replaced when the parts are merged)
    fetch: bool = True
    seed_drawn: bool = False  # the driver drew the seed ('random_seed'): recorded in the manifest's volatile part


@dataclass(frozen=True)
class StepStat:
    item: int
    j: int
    k: int
    total: int
    stats: dict[str, float]


@dataclass
class JobResult:
    job: Job
    result: Any  # disco_spec.render.RenderResult, run_dir = job.run_dir
    manifest: dict[str, Any] | None
    steps: list[StepStat] = field(default_factory=list)
    node_id: str | None = None
    shipped: bool = False  # rendered on another node; files were copied into run_dir by the driver

    @property
    def manifest_id(self) -> str | None:
        return (self.manifest or {}).get("id")

    @property
    def run_dir(self) -> Path:
        return Path(self.job.run_dir)


def check_backend(backend: str, address: str | None = None) -> None:
    """Refuse an unknown backend, or `--address` without Ray (SpecError names the option)."""
    if backend not in BACKENDS:
        raise SpecError("--backend", [("--backend", f"must be one of {', '.join(BACKENDS)} (got {backend!r})")])
    if address and backend != "ray":
        raise SpecError("--address", [("--address", "only used with --backend ray")])


# ---------------------------------------------------------------------------------------------
# One job, in this process
# ---------------------------------------------------------------------------------------------


class _StepRecorder:
    """An observer that keeps each step's statistics (small numbers) for replay in the driver."""

    def __init__(self) -> None:
        self.steps: list[StepStat] = []

    def on_start(self, result: Any) -> None:
        pass

    def on_step(self, event: Any) -> None:
        stats = {}
        for key, value in event.stats.items():
            try:
                stats[str(key)] = float(value)
            except (TypeError, ValueError):
                continue
        self.steps.append(StepStat(event.item.index, int(event.j), int(event.k), int(event.total), stats))

    def on_output(self, result: Any, record: Any) -> None:
        pass

    def on_end(self, result: Any) -> None:
        pass


def run_job(job: Job, *, progress: bool = False, observers: Iterable[Any] = ()) -> JobResult:
    """Render one job here: validate the document, render into job.run_dir, finalise (job.finalize)."""
    from .manifest import MANIFEST_NAME, finalize_run, write_manifest
    from .render import render
    from .spec.load import validate_document

    spec = validate_document(dict(job.spec_document))
    recorder = _StepRecorder()
    result = render(
        spec, run_dir=job.run_dir, items=list(job.items) if job.items is not None else None,
        observers=[recorder, *observers], progress=progress, spec_dir=job.spec_dir, fetch=job.fetch,
    )
    manifest = getattr(result, "manifest", None)
    if job.seed_drawn and not result.seed_drawn:
        result.seed_drawn = True
        if manifest is not None and manifest.get("volatile", {}).get("seed_drawn") is False:
            manifest["volatile"]["seed_drawn"] = True  # unhashed: the id stays
            write_manifest(Path(job.run_dir) / MANIFEST_NAME, manifest)
    if job.finalize and manifest is None:
        manifest = finalize_run(result, spec_dir=job.spec_dir)
    return JobResult(job=job, result=result, manifest=manifest if job.finalize else None, steps=recorder.steps)


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
    return _run_ray(list(jobs), address, gpus_per_job=gpus_per_job, ship_files=ship_files, on_result=on_result)


def _absolute(job: Job) -> Job:
    """Workers may start in another folder: paths are made absolute in the driver."""
    run_dir = str(Path(job.run_dir).resolve())
    spec_dir = str(Path(job.spec_dir).resolve()) if job.spec_dir else job.spec_dir
    if (run_dir, spec_dir) == (job.run_dir, job.spec_dir):
        return job
    return dataclasses.replace(job, run_dir=run_dir, spec_dir=spec_dir)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise BackendError(RAY_INSTALL_HINT) from exc
    return ray


def ensure_ray(address: str | None = None) -> Any:
    """The `ray` module, connected: an existing connection is reused, else `ray.init(address)` (None: a
    local instance, or the cluster named by RAY_ADDRESS)."""
    ray = import_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address, "log_to_driver": True, "logging_level": "WARNING"}
        if address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs["include_dashboard"] = False
        ray.init(**kwargs)
    return ray


def _driver_settings() -> dict[str, Any]:
    settings: dict[str, Any] = {"env": {k: os.environ.get(k) for k in MIRRORED_ENV + CPU_ONLY_MIRRORED_ENV}}
    try:
        import torch

        settings["threads"] = torch.get_num_threads()
        settings["interop_threads"] = torch.get_num_interop_threads()
    except ImportError:  # a thin driver without the render extra: the workers keep their own counts
        pass
    return settings


_WARNED: set[str] = set()


def _task_options(ray: Any, gpus_per_job: float) -> dict[str, Any]:
    if gpus_per_job and not ray.cluster_resources().get("GPU", 0):
        if "no-gpu" not in _WARNED:
            _WARNED.add("no-gpu")
            print("warning: the Ray cluster has no GPU: each job reserves one CPU instead", file=sys.stderr, flush=True)
        return {"num_gpus": 0, "num_cpus": 1, "max_retries": 0}
    return {"num_gpus": gpus_per_job, "max_retries": 0}


def _several_nodes(ray: Any) -> bool:
    try:
        return sum(1 for n in ray.nodes() if n.get("Alive")) > 1
    except Exception:  # noqa: BLE001 - unknown: assume the worst (files are sent)
        return True


def _driver_node(ray: Any) -> str | None:
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - e.g. a Ray client connection (ray://): not a node
        return None


def _run_ray(jobs: list[Job], address: str | None, *, gpus_per_job: float, ship_files: bool | None,
             on_result: Callable[[JobResult], None] | None) -> list[JobResult]:
    ray = ensure_ray(address)
    from ray.exceptions import RayTaskError

    task = ray.remote(_ray_job_task).options(**_task_options(ray, gpus_per_job))
    settings = _driver_settings()
    node = _driver_node(ray)
    refs = [task.remote(job, settings, node, ship_files) for job in jobs]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[JobResult | None] = [None] * len(jobs)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    r, files = ray.get(ref)
                except RayTaskError as exc:
                    raise _unwrap(exc) from None
                if files is not None:
                    _materialise(r, files)
                results[index[ref]] = r
                if on_result is not None:
                    on_result(r)
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        raise
    return [r for r in results if r is not None]


def _unwrap(exc: Any) -> BaseException:
    """The task's own error for errors users act on (bad spec, missing model, failed render)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, DiscoSpecError):
        return cause
    return BackendError(f"a Ray task failed: {exc}")


# ---------------------------------------------------------------------------------------------
# In the worker
# ---------------------------------------------------------------------------------------------


def _uses_cuda(spec_document: dict[str, Any]) -> bool:
    device = ((spec_document.get("engine") or {}).get("device")) or "auto"
    if device == "cpu":
        return False
    import torch

    return device == "cuda" or torch.cuda.is_available()


@contextlib.contextmanager
def _driver_environment(settings: dict[str, Any], cuda: bool) -> Iterator[None]:
    """Apply the driver's numeric settings in this worker; put the worker's back afterwards."""
    import torch

    keys = list(MIRRORED_ENV) + ([] if cuda else list(CPU_ONLY_MIRRORED_ENV))
    saved = {k: os.environ.get(k) for k in keys}
    saved_threads = torch.get_num_threads()
    env = settings.get("env") or {}
    for k in keys:
        if env.get(k) is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = env[k]
    if settings.get("threads"):
        torch.set_num_threads(int(settings["threads"]))
    interop = settings.get("interop_threads")
    if interop and torch.get_num_interop_threads() != interop:
        with contextlib.suppress(RuntimeError):  # settable only before the first inter-op work
            torch.set_num_interop_threads(int(interop))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        torch.set_num_threads(saved_threads)


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    from .pngmeta import atomic_write

    for rel, data in files.items():
        target = (root / rel).resolve()
        if root.resolve() not in target.parents:  # never outside the run folder
            continue
        atomic_write(target, data)


def _retarget(r: JobResult, run_dir: Path) -> None:
    """Point a result rendered elsewhere at the driver's run folder (manifest: volatile part only)."""
    from .manifest import MANIFEST_NAME, write_manifest

    r.result.run_dir = run_dir
    if r.manifest is not None:
        r.manifest["volatile"]["run_dir"] = str(run_dir.resolve())
        write_manifest(run_dir / MANIFEST_NAME, r.manifest)
        with contextlib.suppress(AttributeError):
            r.result.manifest = r.manifest


def _materialise(r: JobResult, files: dict[str, bytes]) -> None:
    rd = Path(r.job.run_dir)
    rd.mkdir(parents=True, exist_ok=True)
    _write_tree(rd, files)
    r.shipped = True
    _retarget(r, rd)


def _ship(ship_files: bool | None, driver_node: str | None, node: str | None) -> bool:
    if ship_files is not None:
        return ship_files
    return driver_node is None or node != driver_node


def _current_node() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - not in a Ray worker
        return None


def _ray_job_task(job: Job, settings: dict[str, Any], driver_node: str | None,
                  ship_files: bool | None) -> tuple[JobResult, dict[str, bytes] | None]:
    """The Ray task: render one job with the driver's settings; return the result (and the files)."""
    node = _current_node()
    ship = _ship(ship_files, driver_node, node)
    with _driver_environment(settings, _uses_cuda(job.spec_document)):
        if not ship:
            r = run_job(job)
            r.node_id = node
            return r, None
        with tempfile.TemporaryDirectory(prefix="disco-spec-job-") as tmp:
            local = dataclasses.replace(job, run_dir=str(Path(tmp) / "run"))
            r = run_job(local)
            files = _read_tree(Path(local.run_dir))
    r.job, r.node_id = job, node
    r.result.run_dir = Path(job.run_dir)
    return r, files


# ---------------------------------------------------------------------------------------------
# render --backend: a batch of stills as one job per image
# ---------------------------------------------------------------------------------------------


def part_dir(run_dir: Path, item: int) -> Path:
    return run_dir / PARTS_DIR / f"item-{item:04d}"


def merge_parts(run_dir: Path, parts: list[JobResult], *, seconds: float, seed_drawn: bool,
                spec_dir: str | None) -> Any:
    """Move per-item part renders into run_dir, write the journal a local render writes, finalise once.

    Returns the merged RenderResult (with `.manifest`). The parts' spec.json/plan.json are the run's.
    """
    import json

    from .animation.resume import FRAMES_LOG, RUN_STATE, read_entries
    from .manifest import finalize_run
    from .render import RenderResult, write_text_atomic

    parts = sorted(parts, key=lambda p: min(p.job.items or (0,)))
    first = parts[0].result
    for name in ("spec.json", "plan.json"):
        os.replace(Path(parts[0].job.run_dir) / name, run_dir / name)
    outputs, entries, items = [], [], []
    for p in parts:
        src = Path(p.job.run_dir)
        items += list(p.job.items or ())
        for rec in p.result.outputs:
            dest = run_dir / rec.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src / rec.path, dest)
            outputs.append(rec)
        entries += read_entries(src)
    last = Path(parts[-1].job.run_dir) / "progress.png"
    if last.is_file():
        os.replace(last, run_dir / "progress.png")
    state = json.loads((Path(parts[0].job.run_dir) / RUN_STATE).read_text(encoding="utf-8"))
    state["items"] = sorted(items)
    write_text_atomic(run_dir / RUN_STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")
    lines = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in entries)
    write_text_atomic(run_dir / FRAMES_LOG, lines)
    shutil.rmtree(run_dir / PARTS_DIR, ignore_errors=True)

    result = RenderResult(run_dir=run_dir, spec=first.spec, spec_document=first.spec_document, plan=first.plan,
                          outputs=outputs, weights=list(first.weights), device=first.device, seconds=seconds,
                          seed_drawn=seed_drawn)
    finalize_run(result, spec_dir=spec_dir)
    return result


def _ray_merge_task(run_dir: str, parts: list[JobResult], part_files: dict[str, dict[str, bytes]] | None,
                    settings: dict[str, Any], seconds: float, seed_drawn: bool,
                    spec_dir: str | None) -> tuple[Any, dict[str, bytes] | None]:
    """Ray task: merge_parts on a worker (the manifest records the worker's environment)."""
    from .engine.runner import configure_determinism

    with _driver_environment(settings, _uses_cuda(parts[0].result.spec_document)):
        # The settings a render leaves in its process (CUBLAS_WORKSPACE_CONFIG, deterministic kernels) are
        # part of the recorded environment; this worker may not have rendered yet.
        configure_determinism(parts[0].result.spec.engine.deterministic)
        if part_files is None:
            return merge_parts(Path(run_dir), parts, seconds=seconds, seed_drawn=seed_drawn, spec_dir=spec_dir), None
        with tempfile.TemporaryDirectory(prefix="disco-spec-merge-") as tmp:
            rd = Path(tmp) / "run"
            local_parts = []
            for p in parts:
                pd = part_dir(rd, min(p.job.items or (0,)))
                pd.mkdir(parents=True)
                _write_tree(pd, part_files[p.job.run_dir])
                local_parts.append(JobResult(job=dataclasses.replace(p.job, run_dir=str(pd)), result=p.result,
                                             manifest=None))
            result = merge_parts(rd, local_parts, seconds=seconds, seed_drawn=seed_drawn, spec_dir=spec_dir)
            files = _read_tree(rd)
    result.run_dir = Path(run_dir)
    return result, files


def render_on_backend(
    spec_or_path: Any,
    out: str | os.PathLike = "images_out",
    *,
    backend: str = "local",
    address: str | None = None,
    run_dir: str | os.PathLike | None = None,
    seed: int | None = None,
    items: Sequence[int] | None = None,
    observers: Iterable[Any] = (),
    progress: bool = True,
    spec_dir: str | None = None,
    fetch: bool = True,
    ship_files: bool | None = None,
) -> Any:
    """`render` on a backend; returns the RenderResult with `.manifest` set (manifest.json written).

    local: render() then finalize_run, observers live. ray: stills are split into one job per image and
    merged (see the module docstring); animations are one job; observers see the render afterwards
    (replay_observers: start, every step's statistics without previews, outputs, end).
    """
    check_backend(backend, address)
    observers = list(observers)
    if backend == "local":
        from .manifest import finalize_run
        from .render import render

        result = render(spec_or_path, out, run_dir=run_dir, seed=seed, items=items, observers=observers,
                        progress=progress, spec_dir=spec_dir, fetch=fetch)
        if getattr(result, "manifest", None) is None:
            finalize_run(result, spec_dir=spec_dir or _spec_dir_of(spec_or_path))
        return result

    from .render import allocate_run_dir, prepare

    spec, doc, plan, found_dir, drawn = prepare(spec_or_path, seed=seed)
    sd = str(Path(spec_dir or found_dir).resolve()) if (spec_dir or found_dir) else None
    selected = list(range(plan.n_items)) if items is None else sorted(set(items))
    for i in selected:
        if not 0 <= i < plan.n_items:
            raise SpecError("items", [("items", f"item {i} does not exist (the plan has {plan.n_items})")])
    if run_dir is None:
        rd = allocate_run_dir(out, plan.batch_name).resolve()
    else:
        rd = Path(run_dir).resolve()
        rd.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if plan.animation_mode != "None" or len(selected) == 1:
        job = Job(spec_document=doc, run_dir=str(rd), items=tuple(selected) if items is not None else None,
                  spec_dir=sd, fetch=fetch, label=rd.name, seed_drawn=drawn)
        (r,) = run_jobs([job], backend, address, ship_files=ship_files)
        result, steps = r.result, r.steps
    else:
        jobs = [Job(spec_document=doc, run_dir=str(part_dir(rd, i)), items=(i,), spec_dir=sd, finalize=False,
                    fetch=fetch, label=f"item {i}") for i in selected]
        parts = run_jobs(jobs, backend, address, ship_files=ship_files)
        result = _merge_on_ray(rd, parts, address, seconds=time.perf_counter() - start, seed_drawn=drawn,
                               spec_dir=sd, ship_files=ship_files)
        steps = [s for p in parts for s in p.steps]
    result.seconds = time.perf_counter() - start
    replay_observers(result, steps, observers)
    return result


def _merge_on_ray(rd: Path, parts: list[JobResult], address: str | None, *, seconds: float, seed_drawn: bool,
                  spec_dir: str | None, ship_files: bool | None) -> Any:
    ray = ensure_ray(address)
    from ray.exceptions import RayTaskError

    # The merging task may land on any node: it gets the parts' files unless they are on shared storage.
    shipped = bool(ship_files) or any(p.shipped for p in parts) or (ship_files is None and _several_nodes(ray))
    part_files = None
    if shipped:  # the parts are in the driver's folder: send them to the merging worker
        part_files = {p.job.run_dir: _read_tree(Path(p.job.run_dir)) for p in parts}
    task = ray.remote(_ray_merge_task).options(**_task_options(ray, 1))
    try:
        result, files = ray.get(task.remote(str(rd), parts, part_files, _driver_settings(), seconds, seed_drawn,
                                            spec_dir))
    except RayTaskError as exc:
        raise _unwrap(exc) from None
    if files is not None:
        shutil.rmtree(rd / PARTS_DIR, ignore_errors=True)
        _write_tree(rd, files)
        r = JobResult(job=Job(spec_document=result.spec_document, run_dir=str(rd)), result=result,
                      manifest=result.manifest)
        _retarget(r, rd)
    return result


def _spec_dir_of(spec_or_path: Any) -> str | None:
    if isinstance(spec_or_path, (str, os.PathLike)):
        return str(Path(spec_or_path).resolve().parent)
    return None


def replay_observers(result: Any, steps: Sequence[StepStat], observers: Iterable[Any]) -> None:
    """Show a finished render to observers as if they had watched it (no previews): start, steps,
    outputs, end. Used for MLflow tracking of renders that ran elsewhere."""
    from .render import StepEvent

    observers = list(observers)
    if not observers:
        return
    items = {it.index: it for it in result.plan.items}
    for o in observers:
        o.on_start(result)
    for s in steps:
        event = StepEvent(item=items[s.item], j=s.j, k=s.k, total=s.total, stats=dict(s.stats), preview=None)
        for o in observers:
            o.on_step(event)
    for rec in result.outputs:
        for o in observers:
            o.on_output(result, rec)
    for o in observers:
        o.on_end(result)
