"""`render --resume`: choose the run to continue and refuse it when the spec, the plan or an input changed.

What was recorded is read from the run's journal (run.journal); the render then continues from it.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import SpecError
from .request import PreparedRun, RenderRequest, ResumeInfo, select_items

if TYPE_CHECKING:
    from ..plan.resolve import Plan
    from ..spec.access import InputPolicy
    from ..spec.models import JobSpec
    from .prepare import PreparedSpec
from ..record.ids import spec_sha256
from .journal import RUN_JSON_BYTES, RUN_STATE


def latest_run_dir(out: str | os.PathLike, batch_name: str) -> Path:
    base = Path(out) / batch_name
    runs = sorted((int(p.name[4:]), p) for p in base.glob("run-*") if p.name[4:].isdigit() and p.is_dir())
    if not runs:
        raise SpecError(
            f"--resume: no run of batch {batch_name!r} under {base}",
            [("--resume", f"no run of batch {batch_name!r} to resume under {base} (render it first, or pass --run-dir)")],
        )
    return runs[-1][1]


def _read_json(path: Path) -> Any | None:
    """A JSON file of the run folder (None when absent), through the one bounded reader (exit 2 naming it)."""
    from ..spec.untrusted_json import read_file

    if not os.path.lexists(path):
        return None
    doc = read_file(path, max_bytes=RUN_JSON_BYTES)
    if not isinstance(doc, dict):
        why = f"not what disco-spec writes there (a JSON object; got a {type(doc).__name__})"
        raise SpecError(f"--resume: {path}: {why}", [(str(path), why)])
    if path.name == RUN_STATE and not (doc.get("items") is None or (
            isinstance(doc["items"], list) and all(type(i) is int for i in doc["items"]))):
        why = "its `items` is not a list of item numbers (not what disco-spec writes)"
        raise SpecError(f"--resume: {path}: {why}", [(str(path), why)])
    return doc


def _short(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def document_differences(old: Any, new: Any, path: str = "") -> list[tuple[str, str]]:
    """(field path, 'old → new') for every value that differs between two spec documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, str]] = []
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append((sub, f"added ({_short(new[k])})"))
            elif k not in new:
                out.append((sub, f"removed (was {_short(old[k])})"))
            else:
                out += document_differences(old[k], new[k], sub)
        return out
    if old != new or type(old) is not type(new):
        return [(path or "spec", f"{_short(old)} → {_short(new)}")]
    return []


def recorded_seed(run_dir: Path) -> int | None:
    doc = _read_json(run_dir / "spec.json")
    try:
        seed = doc["run"]["set_seed"] if doc else None
    except (KeyError, TypeError):
        return None
    return seed if isinstance(seed, int) else None


def prepare_resume(request: RenderRequest) -> PreparedRun:
    """Lock the run folder, load the spec as the interrupted run saw it and check it against the folder.

    The lock is held by the returned PreparedRun (render() releases it; here only on refusal). A
    'random_seed' spec reuses the seed recorded in the run's spec.json; Video Input re-uses (after
    checking) the frames the run extracted. Temp files of atomic writes a kill interrupted are removed. A
    run killed before run_state.json was written (while models loaded) resumes from scratch when its
    spec.json and plan.json match.
    """
    from ..spec.load import load_spec
    from ..spec.models import JobSpec
    from .lock import lock_run_dir, remove_stale_temps

    if isinstance(request.spec, JobSpec):
        spec, found_dir = request.spec, None
    else:
        spec, found_dir = load_spec(request.spec), str(Path(request.spec).resolve().parent)
    spec_dir = request.spec_dir or found_dir
    if request.run_dir is not None:
        rd = Path(request.run_dir)
        if not rd.is_dir():
            raise SpecError(f"--run-dir: {rd} is not a folder", [("--run-dir", f"{rd} is not a run folder")])
    else:
        rd = latest_run_dir(request.out, spec.run.batch_name)
    lock = lock_run_dir(rd)
    try:
        ready, plan, info = _check_run(spec, rd, seed=request.seed, items=request.items,
                                       access=request.trust.policy(spec_dir))
        selected = select_items(plan, info.items)
    except BaseException:
        lock.release()
        raise
    info.pending_writes.insert(0, lambda: remove_stale_temps(rd))  # after the last check
    return PreparedRun(spec=ready.spec, document=ready.document, plan=plan, selected=selected, spec_dir=spec_dir,
                       seed_drawn=ready.seed_drawn, run_dir=rd, lock=lock, resume=info)


