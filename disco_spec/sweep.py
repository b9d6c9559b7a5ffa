"""Parameter sweeps: one spec, a grid (or zip) of variants, one run folder and MLflow child run per cell.

    disco-spec sweep specs/smoke.toml --set clip_guidance_scale=1500,5000,10000 --set steps=100,250

Keys are DD's field names, unqualified when the name is unique in the spec (`clip_guidance_scale` is
`guidance.clip_guidance_scale`, `steps` is `diffusion.steps`), or dotted paths (`guidance.tv_scale`,
`prompts.text_prompts`). Values are separated by commas outside brackets and quotes, and each is read
as a TOML value (`1500`, `0.5`, `true`, `"ddim"`, `[64, 128]`, `{0 = ["a cat"]}`); a value that is not
TOML is a string (`plms`, `60%`). Each variant is validated like a spec file: a bad key or value is a
SpecError (exit 2) naming `--set KEY`, with a "did you mean" for unknown keys.

A sweep file holds the same in TOML or JSON (`--sweep-file sweep.toml`):

    mode = "grid"                      # or "zip": the i-th values of every key together
    [set]
    clip_guidance_scale = [1500, 5000, 10000]
    steps = [100, 250]
    "guidance.tv_scale" = [0, 150]     # dotted paths as quoted keys

Grid cells are numbered in row-major order (the first key changes slowest). Every cell renders with
the same seed: the spec's `set_seed` (or `--seed`); a 'random_seed' spec draws one seed for the whole
sweep, unless `set_seed` itself is swept.

Layout on disk, under `{out}/{batch_name}/sweep-NNNN/`:

    sweep.json            cells, their overrides and labels, manifest ids, output SHA-256s (atomic)
    contact_sheet.png     one image per cell; rows = the first key's values, columns = the others'
    cell-00/, cell-01/    each a normal run folder (spec.json, plan.json, images, manifest.json): any
                          cell can be rebuilt alone with `disco-spec rebuild <sweep dir>/cell-03`
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import SpecError

SWEEP_VERSION = 1
SWEEP_JSON = "sweep.json"
CONTACT_SHEET = "contact_sheet.png"
MODES = ("grid", "zip")
MAX_CELLS = 10000

__all__ = [
    "Axis", "Cell", "CellResult", "SweepPlan", "SweepResult", "allocate_sweep_dir", "load_sweep_file",
    "parse_set", "plan_sweep", "resolve_key", "run_sweep", "split_values",
]


@dataclass(frozen=True)
class Axis:
    key: str  # as the user wrote it (`--set KEY`)
    path: str  # dotted path in the spec document
    values: tuple[Any, ...]
    labels: tuple[str, ...]  # how each value is shown (contact sheet, sweep.json, MLflow)


@dataclass(frozen=True)
class Cell:
    index: int
    name: str  # cell-00, cell-01, ...
    coords: tuple[int, ...]  # index of the value of each axis
    overrides: dict[str, Any]  # dotted path -> value
    labels: dict[str, str]  # key -> label
    document: dict[str, Any]  # the full spec document (defaults filled in, concrete seed)

    def caption(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.labels.items())


@dataclass
class SweepPlan:
    base_document: dict[str, Any]
    mode: str
    axes: list[Axis]
    cells: list[Cell]
    spec_path: str | None = None
    spec_dir: str | None = None
    seed_drawn: bool = False

    @property
    def batch_name(self) -> str:
        return str(self.base_document["run"]["batch_name"])

    @property
    def name(self) -> str:
        return str(self.base_document.get("name") or self.batch_name)

    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes) if self.mode == "grid" else (len(self.cells),)

    def layout(self) -> dict[str, Any]:
        """Contact-sheet layout: row/column titles and labels, and each cell's (row, column)."""
        if self.mode == "grid" and len(self.axes) >= 2:
            first, rest = self.axes[0], self.axes[1:]
            cols = [", ".join(parts) for parts in itertools.product(*(a.labels for a in rest))]
            widths = [len(a.values) for a in rest]
            pos = {}
            for c in self.cells:
                col = 0
                for w, i in zip(widths, c.coords[1:]):
                    col = col * w + i
                pos[c.index] = (c.coords[0], col)
            return {"row_title": first.key, "col_title": ", ".join(a.key for a in rest),
                    "rows": list(first.labels), "cols": cols, "positions": pos}
        if self.mode == "grid":
            (axis,) = self.axes
            return {"row_title": "", "col_title": axis.key, "rows": [""], "cols": list(axis.labels),
                    "positions": {c.index: (0, c.coords[0]) for c in self.cells}}
        single = len(self.axes) == 1
        return {"row_title": "", "col_title": self.axes[0].key if single else ", ".join(a.key for a in self.axes),
                "rows": [""], "cols": [", ".join(c.labels.values()) for c in self.cells],
                "positions": {c.index: (0, c.index) for c in self.cells}}


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _leaves() -> dict[str, Any]:
    """Every leaf field of the spec: dotted path -> pydantic FieldInfo."""
    from pydantic import BaseModel

    from .spec.models import JobSpec

    out: dict[str, Any] = {}

    def walk(cls: type, prefix: str) -> None:
        for name, info in cls.model_fields.items():
            key = info.alias or name
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = info

    walk(JobSpec, "")
    return out


