"""The Ray backend: connecting to Ray (`ensure_ray`), running jobs as Ray tasks (one GPU each, or one CPU
on a cluster without GPUs) under the driver's numeric settings, and, for a task on another node than
the driver, sending the run folder's files back to be written there; and, for a batch of stills, the
merging half: each image is rendered as a part job into `.parts/item-NNNN/` under the run folder, and
one more Ray task moves the parts into the run folder, writes the resume journal a local render would
have written and finalises the run once, so the manifest and every file equal the local backend's.
ray is imported inside functions only, so importing this module does not import it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from ..atomic import move
from ..errors import DiscoSpecError
from .jobs import BackendError, Job, JobResult, run_job

RAY_INSTALL_HINT = "the Ray backend needs Ray: pip install 'disco-spec[ray]'"
# Driver settings a worker takes over for the length of a task (see disco_spec.scale.backends' docstring).
MIRRORED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")
CPU_ONLY_MIRRORED_ENV = ("CUDA_VISIBLE_DEVICES",)


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


def run_on_ray(jobs: list[Job], address: str | None, *, gpus_per_job: float, ship_files: bool | None,
               on_result: Callable[[JobResult], None] | None) -> list[JobResult]:
    """Each job as a Ray task under the driver's numeric settings; the results in job order (files a task on
    another node sent back are written here first)."""
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
    from ..record.pngmeta import atomic_write

    for rel, data in files.items():
        target = (root / rel).resolve()
        if root.resolve() not in target.parents:  # never outside the run folder
            continue
        atomic_write(target, data)


def _retarget(r: JobResult, run_dir: Path) -> None:
    """Point a result rendered elsewhere at the driver's run folder (manifest: volatile part only)."""
    from ..record.manifest import MANIFEST_NAME, write_manifest

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


# -- a batch of stills as parts, merged by one more Ray task ---------------------------------------

PARTS_DIR = ".parts"


def part_dir(run_dir: Path, item: int) -> Path:
    return run_dir / PARTS_DIR / f"item-{item:04d}"


def merge_parts(run_dir: Path, parts: list[JobResult], *, seconds: float, seed_drawn: bool,
                spec_dir: str | None) -> Any:
    """Move per-item part renders into run_dir, write the journal a local render writes, finalise once.

    Returns the merged RenderResult (with `.manifest`). The parts' spec.json/plan.json are the run's.
    """
    import json

    from ..run.journal import FRAMES_LOG, RUN_STATE, read_entries
    from ..record.manifest import finalize_run
    from ..run.records import RenderResult
    from ..run.folders import write_text_atomic
    from ..run.lock import lock_run_dir

    parts = sorted(parts, key=lambda p: min(p.job.items or (0,)))
    first = parts[0].result
    with lock_run_dir(run_dir):  # the run folder's boundary: every move below is walked without links
        for name in ("spec.json", "plan.json"):
            move(Path(parts[0].job.run_dir) / name, run_dir / name)
        outputs, entries, items = [], [], []
        for p in parts:
            src = Path(p.job.run_dir)
            items += list(p.job.items or ())
            for rec in p.result.outputs:
                move(src / rec.path, run_dir / rec.path)
                outputs.append(rec)
            entries += read_entries(src)
        last = Path(parts[-1].job.run_dir) / "progress.png"
        if last.is_file():
            move(last, run_dir / "progress.png")
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
    from ..engine.item import configure_determinism

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


def merge_on_ray(rd: Path, parts: list[JobResult], address: str | None, *, seconds: float, seed_drawn: bool,
                 spec_dir: str | None, ship_files: bool | None) -> Any:
    """`merge_parts` as one more Ray task (the manifest records a worker's environment); the merged result."""
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
