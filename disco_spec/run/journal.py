"""Exact resume: a run journal that lets an interrupted render continue byte-identically.

DD 5.2 resumes by counting frame files and restarting the seed sequence (disco.py:2435-2455 (DoTheRun cell),
quirks Q7, Q8): a resumed run differs from an uninterrupted one. disco-spec instead records, in the run folder:

    run_state.json   written once the models are loaded, before any image: the spec hash (the manifest's), the
                     plan hash, the items rendered and every model weight's SHA-256
    frames.jsonl     one JSON line per finished image/frame, appended (flush + fsync) after the frame's
                     files and state images are atomically in place:
                     {"item", "frame", "files": [{"path", "kind", "sha256"}], "state": {name: {"path", "sha256"}},
                      "checksums": {"x_t": [hex per step], "x0": [hex per step]}}   (engine.checksum)
    state/           the loop state a frame leaves for the next one when it is not the saved output itself
                     (turbo: `prev_frame_NNNN.png` = the unblended diffusion result / new warp,
                     `old_warp_NNNN.png` = the old-warp chain), one pair per frame so that any verified
                     frame can be the starting point

`render(..., resume=True)` (CLI `render SPEC --resume [--run-dir DIR]`) picks the latest run folder of the
batch (or the one given), refuses (SpecError, exit 2) when the spec, the plan or a weight file changed, checks
every recorded file against its SHA-256 and continues: stills and Video Input frames render the missing or
bad items; 2D/3D frames continue from the first missing or bad frame with the state of the frame before it.
Every frame uses its plan seed and its own generators, so the result equals an uninterrupted render.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..atomic import atomic_write_bytes, open_append
from ..errors import SpecError
from ..hashes import bytes_sha256
from ..record.ids import spec_sha256
from ..record.manifest_schema import inside_run_dir
from .records import sha256_or_none

if TYPE_CHECKING:
    from ..plan.resolve import PlanItem
    from .records import OutputRecord, RenderResult
    from .request import ResumeInfo

RUN_STATE = "run_state.json"
FRAMES_LOG = "frames.jsonl"
STATE_DIR = "state"
# 2: `spec_sha256` is the manifest's (record.ids.spec_sha256, RFC 8785); version 1 hashed another JSON form
RUN_STATE_VERSION = 2
# Bounds on what a run folder's JSON may cost to read (spec.untrusted_json): a journal line per frame is
# under 1 KiB; 10,000 frames (MAX_FRAMES) fit many times over.
RUN_JSON_BYTES = 64 * 2**20


def weight_records(weights: Iterable[Any]) -> list[dict[str, str]]:
    return [{"role": str(w.role), "name": str(w.name), "sha256": str(w.sha256)} for w in weights]


# ---------------------------------------------------------------------------------------------
# Choosing and checking the run to resume
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# The journal
# ---------------------------------------------------------------------------------------------


def read_entries(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete, well-formed line of frames.jsonl (a torn last line is ignored, and so is any line the
    bounded reader refuses: too deep, duplicate keys, not JSON)."""
    from ..spec.untrusted_json import loads

    path = run_dir / FRAMES_LOG
    if not os.path.lexists(path):
        return []
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > RUN_JSON_BYTES:
                why = f"larger than the {RUN_JSON_BYTES} bytes a run's journal may have"
                raise SpecError(f"{path}: {why}", [(str(path), why)])
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            e = loads(line, str(path))
        except SpecError:
            continue
        if isinstance(e, dict) and isinstance(e.get("item"), int) and isinstance(e.get("files"), list) \
                and all(_inside(run_dir, f) for f in e["files"] + list((e.get("state") or {}).values())):
            entries.append(e)
    return entries


def _inside(run_dir: Path, f: Any) -> bool:
    """A journal line names files of its own run folder only (a journal handed over is input too)."""
    return isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str) \
        and inside_run_dir(run_dir, f["path"]) is not None


