"""One-off overrides for a single render: `render --set KEY=VALUE` (repeatable).

The key and value are read exactly as `sweep --set` reads them (disco_spec.scale.keys: a DD field name or a
dotted path, a TOML value or bare text), but each key takes one value. The overrides are applied to the
spec document as written, before validation, so `--set steps=300` can also repair a file whose skip_steps
needed more steps; the result is an ordinary spec, so the run's spec.json and manifest record the overridden
values like any other setting. A bad key or value is a SpecError naming `--set KEY` (exit 2).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import SpecError
from .keys import Axis, bad_key, spec_leaves, parse_set
from .plan import set_path


def parse_overrides(sets: Sequence[str]) -> list[Axis]:
    """`KEY=VALUE` arguments -> one-value axes; a key given twice or with several values is refused."""
    axes: list[Axis] = []
    seen: dict[str, str] = {}
    for arg in sets:
        axis = parse_set(arg)
        if len(axis.values) != 1:
            raise bad_key(axis.key, f"takes one value (got {len(axis.values)}: {', '.join(axis.labels)}); quote a "
                                     "string that contains a comma, or use `disco-spec sweep --set` to try several")
        if axis.path in seen:
            raise bad_key(axis.key, f"{axis.path} is set twice (also as {seen[axis.path]!r})")
        seen[axis.path] = axis.key
        axes.append(axis)
    return axes


def _table_field(path: str) -> str | None:
    """For a path into a table-valued field (prompts.text_prompts.100), that field's path."""
    return next((leaf for leaf in spec_leaves() if path.startswith(leaf + ".")), None)


def apply_overrides(document: dict[str, Any], axes: Sequence[Axis]) -> dict[str, Any]:
    """A copy of `document` with each axis' value set at its path.

    A path into a table the document leaves at its default (e.g. a new prompt frame) starts from that
    default, as `sweep --set` does, so the other frames keep their prompts."""
    doc = copy.deepcopy(document)
    for axis in axes:
        table = _table_field(axis.path)
        if table is not None:
            section, name = table.split(".", 1) if "." in table else ("", table)
            holder = doc.setdefault(section, {}) if section else doc
            if isinstance(holder, dict) and name not in holder:
                holder[name] = copy.deepcopy(_default_document()[section][name] if section else _default_document()[name])
        set_path(doc, axis.path, axis.values[0], axis.key)
    return doc


def _default_document() -> dict[str, Any]:
    from ..spec.load import spec_to_document
    from ..spec.models import JobSpec

    return spec_to_document(JobSpec(schema_version=1))


def _blame(problems: list[tuple[str, str]], axes: Sequence[Axis], base_valid: bool) -> list[tuple[str, str]]:
    """Address each problem to the --set key whose path it is at; when the file alone is valid, the others
    (cross-field rules) are caused by the overrides too, so they name every key."""
    out = []
    every = " / ".join(f"--set {a.key}" for a in axes)
    for loc, msg in problems:
        mine = [a for a in axes if loc == a.path or loc.startswith((a.path + ".", a.path + "["))
                or a.path.startswith(loc + ".")]
        if mine:
            out += [(f"--set {a.key}", f"value {a.labels[0]!r}: {msg}") for a in mine]
        elif base_valid:
            out.append((every, f"with {', '.join(f'{a.key}={a.labels[0]}' for a in axes)}: {loc}: {msg}"))
        else:
            out.append((loc, msg))
    return out


def spec_with_overrides(spec_path: str | os.PathLike, sets: Sequence[str]) -> Any:
    """Read the spec file, apply `--set KEY=VALUE` overrides, validate: the JobSpec to render."""
    from ..spec.load import check_version, read_document

    document = read_document(Path(spec_path))
    check_version(document)
    return document_with_overrides(document, sets)


def document_with_overrides(document: dict[str, Any], sets: Sequence[str]) -> Any:
    """Apply `--set KEY=VALUE` overrides to a spec document (a file's, or the one a PNG carries), validate:
    the JobSpec to render. Problems name the `--set` key that caused them (exit 2)."""
    from ..spec.load import validate_document

    axes = parse_overrides(sets)
    try:
        return validate_document(apply_overrides(document, axes))
    except SpecError as exc:
        try:
            validate_document(document)
            base_valid = True
        except SpecError:
            base_valid = False
        problems = _blame(exc.problems or [("", str(exc))], axes, base_valid)
        raise SpecError("; ".join(f"{loc}: {msg}" for loc, msg in problems), problems) from None
