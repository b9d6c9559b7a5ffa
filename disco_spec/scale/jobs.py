"""One render job, the unit every backend runs: the `Job` (a spec document with a concrete seed, its run
folder, the plan items it renders), its `JobResult` with each step's statistics kept for replay in the
driver, `BackendError`, and `run_job`, which renders a job in this process and finalises its run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import DiscoSpecError
from ..run.replay import StepStat
from ..run.request import InputTrust, RenderRequest


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
    seed_drawn: bool = False  # the driver drew the seed ('random_seed'): recorded in the manifest's volatile part
    trust: InputTrust = InputTrust()  # what the spec may make the job read and download (picklable: no `access`)
    cache: bool = True  # may be served from the render cache (run.cache); False: --no-cache
    # Stores besides the local cache that may serve the render: observers with find_cached_render (a sweep's
    # tracking.shared_cache.SharedCacheLookup). Picklable: they travel with the job to Ray workers.
    shared_caches: tuple[Any, ...] = ()


@dataclass
class JobResult:
    job: Job
    result: Any  # disco_spec.run.renderer.RenderResult, run_dir = job.run_dir
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
    """Render one job here: validate the document, render its RenderRequest into job.run_dir, finalise
    (job.finalize)."""
    from ..record.manifest import MANIFEST_NAME, finalize_run, write_manifest
    from ..run.renderer import render
    from ..spec.load import validate_document

    spec = validate_document(dict(job.spec_document))
    recorder = _StepRecorder()
    result = render(RenderRequest(spec=spec, run_dir=job.run_dir, items=job.items, spec_dir=job.spec_dir,
                                  trust=job.trust, observers=(recorder, *job.shared_caches, *observers),
                                  progress=progress, cache=job.cache))
    manifest = getattr(result, "manifest", None)
    if job.seed_drawn and not result.seed_drawn:
        result.seed_drawn = True
        if manifest is not None and manifest.get("volatile", {}).get("seed_drawn") is False:
            manifest["volatile"]["seed_drawn"] = True  # unhashed: the id stays
            write_manifest(Path(job.run_dir) / MANIFEST_NAME, manifest)
    if job.finalize and manifest is None:
        manifest = finalize_run(result, spec_dir=job.spec_dir)
    return JobResult(job=job, result=result, manifest=manifest if job.finalize else None, steps=recorder.steps)