@dataclass
class Journal:
    result: Any  # RenderResult, or (run.branch) the parent run's folder, spec document and plan
    selected: list[int]
    entries: dict[int, dict[str, Any]] = field(default_factory=dict)  # item -> latest entry
    resumed: bool = False

    @property
    def run_dir(self) -> Path:
        return Path(self.result.run_dir)

    @classmethod
    def begin(cls, result: RenderResult, selected: Sequence[int], resume: ResumeInfo | None) -> "Journal":
        """Write run_state.json (new run) or check the recorded weights (resume); load the entries."""
        from .folders import write_text_atomic

        j = cls(result=result, selected=list(selected), resumed=resume is not None)
        state = {
            "run_state_version": RUN_STATE_VERSION,
            "spec_sha256": spec_sha256(result.spec_document),
            "plan_sha256": result.plan.sha256(),
            "items": list(selected),
            "weights": weight_records(result.weights),
            "inputs": input_records(result),
        }
        if getattr(result, "branch", None):
            state["branch"] = result.branch
        recorded = resume.recorded_state if resume is not None else None
        if recorded is not None:
            _check_weights(recorded.get("weights") or [], state["weights"], j.run_dir)
            if "inputs" in recorded:  # (journals written before inputs were recorded have none)
                _check_inputs(recorded["inputs"], state["inputs"], j.run_dir)
        if resume is not None:
            resume.commit()  # the last check passed: now the resume's (or branch's) own writes
        if recorded is not None:
            for e in read_entries(j.run_dir):
                j.entries[e["item"]] = e
        write_text_atomic(j.run_dir / RUN_STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")
        j.rewrite(j.entries.values())
        return j

    # -- entries ------------------------------------------------------------------------------

    def rewrite(self, entries: Iterable[dict[str, Any]]) -> None:
        """Replace frames.jsonl by these entries (drops a torn last line before anything is appended)."""
        from .folders import write_text_atomic

        lines = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in entries)
        write_text_atomic(self.run_dir / FRAMES_LOG, lines)

    def keep_only(self, items: Iterable[int]) -> None:
        keep = set(items)
        self.entries = {i: e for i, e in self.entries.items() if i in keep}
        self.rewrite(sorted(self.entries.values(), key=lambda e: e["item"]))

    def append(self, item: PlanItem, records: Sequence[OutputRecord], state: dict[str, str] | None = None) -> None:
        """Record a finished item: its files (as recorded) and its state images (name -> relative path)."""
        entry = {
            "item": item.index,
            "frame": item.frame,
            "files": [{"path": r.path, "kind": r.kind, "sha256": r.sha256} for r in records],
            "state": {
                name: {"path": rel, "sha256": sha256_or_none(self.run_dir / rel)} for name, rel in (state or {}).items()
            },
        }
        checksums = getattr(self.result, "step_checksums", {}).pop(item.index, None)
        if checksums:  # each step's x_t and x̂₀ checksums: where two renders part (repro.divergence)
            entry["checksums"] = checksums
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
        with open_append(self.run_dir / FRAMES_LOG) as f:  # the run folder's boundary (atomic)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.entries[item.index] = entry

    # -- verification -------------------------------------------------------------------------

    def _file_ok(self, rel: str, sha: str, item: PlanItem, kind: str, restore: bool) -> bool:
        path = self.run_dir / rel
        actual = sha256_or_none(path)
        if actual == sha:
            return True
        if actual is None or kind == "video":
            return False
        # The manifest step stamps final PNGs with extra text chunks after the run; rewriting the decoded
        # pixels with the original metadata gives back the bytes recorded when the frame finished. Encoded
        # in memory: a check (`restore=False`) writes nothing, so a refused branch leaves the run as it was.
        data = _restored_png(path, sha, self.result, item)
        if data is None:
            return False
        if restore:
            atomic_write_bytes(path, data)
        return True

    def verified_records(self, item: PlanItem, *, restore: bool = True) -> list[OutputRecord] | None:
        """The item's OutputRecords if it finished and every file is intact, else None. `restore=False`:
        only check (a PNG whose pixels give the recorded bytes counts as intact but is not rewritten)."""
        from .records import OutputRecord

        entry = self.entries.get(item.index)
        if entry is None or entry.get("frame") != item.frame:
            return None
        recs = []
        for f in entry["files"]:
            if not self._file_ok(f["path"], f["sha256"], item, f["kind"], restore):
                return None
            p = self.run_dir / f["path"]
            recs.append(OutputRecord(
                path=f["path"], sha256=f["sha256"], bytes=p.stat().st_size, kind=f["kind"], item_index=item.index,
                batch_index=item.batch_index, frame=item.frame, seed=item.seed,
            ))
        for s in (entry.get("state") or {}).values():
            if sha256_or_none(self.run_dir / s["path"]) != s["sha256"] and not self._file_ok(s["path"], s["sha256"], item, "image", restore):
                return None
        return recs

    def state_paths(self, item: PlanItem) -> dict[str, Path] | None:
        entry = self.entries.get(item.index)
        if entry is None:
            return None
        return {name: self.run_dir / s["path"] for name, s in (entry.get("state") or {}).items()}


