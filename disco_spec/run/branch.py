"""DD's resume fields (`[run] resume_run`, `run_to_resume`, `resume_from_frame`, `retain_overwritten_frames`):
re-render an existing run from frame N with the spec as it is now (DD: disco.py:2447-2455 (DoTheRun cell)).

The workflow DD users know: change a setting (say, the prompt schedule from frame 40), then re-render the run
from that frame. disco-spec builds it on the exact journal:

* frames before N are kept, after their pixels are verified against the journal; their PNG text chunks are
  written again for the new spec (the pixels do not change), so every file equals what a fresh render of the
  new spec would write;
* the new spec must resolve to the same plan items for those frames (same prompts, motion, seeds...), else
  the kept frames would not be what the spec says; the first difference is named (exit 2);
* N and later are rendered with the new spec, each from the kept frame before it (the journal's state files);
* with `retain_overwritten_frames`, the files of frames N and later move to `retained/` first, as DD does;
* the journal and the manifest record the branch (the parent's manifest id, N, what changed) outside the
  manifest's hashed part, so the branched run has the id of a fresh render of the new spec and `rebuild`
  reproduces it byte for byte.

N is the first frame rendered again: `resume_from_frame = 40` re-renders 40 onward ("latest": the first frame
the run is missing). DD restarts at `resume_from_frame + 1` (docs/departures.md; DD's settings report never
holds the resume fields, so `import-dd` has nothing to convert).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..atomic import move
from ..record.image_bounds import open_image_bounded
from ..errors import SpecError
from ..plan.resolve import with_concrete_seed
from ..spec.load import load_spec, spec_to_document
from ..spec.models import JobSpec
from .journal import RUN_JSON_BYTES, RUN_STATE, Journal, read_entries
from .images import write_png_atomic
from .prepare import PreparedSpec, prepare_spec
from ..hashes import file_sha256
from .records import png_metadata
from .request import PreparedRun, RenderRequest
from .resume import ResumeInfo, document_differences, latest_run_dir, recorded_seed

if TYPE_CHECKING:
    from ..plan.resolve import Plan
    from ..spec.access import InputPolicy

RETAINED_DIR = "retained"
RESUME_FIELDS = {"resume_run": False, "run_to_resume": "latest", "resume_from_frame": "latest",
                 "retain_overwritten_frames": False}
# Plan values that may differ between the run and the new spec without changing the kept frames.
PLAN_FIELDS_FREE = {"items", "n_items", "warnings"}


def without_resume_fields(spec: JobSpec) -> JobSpec:
    """The spec as rendered: the resume fields say how a run was produced, not what it renders."""
    return spec.model_copy(update={"run": spec.run.model_copy(update=RESUME_FIELDS)})


def _bad(field: str, why: str) -> SpecError:
    return SpecError(f"run.{field}: {why}", [(f"run.{field}", why)])


def branch_run_dir(out: str | os.PathLike, batch_name: str, run_to_resume: Any) -> Path:
    """`run_to_resume`: "latest", a run number (7 = run-0007) or a run folder's name."""
    if run_to_resume == "latest":
        try:
            return latest_run_dir(out, batch_name)
        except SpecError:
            raise _bad("resume_run", f"no run of batch {batch_name!r} under {Path(out) / batch_name} to resume") from None
    name = f"run-{run_to_resume:04d}" if isinstance(run_to_resume, int) else str(run_to_resume)
    rd = Path(out) / batch_name / name
    if not (rd / "spec.json").is_file():
        raise _bad("run_to_resume", f"{rd} is not a run of batch {batch_name!r} (no spec.json)")
    return rd


def _read(path: Path, field: str) -> Any:
    from ..spec.untrusted_json import read_file

    try:
        return read_file(path, max_bytes=RUN_JSON_BYTES)
    except SpecError as exc:
        raise _bad(field, f"{path} is unreadable ({exc.problems[0][1] if exc.problems else exc})") from None


def _parent_result(rd: Path, parent_doc: dict[str, Any]) -> SimpleNamespace:
    """What the journal's checks need of the run as it was rendered: its folder, spec document and plan."""
    from ..spec.load import validate_document
    from ..plan.resolve import resolve_plan

    return SimpleNamespace(run_dir=rd, spec_document=parent_doc, plan=resolve_plan(validate_document(parent_doc)))


def _first_plan_difference(old_plan: Any, new_plan: Any, n: int) -> str | None:
    old, new = old_plan.to_dict(), new_plan.to_dict()
    for key in sorted(set(old) | set(new)):
        if key not in PLAN_FIELDS_FREE and old.get(key) != new.get(key):
            return f"plan value {key!r} changed ({old.get(key)!r} → {new.get(key)!r})"
    for a, b in zip(old_plan.items[:n], new_plan.items[:n]):
        da, db = asdict(a), asdict(b)
        for key in sorted(da):
            if da[key] != db.get(key):
                return f"frame {a.frame} would render differently ({key} changed)"
    return None


def _move_to_retained(rd: Path, rel: str) -> str | None:
    src = rd / rel
    if not src.is_file():
        return None
    dest = rd / RETAINED_DIR / rel
    k = 1
    while os.path.lexists(dest):  # an earlier branch retained the same frame: keep both
        dest = dest.with_name(f"{Path(rel).stem}.{k}{Path(rel).suffix}")
        k += 1
    move(src, dest)  # the run folder's boundary (atomic): no link followed on either side
    return dest.relative_to(rd).as_posix()