def _by_name() -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for path in _leaves():
        index.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    return index


def _accepts_table(path: str) -> bool:
    return "dict[" in str(_leaves()[path].annotation)


def _bad_key(key: str, msg: str) -> SpecError:
    return SpecError(f"--set {key}: {msg}", [(f"--set {key}", msg)])


def resolve_key(key: str) -> str:
    """The dotted path of a sweep key: a leaf path, a path into a table-valued field, or a unique name."""
    key = key.strip()
    leaves = _leaves()
    if not key:
        raise _bad_key(key, "empty key (write KEY=VALUE1,VALUE2,...)")
    if key in leaves:
        return key
    for path in leaves:
        if key.startswith(path + ".") and _accepts_table(path):
            return key
    index = _by_name()
    if "." not in key and key in index:
        paths = index[key]
        if len(paths) == 1:
            return paths[0]
        raise _bad_key(key, f"{key!r} is ambiguous; write one of {', '.join(repr(p) for p in paths)}")
    names = list(index) + list(leaves)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if "." in key and key.split(".", 1)[0] in {p.split(".", 1)[0] for p in leaves}:
        section = key.split(".", 1)[0]
        close = close or difflib.get_close_matches(key, [p for p in leaves if p.startswith(section + ".")], n=1,
                                                   cutoff=0.4)
    if close:
        target = close[0]
        where = target if "." in target else " or ".join(index[target])
        hint = f"did you mean {target!r}" + (f" ({where})" if where != target else "") + "?"
        return_msg = f"unknown key {key!r}; {hint}"
    else:
        return_msg = f"unknown key {key!r} (a spec field name such as 'clip_guidance_scale' or a dotted path)"
    raise _bad_key(key, return_msg)


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def split_values(text: str) -> list[str]:
    """Split at commas outside brackets, braces, parentheses and quotes: '[1, 2],[3, 4]' -> 2 values."""
    parts, buf, depth, quote = [], [], 0, ""
    closing = {")": "(", "]": "[", "}": "{"}
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                buf.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            buf.append(ch)
        elif ch in "([{":
            depth += 1
            buf.append(ch)
        elif ch in closing:
            depth = max(0, depth - 1)
            buf.append(ch)
        elif ch == "," and depth == 0:
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf).strip())
    return parts


_NOT_TOML = object()


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, KeyError):
        return _NOT_TOML


