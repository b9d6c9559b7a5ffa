"""`render --backend ray` for a batch of stills, the merging half: each image is rendered as a part job
into `.parts/item-NNNN/` under the run folder, and one more Ray task moves the parts into the run
folder, writes the resume journal a local render would have written and finalises the run once, so
the manifest and every file equal the local backend's.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..atomic import move
from .jobs import Job, JobResult
from .ray_backend import _driver_environment, _driver_settings, _read_tree, _retarget, _several_nodes, _task_options, _unwrap, _uses_cuda, _write_tree, ensure_ray

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