def prepare_branch(request: RenderRequest) -> PreparedRun:
    """Make run `run_to_resume` continue from frame N with the spec as it is now.

    The returned PreparedRun holds what render() needs to continue like `--resume` does (the journal, the
    branch record) and the run folder's lock, which render() releases. The Video Input file is read
    through the request's InputPolicy.
    """
    from .lock import lock_run_dir, remove_stale_temps

    if isinstance(request.spec, JobSpec):
        spec, found_dir = request.spec, None
    else:
        spec, found_dir = load_spec(request.spec), str(Path(request.spec).resolve().parent)
    spec_dir = request.spec_dir or found_dir
    rd = branch_run_dir(request.out, spec.run.batch_name, spec.run.run_to_resume)
    lock = lock_run_dir(rd)
    try:
        ready, plan, info, branch = _branch(spec, rd, seed=request.seed, access=request.trust.policy(spec_dir))
    except BaseException:
        lock.release()
        raise
    info.pending_writes.insert(0, lambda: remove_stale_temps(rd))  # after the last check
    return PreparedRun(spec=ready.spec, document=ready.document, plan=plan, selected=list(range(plan.n_items)),
                       spec_dir=spec_dir, seed_drawn=ready.seed_drawn, run_dir=rd, lock=lock, resume=info,
                       branch=branch)


def _branch(spec: JobSpec, rd: Path, *, seed: int | None,
            access: InputPolicy) -> tuple[PreparedSpec, Plan, ResumeInfo, dict[str, Any]]:
    from ..plan.resolve import resolve_plan
    from .video_input import prepare_video_input, read_inputs_record

    r = spec.run
    parent_doc = _read(rd / "spec.json", "run_to_resume")
    parent_state = _read(rd / RUN_STATE, "run_to_resume") if (rd / RUN_STATE).is_file() else None
    parent_manifest = _read(rd / "manifest.json", "run_to_resume") if (rd / "manifest.json").is_file() else None
    read_inputs_record(rd)  # the manifest reads it at the end: a forged one is refused now, before any write

    drawn = False
    if seed is None and r.set_seed == "random_seed":
        rec = recorded_seed(rd)
        if rec is not None:  # the run drew this seed; its kept frames were rendered with it
            spec, drawn = with_concrete_seed(spec, draw=rec)
    ready = prepare_spec(without_resume_fields(spec), seed=seed)
    ready.seed_drawn = drawn or ready.seed_drawn
    video_spec = ready.spec
    if ready.spec.animation.animation_mode == "Video Input":
        ready.spec = prepare_video_input(ready.spec, rd, access, resume=True, write=False)
        ready.document = spec_to_document(ready.spec)
    plan, doc = resolve_plan(ready.spec), ready.document

    parent = _parent_result(rd, parent_doc)
    journal = Journal(result=parent, selected=list(range(parent.plan.n_items)),
                      entries={e["item"]: e for e in read_entries(rd)}, resumed=True)
    first_missing = 0
    while first_missing < min(parent.plan.n_items, plan.n_items):
        if journal.verified_records(parent.plan.items[first_missing], restore=False) is None:  # a check: no write
            break
        first_missing += 1
    n = first_missing if r.resume_from_frame == "latest" else int(r.resume_from_frame)
    if n > first_missing:
        raise _bad("resume_from_frame", f"{n} is past what {rd.name} holds intact: frames 0–{first_missing - 1} "
                   f"(use {first_missing} or 'latest')" if first_missing else
                   f"{n} is past what {rd.name} holds intact: it has no finished frame (use 0 or 'latest')")
    why = _first_plan_difference(parent.plan, plan, n)
    if why is not None:
        raise _bad("resume_from_frame", f"frames before {n} are kept from {rd.name}, but {why}; resume from that "
                   "frame or earlier, or render a new run")

    kept = {i: journal.entries[i] for i in range(n)}
    retained: list[dict[str, str]] = []
    new_result = SimpleNamespace(run_dir=rd, spec_document=doc, plan=plan)

    def commit() -> None:
        """The branch's writes, once every check passed (run.request.ResumeInfo.commit)."""
        for i, entry in sorted(journal.entries.items()):
            if i < n:
                continue
            for f in entry.get("files", []):
                if r.retain_overwritten_frames and f.get("kind") in ("image", "vr_eye"):
                    moved = _move_to_retained(rd, f["path"])
                    if moved is not None:
                        retained.append({"path": f["path"], "retained_as": moved})
        # The kept frames' pixels were verified above; write their text chunks for the new spec.
        new_sha: dict[str, str] = {}
        for i, entry in kept.items():
            item = plan.items[i]
            for f in entry["files"]:
                if f["kind"] in ("image", "vr_eye"):
                    with open_image_bounded(rd / f["path"]) as im:
                        img = im.convert("RGB")
                    write_png_atomic(img, rd / f["path"], png_metadata(new_result, item))
                    new_sha[f["path"]] = file_sha256(rd / f["path"])
        for entry in kept.values():
            for f in entry["files"]:
                f["sha256"] = new_sha.get(f["path"], f["sha256"])
            for s in (entry.get("state") or {}).values():
                s["sha256"] = new_sha.get(s["path"], s["sha256"])
        journal.rewrite(kept.values())

    branch = {
        "parent_manifest_id": (parent_manifest or {}).get("id"),
        "from_frame": n,
        "changes": [{"field": loc, "change": msg} for loc, msg in document_differences(parent_doc, doc)],
        "retained": retained,
    }
    recorded = {"weights": (parent_state or {}).get("weights") or []} if parent_state else None
    info = ResumeInfo(run_dir=rd, recorded_state=recorded, items=None)
    if plan.animation_mode == "Video Input":  # missing or damaged extracted frames: re-extracted, checked
        info.pending_writes.append(lambda: prepare_video_input(video_spec, rd, access, resume=True))
    info.pending_writes.append(commit)
    return ready, plan, info, branch
