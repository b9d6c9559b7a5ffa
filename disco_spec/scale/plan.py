"""Expanding a sweep into cells: `plan_sweep` applies every combination of the axes' values (grid), or
their i-th values together (zip), to the spec and validates each variant, blaming an invalid one on the
`--set` keys that made it; the resulting `SweepPlan` knows its cells' spec documents, the grid's shape
and the contact-sheet layout of the cells, and `cells_table` shows them for --dry-run.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import SpecError
from .keys import MODES, Axis, bad_key, spec_leaves, load_sweep_file, parse_set

MAX_CELLS = 10000


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
# Expanding
# ---------------------------------------------------------------------------------------------


def set_path(doc: dict[str, Any], path: str, value: Any, key: str) -> None:
    """Set the dotted `path` in a spec document (tables made on the way; a prompt list becomes its {0: list} form)."""
    parts = path.split(".")
    cur = doc
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        if isinstance(nxt, list) and ".".join(parts[: i + 1]) in spec_leaves():  # a prompt list: the {0: list} form
            nxt = cur[part] = {"0": nxt}
        if not isinstance(nxt, dict):
            raise bad_key(key, f"{'.'.join(parts[: i + 1])} is not a table")
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
    from ..plan.resolve import with_concrete_seed
    from ..spec.load import load_spec, spec_to_document, validate_document
    from ..spec.models import JobSpec

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
            raise bad_key(a.key, f"{a.path} is swept twice (also as {seen[a.path]!r})")
        seen[a.path] = a.key
    if mode == "zip":
        lengths = {a.key: len(a.values) for a in axes}
        if len(set(lengths.values())) > 1:
            raise SpecError("--zip", [("--zip", "every key needs the same number of values in zip mode (got "
                                       + ", ".join(f"{k}: {n}" for k, n in lengths.items()) + ")")])
        coords_list = [tuple([i] * len(axes)) for i in range(len(axes[0].values))]
    else:
        count = math.prod(len(a.values) for a in axes)  # counted before a cell is built (4 keys x 100 = 10^8)
        if count > MAX_CELLS:
            raise SpecError("--set", [("--set", f"{count} cells is more than {MAX_CELLS}")])
        coords_list = list(itertools.product(*(range(len(a.values)) for a in axes)))
    if len(coords_list) > MAX_CELLS:
        raise SpecError("--set", [("--set", f"{len(coords_list)} cells is more than {MAX_CELLS}")])

    width = max(2, len(str(len(coords_list) - 1)))
    cells, problems = [], []
    for index, coords in enumerate(coords_list):
        doc = copy.deepcopy(base_doc)
        chosen = [(a, a.values[i], a.labels[i]) for a, i in zip(axes, coords)]
        for a, value, _ in chosen:
            set_path(doc, a.path, value, a.key)
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


def cells_table(plan: SweepPlan) -> str:
    """A text table of the cells (for --dry-run)."""
    rows = [["cell"] + [a.key for a in plan.axes] + ["spec sha256"]]
    from ..record.manifest import spec_sha256

    for c in plan.cells:
        rows.append([c.name] + [c.labels[a.key] for a in plan.axes] + [spec_sha256(c.document)[:16]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)
