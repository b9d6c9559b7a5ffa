"""What a render is asked to do (`RenderRequest`) and what preparing it found (`PreparedRun`).

The CLI, the Python API (`disco_spec.render`), the backends and every job a sweep or a Ray worker runs build
one RenderRequest and pass it down whole, instead of re-threading a dozen keyword options through each layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from ..spec.access import InputPolicy

if TYPE_CHECKING:
    from ..plan.resolve import Plan
    from ..spec.models import JobSpec
    from .inputs import InputStore
    from .lock import RunLock
    from .records import Observer

DEFAULT_OUT = "images_out"


@dataclass(frozen=True)
class InputTrust:
    """Which files and URLs the spec may make the render read (spec.access), and whether missing registry
    weights may be downloaded. `access` replaces the policy as a whole (rebuild passes its own)."""

    allow_paths: tuple[str, ...] = ()  # folders besides the spec's repository its files may be read from
    allow_network: bool = False  # whether the spec's URLs may be fetched
    fetch: bool = True  # download (or generate, for tiny models) registry weights that are not cached
    access: InputPolicy | None = None

    def policy(self, spec_dir: str | None) -> InputPolicy:
        """The InputPolicy of a spec found in `spec_dir` (None: built in Python)."""
        return self.access or InputPolicy.for_spec(spec_dir, allow_paths=self.allow_paths,
                                                   allow_network=self.allow_network)


@dataclass(frozen=True)
class RenderRequest:
    """One render: the spec, where its outputs go, what it may read, who watches, where it runs, and
    whether it continues a run."""

    spec: JobSpec | str | os.PathLike  # a validated spec or the path of a .toml/.json spec file
    out: str | os.PathLike = DEFAULT_OUT  # each new render gets {out}/{batch_name}/run-NNNN/
    run_dir: str | os.PathLike | None = None  # render into (or continue) this run folder instead
    seed: int | None = None  # overrides run.set_seed
    items: tuple[int, ...] | None = None  # only these plan items (None: all)
    spec_dir: str | None = None  # where the spec's relative paths resolve (default: the spec file's folder)
    trust: InputTrust = InputTrust()
    observers: tuple[Observer, ...] = ()  # trackers and other observers (progress bars are added by render)
    progress: bool = True  # a progress bar on stderr
    backend: str = "local"  # where it renders (scale.backends): "local" here, "ray" one task per image
    address: str | None = None  # the Ray cluster (backend "ray")
    force: bool = False  # start even when the memory estimate exceeds the device's free memory
    resume: bool = False  # continue the latest run of the batch (or run_dir) where it stopped
    cache: bool = True  # serve items already rendered from the same recipe (run.cache); False: --no-cache

    @classmethod
    def of(
        cls,
        spec: JobSpec | str | os.PathLike,
        out: str | os.PathLike = DEFAULT_OUT,
        *,
        items: Sequence[int] | None = None,
        observers: Iterable[Observer] = (),
        allow_paths: Iterable[str | os.PathLike] = (),
        allow_network: bool = False,
        fetch: bool = True,
        access: InputPolicy | None = None,
        **fields: Any,
    ) -> "RenderRequest":
        """A request from render()'s keyword options (the Python API and the older call sites)."""
        trust = InputTrust(allow_paths=tuple(str(p) for p in allow_paths), allow_network=allow_network,
                           fetch=fetch, access=access)
        return cls(spec=spec, out=out, items=None if items is None else tuple(items), observers=tuple(observers),
                   trust=trust, **fields)


@dataclass
class ResumeInfo:
    """What continuing a run found in its folder (run.resume, run.branch); consumed by Journal.begin."""

    run_dir: Path
    recorded_state: dict[str, Any] | None
    items: list[int] | None  # the recorded selection (None: every item)
    # The writes a resume or branch makes before rendering (spec.json, stale temps, Video Input frames, a
    # branch's retained frames...), run by `commit` once the last check passed (Journal.begin, after the
    # weights and inputs): a refused resume or branch leaves the run folder as it was.
    pending_writes: list[Callable[[], Any]] = field(default_factory=list)

    def commit(self) -> None:
        writes, self.pending_writes = self.pending_writes, []
        for write in writes:
            write()


@dataclass
class PreparedRun:
    """A request made concrete, before any model loads: the spec with its seed, its document, the plan
    (resolved once), the run folder (locked) and, when a run is continued, what its journal recorded."""

    spec: JobSpec
    document: dict[str, Any]  # the spec as rendered (canonical, concrete seed): spec.json
    plan: Plan
    selected: list[int]  # the plan items this render computes and writes
    spec_dir: str | None
    seed_drawn: bool
    run_dir: Path
    lock: RunLock
    resume: ResumeInfo | None = None  # --resume or DD's resume fields: the journal to continue
    branch: dict[str, Any] | None = None  # DD's resume fields: how the run was branched (manifest, journal)
    # A new run's init images and image prompts, read and hashed before its folder was made (None: render()
    # reads them once the plan is known: Video Input counts its frames in the folder; a resume checks its own)
    inputs: InputStore | None = None


def select_items(plan: Plan, items: Sequence[int] | None) -> list[int]:
    """The plan items to render: all, or the given ones (each must exist)."""
    from ..errors import SpecError

    chosen = list(range(plan.n_items)) if items is None else sorted(set(items))
    for i in chosen:
        if not 0 <= i < plan.n_items:
            raise SpecError("items", [("items", f"item {i} does not exist (the plan has {plan.n_items})")])
    return chosen
