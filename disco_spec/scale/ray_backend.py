"""The Ray backend: connecting to Ray (`ensure_ray`), running jobs as Ray tasks (one GPU each, or one CPU
on a cluster without GPUs) under the driver's numeric settings, and, for a task on another node than
the driver, sending the run folder's files back to be written there. ray is imported inside functions
only, so importing this module does not import it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .jobs import BackendError, Job, JobResult, run_job
from ..errors import DiscoSpecError

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
