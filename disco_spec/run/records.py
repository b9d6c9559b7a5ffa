"""The records a render passes around: what was written (OutputRecord), step events, the result, the
observer protocol, and the PNG text chunks that make a final image rebuildable from the PNG alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

from .._version import __version__
from ..hashes import file_sha256
from ..plan.resolve import Plan, PlanItem
from ..spec.models import JobSpec


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
    branch: dict[str, Any] | None = None  # set for a run re-rendered from a frame (run.branch)
    manifest: dict[str, Any] | None = None  # set by disco_spec.record.manifest.finalize_run
    spec_path: str | None = None  # the spec file rendered (None for a spec given as a document)
    started_at: float | None = None  # wall-clock time (time.time()) when render() began
    ended_at: float | None = None  # wall-clock time when the last item was written (before the manifest)
    inputs: Any = None  # run.inputs.InputStore: the files read under the render's InputPolicy (manifest `inputs`)
    cached_from: list[dict[str, Any]] = field(default_factory=list)  # items served by run.cache: where from
    # plan item -> {"x_t": [...], "x0": [...]}: each step's checksum (engine.checksum), until the journal takes it
    step_checksums: dict[int, dict[str, list[str]]] = field(default_factory=dict)


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


def record_output(result: RenderResult, observers: Sequence[Observer], rel: str, kind: str, item: PlanItem) -> OutputRecord:
    """Hash a file just written under the run folder, add its OutputRecord and tell the observers."""
    path = result.run_dir / rel
    rec = OutputRecord(
        path=rel, sha256=file_sha256(path), bytes=path.stat().st_size, kind=kind, item_index=item.index,
        batch_index=item.batch_index, frame=item.frame, seed=item.seed,
    )
    publish_output(result, observers, rec)
    return rec


def publish_output(result: RenderResult, observers: Sequence[Observer], rec: OutputRecord) -> None:
    result.outputs.append(rec)
    for o in observers:
        o.on_output(result, rec)


def sha256_or_none(path: str | Path) -> str | None:
    """The file's SHA-256, or None when it cannot be read (missing, a folder, unreadable)."""
    try:
        return file_sha256(path)
    except OSError:
        return None