def input_records(result: RenderResult) -> list[dict[str, Any]]:
    store = getattr(result, "inputs", None)  # run.inputs.InputStore
    return store.manifest_records() if store is not None else []


def _check_inputs(recorded: Any, now: list[dict[str, Any]], run_dir: Path) -> None:
    """Refuse to resume when an init image or image prompt is not the file the run started with."""
    if recorded == now:
        return
    before = {(r.get("field"), r.get("source")): r.get("sha256") for r in recorded if isinstance(r, dict)} \
        if isinstance(recorded, list) else {}
    problems = []
    for r in now:
        old = before.get((r["field"], r["source"]))
        if old != r["sha256"]:
            what = f"{r['source']!r} sha256 {old} → {r['sha256']}" if old else f"{r['source']!r} was not read by the run"
            problems.append((r["field"], f"changed since {run_dir.name} started: {what} (resume refused)"))
    raise SpecError(
        f"--resume: the input files differ from those of {run_dir.name}; refusing to mix outputs",
        problems or [("inputs", f"changed since {run_dir.name} started: the input files differ (resume refused)")],
    )


def _check_weights(recorded: list[dict[str, str]], now: list[dict[str, str]], run_dir: Path) -> None:
    if recorded == now:
        return
    if not isinstance(recorded, list) or not all(
            isinstance(w, dict) and all(isinstance(w.get(k), str) for k in ("role", "name", "sha256")) for w in recorded):
        why = "its `weights` are not what disco-spec writes (a list of {role, name, sha256})"
        raise SpecError(f"--resume: {run_dir / RUN_STATE}: {why}", [(str(run_dir / RUN_STATE), why)])
    problems: list[tuple[str, str]] = []
    rec_by = {(w["role"], w["name"]): w["sha256"] for w in recorded}
    now_by = {(w["role"], w["name"]): w["sha256"] for w in now}
    for key in sorted(set(rec_by) | set(now_by)):
        role, name = key
        if key not in now_by:
            problems.append((f"models.{role}", f"{name} was used by the run and is not used now"))
        elif key not in rec_by:
            problems.append((f"models.{role}", f"{name} is used now but was not used by the run"))
        elif rec_by[key] != now_by[key]:
            problems.append((f"models.{role}", f"weight {name} sha256 changed: {rec_by[key]} → {now_by[key]}"))
    if not problems:
        problems.append(("models", "the order of the model weights changed"))
    raise SpecError(
        f"--resume: the model weights differ from those of {run_dir.name}; refusing to mix outputs",
        [(loc, f"changed since {run_dir.name} started: {msg} (resume refused)") for loc, msg in problems],
    )


def _restored_png(path: Path, sha: str, result: Any, item: PlanItem) -> bytes | None:
    """The PNG's pixels encoded as the frame loop wrote them, when that gives the recorded bytes (else None)."""
    from PIL import Image

    from .images import encode_png
    from .records import png_metadata

    from ..record.image_bounds import open_image_bounded

    try:
        with open_image_bounded(path) as im:
            im.load()
            img = im.convert("RGB") if im.mode != "RGB" else im.copy()
            had_meta = any(str(k).startswith("disco-spec:") for k in getattr(im, "text", {}) or {})
    except Exception:  # noqa: BLE001 - any undecodable file is simply not taken
        return None
    for meta in ((png_metadata(result, item),) if had_meta else ()) + (None,):
        data = encode_png(img, meta)
        if bytes_sha256(data) == sha:
            return data
    return None