def _check_run(spec: JobSpec, rd: Path, *, seed: int | None, items: Sequence[int] | None,
               access: InputPolicy) -> tuple[PreparedSpec, Plan, ResumeInfo]:
    from ..plan.resolve import resolve_plan, with_concrete_seed
    from .prepare import prepare_spec
    from ..spec.load import spec_to_document

    drawn = False
    if seed is None and spec.run.set_seed == "random_seed":
        rec = recorded_seed(rd)
        if rec is not None:  # the run drew this seed; resuming must use it
            spec, drawn = with_concrete_seed(spec, draw=rec)
    ready = prepare_spec(spec, seed=seed)
    ready.seed_drawn = drawn or ready.seed_drawn
    doc = ready.document
    state = _read_json(rd / RUN_STATE)
    recorded_doc = _read_json(rd / "spec.json")
    from .video_input import read_inputs_record

    read_inputs_record(rd)  # the manifest reads it at the end: a forged one is refused now, before any write
    video_spec = ready.spec
    if ready.spec.animation.animation_mode == "Video Input":
        if recorded_doc is not None:  # refuse other changes before touching the run's extracted frames
            masked = copy.deepcopy(recorded_doc)
            if isinstance(masked, dict):
                masked.setdefault("animation", {})["max_frames"] = doc["animation"]["max_frames"]
            _refuse(rd, document_differences(masked, doc))
        from .video_input import prepare_video_input

        ready.spec = prepare_video_input(ready.spec, rd, access, resume=True, write=False)
        ready.document = doc = spec_to_document(ready.spec)
    plan = resolve_plan(ready.spec)

    problems: list[tuple[str, str]] = []
    if state is None:
        # Killed before run_state.json (it is written once the models are loaded, before any image): no
        # image was journalled, so the run restarts from scratch if it is the same spec and plan.
        if recorded_doc is not None:
            problems += document_differences(recorded_doc, doc)
        recorded_plan = _read_json(rd / "plan.json")
        if not problems and recorded_plan is not None and recorded_plan != json.loads(plan.to_json()):
            problems.append(("plan", "plan.json differs from the plan of this spec: this disco-spec resolves the "
                                     "spec differently from the one that started the run"))
    elif state.get("run_state_version") == 1:  # its spec_sha256 hashed another JSON form: spec.json decides
        problems += document_differences(recorded_doc, doc) if recorded_doc is not None else [
            ("spec", "spec.json is missing and run_state.json (version 1) has no comparable spec hash")]
    elif recorded_doc is not None and (state.get("spec_sha256") != spec_sha256(doc) or recorded_doc != doc):
        diffs = document_differences(recorded_doc, doc)
        problems += diffs or [("spec", f"the spec hash changed ({state.get('spec_sha256')} → {spec_sha256(doc)})")]
    elif state.get("spec_sha256") != spec_sha256(doc):
        problems.append(("spec", f"the spec hash changed ({state.get('spec_sha256')} → {spec_sha256(doc)})"))
    if not problems and state is not None and state.get("plan_sha256") != plan.sha256():
        problems.append((
            "plan",
            f"the plan hash changed ({state.get('plan_sha256')} → {plan.sha256()}): this disco-spec resolves the "
            "spec differently from the one that started the run",
        ))
    recorded_items = state.get("items") if state is not None else None
    if not problems and items is not None and recorded_items is not None and sorted(set(items)) != recorded_items:
        problems.append(("items", f"the run rendered items {recorded_items}, not {sorted(set(items))}"))
    _refuse(rd, problems)
    info = ResumeInfo(run_dir=rd, recorded_state=state, items=recorded_items if recorded_items is not None else (
        None if items is None else sorted(set(items))))
    if plan.animation_mode == "Video Input":  # re-extract missing or damaged frames once every check passed
        info.pending_writes.append(lambda: prepare_video_input(video_spec, rd, access, resume=True))
    return ready, plan, info


def _refuse(rd: Path, problems: list[tuple[str, str]]) -> None:
    if problems:
        raise SpecError(
            f"--resume: {rd} was rendered from a different spec; refusing to mix outputs",
            [(loc, f"changed since {rd.name} started: {msg} (resume refused; render a new run instead)") for loc, msg in problems],
        )