@lru_cache(maxsize=None)
def _adapter(path: str) -> Any:
    """A strict pydantic validator for the field at `path` (None when the type cannot have one)."""
    from typing import Annotated

    from pydantic import ConfigDict, TypeAdapter

    info = _leaves().get(path)
    if info is None:
        return None
    try:
        ann = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        return TypeAdapter(ann, config=ConfigDict(strict=True))
    except Exception:  # noqa: BLE001 - e.g. a model type that carries its own config: no pre-selection
        try:
            return TypeAdapter(info.annotation)
        except Exception:  # noqa: BLE001
            return None


def parse_value(path: str, text: str) -> Any:
    """A command-line value for the field at `path`: TOML when it reads as TOML and fits the field's
    type, else the text itself (strings need no quotes); `null` is None."""
    candidates = []
    parsed = _toml_value(text)
    if parsed is not _NOT_TOML:
        candidates.append(parsed)
    if text == "null":
        candidates.append(None)
    if not (len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'"):
        candidates.append(text)
    adapter = _adapter(path)
    if adapter is not None:
        for c in candidates:
            try:
                adapter.validate_python(c)
                return c
            except Exception:  # noqa: BLE001 - not this reading; the next one, or the spec's own error
                continue
    return candidates[0] if candidates else text


def _label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def parse_set(arg: str) -> Axis:
    """`KEY=V1,V2,...` -> an Axis (values parsed for the field's type)."""
    key, sep, rest = arg.partition("=")
    key = key.strip()
    if not sep:
        raise _bad_key(key or arg, f"expected KEY=VALUE1,VALUE2,... (got {arg!r})")
    path = resolve_key(key)
    texts = split_values(rest)
    if any(t == "" for t in texts):
        raise _bad_key(key, f"empty value in {rest!r} (values are separated by commas; quote strings that contain one)")
    values = tuple(parse_value(path, t) for t in texts)
    return Axis(key=key, path=path, values=values, labels=tuple(_unquote(t) for t in texts))


def load_sweep_file(path: str | os.PathLike) -> tuple[str | None, list[Axis]]:
    """(mode or None, axes) from a TOML/JSON sweep file: {mode = "grid"|"zip", set = {KEY = [values]}}."""
    from .spec.load import read_document

    p = Path(path)
    doc = read_document(p)
    where = f"--sweep-file {p}"
    unknown = sorted(set(doc) - {"mode", "set"})
    if unknown:
        raise SpecError(where, [(f"{where}: {k}", "unknown key (a sweep file has `mode` and a `set` table)")
                                for k in unknown])
    mode = doc.get("mode")
    if mode is not None and mode not in MODES:
        raise SpecError(where, [(f"{where}: mode", f"must be 'grid' or 'zip' (got {mode!r})")])
    table = doc.get("set")
    if not isinstance(table, dict) or not table:
        raise SpecError(where, [(f"{where}: set", "needs a `set` table: KEY = [value, value, ...]")])
    axes = []
    for key, values in table.items():
        path_ = resolve_key(str(key))
        if not isinstance(values, list) or not values:
            raise SpecError(where, [(f"--set {key}", f"in {p}: must be a non-empty list of values (got {values!r})")])
        axes.append(Axis(key=str(key), path=path_, values=tuple(values), labels=tuple(_label(v) for v in values)))
    return mode, axes


# ---------------------------------------------------------------------------------------------
# Expanding
# ---------------------------------------------------------------------------------------------


def _set_path(doc: dict[str, Any], path: str, value: Any, key: str) -> None:
    parts = path.split(".")
    cur = doc
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        if isinstance(nxt, list) and ".".join(parts[: i + 1]) in _leaves():  # a prompt list: the {0: list} form
            nxt = cur[part] = {"0": nxt}
        if not isinstance(nxt, dict):
            raise _bad_key(key, f"{'.'.join(parts[: i + 1])} is not a table")
        cur = nxt
    cur[parts[-1]] = copy.deepcopy(value)


def _blame(problems: list[tuple[str, str]], cell_axes: list[tuple[Axis, Any, str]]) -> list[tuple[str, str]]:
    """Re-address a variant's validation problems to the --set keys that produced them."""
    out = []
    for loc, msg in problems:
        mine = [(a, lab) for a, _, lab in cell_axes if loc == a.path or loc.startswith(a.path + ".")
                or loc.startswith(a.path + "[") or a.path.startswith(loc + ".")]
        if mine:
            for a, lab in mine:
                out.append((f"--set {a.key}", f"value {lab!r}: {msg}"))
        else:  # a cross-field rule: every key of the cell may be the cause
            keys = ", ".join(f"{a.key}={lab}" for a, _, lab in cell_axes)
            out.append((f"--set {' / --set '.join(a.key for a, _, _ in cell_axes)}",
                        f"the variant {keys} is invalid: {loc}: {msg}"))
    return out


def plan_sweep(
    spec: Any,
    sets: Sequence[str | Axis] = (),
    *,
    mode: str | None = None,
    sweep_file: str | os.PathLike | None = None,
    seed: int | None = None,
) -> SweepPlan:
    """Expand a spec (a path, a JobSpec or a document) and `--set` arguments into validated cells."""
    from .plan import with_concrete_seed
    from .spec.load import load_spec, spec_to_document, validate_document
    from .spec.models import JobSpec

    spec_path = spec_dir = None
    if isinstance(spec, JobSpec):
        base = spec
    elif isinstance(spec, Mapping):
        base = validate_document(dict(spec))
    else:
        base = load_spec(spec)
        spec_path = str(spec)
        spec_dir = str(Path(spec).resolve().parent)
    if seed is not None:
        if not 0 <= seed < 2**32:
            raise SpecError("--seed", [("--seed", f"must be between 0 and 4294967295 (got {seed})")])
        base = base.model_copy(update={"run": base.run.model_copy(update={"set_seed": seed})})
    base, drawn = with_concrete_seed(base)
    base_doc = spec_to_document(base)

    axes: list[Axis] = []
    file_mode = None
    if sweep_file is not None:
        file_mode, axes = load_sweep_file(sweep_file)
    axes += [s if isinstance(s, Axis) else parse_set(s) for s in sets]
    mode = mode or file_mode or "grid"
    if mode not in MODES:
        raise SpecError("--zip", [("--zip", f"mode must be 'grid' or 'zip' (got {mode!r})")])
    if not axes:
        raise SpecError("--set", [("--set", "nothing to sweep: give --set KEY=VALUE1,VALUE2,... or --sweep-file")])
    seen: dict[str, str] = {}
    for a in axes:
        if a.path in seen:
            raise _bad_key(a.key, f"{a.path} is swept twice (also as {seen[a.path]!r})")
        seen[a.path] = a.key
    if mode == "zip":
        lengths = {a.key: len(a.values) for a in axes}
        if len(set(lengths.values())) > 1:
            raise SpecError("--zip", [("--zip", "every key needs the same number of values in zip mode (got "
                                       + ", ".join(f"{k}: {n}" for k, n in lengths.items()) + ")")])
        coords_list = [tuple([i] * len(axes)) for i in range(len(axes[0].values))]
    else:
        coords_list = list(itertools.product(*(range(len(a.values)) for a in axes)))
    if len(coords_list) > MAX_CELLS:
        raise SpecError("--set", [("--set", f"{len(coords_list)} cells is more than {MAX_CELLS}")])

    width = max(2, len(str(len(coords_list) - 1)))
    cells, problems = [], []
    for index, coords in enumerate(coords_list):
        doc = copy.deepcopy(base_doc)
        chosen = [(a, a.values[i], a.labels[i]) for a, i in zip(axes, coords)]
        for a, value, _ in chosen:
            _set_path(doc, a.path, value, a.key)
        try:
            cell_spec, _ = with_concrete_seed(validate_document(doc))  # a swept 'random_seed' is drawn here
        except SpecError as exc:
            for p in _blame(exc.problems or [("", str(exc))], chosen):
                if p not in problems:
                    problems.append(p)
            continue
        cells.append(Cell(index=index, name=f"cell-{index:0{width}d}", coords=tuple(coords),
                          overrides={a.path: v for a, v, _ in chosen}, labels={a.key: lab for a, _, lab in chosen},
                          document=spec_to_document(cell_spec)))
    if problems:
        raise SpecError("; ".join(f"{loc}: {msg}" for loc, msg in problems), problems)
    return SweepPlan(base_document=base_doc, mode=mode, axes=axes, cells=cells, spec_path=spec_path,
                     spec_dir=spec_dir, seed_drawn=drawn)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


@dataclass
class CellResult:
    cell: Cell
    run_dir: Path
    manifest_id: str | None
    outputs: list[dict[str, Any]]  # {path, kind, item, sha256, bytes}
    sheet_image: str | None  # the output shown on the contact sheet
    mlflow_run_id: str | None = None


@dataclass
class SweepResult:
    sweep_dir: Path
    plan: SweepPlan
    cells: list[CellResult] = field(default_factory=list)
    contact_sheet: Path | None = None
    backend: str = "local"
    parent_run_id: str | None = None
    tracking_failure: str | None = None

    @property
    def sweep_json(self) -> Path:
        return self.sweep_dir / SWEEP_JSON


def allocate_sweep_dir(out: str | os.PathLike, batch_name: str) -> Path:
    """Reserve the next free `sweep-NNNN` folder under {out}/{batch_name} (mkdir, so never shared)."""
    from .render import allocate_numbered_dir

    return allocate_numbered_dir(Path(out) / batch_name, "sweep-")


def sheet_output(result: Any) -> str | None:
    """The output shown for a cell: item 0's image for stills, the last frame for animations."""
    images = [o for o in result.outputs if o.kind == "image"]
    if not images:
        return None
    plan = result.plan
    wanted = plan.items[-1].output if plan.animation_mode != "None" else plan.items[0].output
    return next((o.path for o in images if o.path == wanted), images[0].path)


def sweep_document(plan: SweepPlan, sweep_dir: Path, cells: Mapping[int, CellResult], *, status: str,
                   backend: str, parent_run_id: str | None, tracking_uri: str | None) -> dict[str, Any]:
    from .manifest import spec_sha256

    layout = plan.layout()
    out_cells = []
    for c in plan.cells:
        r = cells.get(c.index)
        out_cells.append({
            "index": c.index, "name": c.name, "coords": list(c.coords), "row": layout["positions"][c.index][0],
            "column": layout["positions"][c.index][1], "overrides": c.overrides, "labels": c.labels,
            "run_dir": c.name, "spec_sha256": spec_sha256(c.document),
            "manifest_id": r.manifest_id if r else None, "outputs": r.outputs if r else [],
            "contact_sheet_image": r.sheet_image if r else None, "mlflow_run_id": r.mlflow_run_id if r else None,
        })
    return {
        "sweep_version": SWEEP_VERSION,
        "status": status,
        "spec": plan.spec_path,
        "spec_dir": plan.spec_dir,
        "base_spec_sha256": spec_sha256(plan.base_document),
        "base_seed": plan.base_document["run"]["set_seed"],
        "seed_drawn": plan.seed_drawn,
        "mode": plan.mode,
        "shape": list(plan.shape()),
        "axes": [{"key": a.key, "path": a.path, "values": list(a.values), "labels": list(a.labels)} for a in plan.axes],
        "layout": {k: layout[k] for k in ("row_title", "col_title", "rows", "cols")},
        "backend": backend,
        "cells": out_cells,
        "contact_sheet": CONTACT_SHEET if status == "finished" else None,
        "mlflow": {"parent_run_id": parent_run_id, "tracking_uri": tracking_uri} if parent_run_id else None,
        "sweep_dir": str(sweep_dir.resolve()),
    }


def write_sweep_json(path: Path, doc: dict[str, Any]) -> None:
    from .render import write_text_atomic

    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def run_sweep(
    plan: SweepPlan,
    out: str | os.PathLike = "images_out",
    *,
    backend: str = "local",
    address: str | None = None,
    tracker: Any = None,
    progress: bool = False,
    ship_files: bool | None = None,
    on_cell: Callable[[CellResult], None] | None = None,
    sweep_dir: str | os.PathLike | None = None,
) -> SweepResult:
    """Render every cell (backends.run_jobs), then write the contact sheet and sweep.json.

    `tracker`: a disco_spec.sweep_tracking.SweepTracker (None: no MLflow): a parent run for the sweep,
    a child run per cell (logged in this process from the cell's results), the contact sheet and the
    cells table on the parent.
    """
    from .backends import Job, check_backend, run_jobs
    from .contact_sheet import save_png, sweep_contact_sheet

    check_backend(backend, address)
    if sweep_dir is None:
        sd = allocate_sweep_dir(out, plan.batch_name)
    else:
        sd = Path(sweep_dir)
        sd.mkdir(parents=True, exist_ok=True)
    sd = sd.resolve()
    result = SweepResult(sweep_dir=sd, plan=plan, backend=backend)
    done: dict[int, CellResult] = {}
    by_name = {c.name: c for c in plan.cells}

    def snapshot(status: str) -> None:
        write_sweep_json(sd / SWEEP_JSON, sweep_document(
            plan, sd, done, status=status, backend=backend, parent_run_id=result.parent_run_id,
            tracking_uri=getattr(tracker, "tracking_uri", None)))

    if tracker is not None:
        tracker.start(plan, sd, backend)
        result.parent_run_id = tracker.parent_run_id
    snapshot("running")

    def finished(r: Any) -> None:
        cell = by_name[r.job.label]
        outputs = [{"path": o.path, "kind": o.kind, "item": o.item_index, "sha256": o.sha256, "bytes": o.bytes}
                   for o in r.result.outputs]
        cr = CellResult(cell=cell, run_dir=Path(r.job.run_dir), manifest_id=r.manifest_id, outputs=outputs,
                        sheet_image=sheet_output(r.result))
        if tracker is not None:
            cr.mlflow_run_id = tracker.log_cell(cell, r)
        done[cell.index] = cr
        if on_cell is not None:
            on_cell(cr)

    jobs = [Job(spec_document=c.document, run_dir=str(sd / c.name), spec_dir=plan.spec_dir, label=c.name,
                seed_drawn=plan.seed_drawn) for c in plan.cells]
    try:
        run_jobs(jobs, backend, address, progress=progress, ship_files=ship_files, on_result=finished)
        result.cells = [done[c.index] for c in plan.cells]
        images = {c.index: (done[c.index].run_dir / done[c.index].sheet_image if done[c.index].sheet_image else None)
                  for c in plan.cells}
        save_png(sweep_contact_sheet(plan, images), sd / CONTACT_SHEET)
        result.contact_sheet = sd / CONTACT_SHEET
        snapshot("finished")
    except BaseException:
        snapshot("failed")
        if tracker is not None:
            tracker.finish(sd, status="FAILED")
        raise
    if tracker is not None:
        tracker.finish(sd, status="FINISHED")
        result.tracking_failure = tracker.failure
    return result


def cells_table(plan: SweepPlan) -> str:
    """A text table of the cells (for --dry-run)."""
    rows = [["cell"] + [a.key for a in plan.axes] + ["spec sha256"]]
    from .manifest import spec_sha256

    for c in plan.cells:
        rows.append([c.name] + [c.labels[a.key] for a in plan.axes] + [spec_sha256(c.document)[:16]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def iter_cell_dirs(sweep_dir: str | os.PathLike) -> Iterable[Path]:
    """The cell run folders of a finished sweep, in cell order (from sweep.json)."""
    sd = Path(sweep_dir)
    doc = json.loads((sd / SWEEP_JSON).read_text(encoding="utf-8"))
    return [sd / c["run_dir"] for c in doc["cells"]]
