"""Read a spec file (TOML or JSON), check its version, validate it, and explain problems by field path.

Every problem becomes a `SpecError` whose `problems` are `(location, message)` pairs, where location is
`FILE:LINE:COL` for syntax errors and a dotted field path for validation errors. Nothing here imports torch.
"""

from __future__ import annotations

import copy
import os
import re
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import SpecError
from . import untrusted_json
from .explain import clean_loc, fmt_loc, explain_errors
from .models import SUPPORTED_SCHEMA_VERSIONS, JobSpec

# A spec is a small text file; these bound what reading one can cost (documented in docs/security.md).
MAX_SPEC_BYTES = 16 << 20
MAX_NESTING = 64  # tables/arrays inside each other; the deepest real spec nests 4


def read_document(path: str | Path) -> dict[str, Any]:
    """Parse a TOML or JSON file into a plain dict; syntax errors carry FILE:LINE:COL."""
    path = Path(path)
    try:
        with open(path, "rb", opener=untrusted_json.nonblocking_opener) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                why = "not a plain file (a folder, pipe or device); a spec is a TOML or JSON file"
                raise SpecError(f"{path}: {why}", [(str(path), why)])
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}", [(str(path), f"cannot read: {exc.strerror or exc}")])
    if len(raw) > MAX_SPEC_BYTES:
        why = f"spec file is larger than {MAX_SPEC_BYTES} bytes (MAX_SPEC_BYTES)"
        raise SpecError(f"{path}: {why}", [(str(path), why)])
    text = untrusted_json.decode_text(raw, str(path), kind="spec")  # a BOM or a binary file named as such
    parse = _parse_json if path.suffix.lower() == ".json" else _parse_toml
    kind = "JSON" if parse is _parse_json else "TOML"
    try:
        doc = parse(text, str(path))
    except RecursionError:
        why = f"invalid {kind}: nested deeper than this reader allows (at most {MAX_NESTING} levels)"
        raise SpecError(f"{path}: {why}", [(str(path), why)]) from None
    except ValueError as exc:  # e.g. an integer past Python's int-to-text digit limit
        if isinstance(exc, SpecError):
            raise
        why = f"invalid {kind}: {exc}"
        if "digits" in str(exc) and "integer string conversion" in str(exc):
            why = f"invalid {kind}: an integer has more than {sys.get_int_max_str_digits()} digits"
        raise SpecError(f"{path}: {why}", [(str(path), why)]) from None
    check_nesting(doc, str(path))
    return doc


def check_nesting(doc: Any, where: str) -> None:
    """Refuse documents nested deeper than MAX_NESTING (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_NESTING:
            why = f"tables/arrays nested {depth} deep; at most {MAX_NESTING} levels (MAX_NESTING)"
            raise SpecError(f"{where}: {why}", [(where, why)])
        stack.extend((child, depth + 1) for child in children)


def _parse_json(text: str, where: str) -> dict[str, Any]:
    doc = untrusted_json.loads(text, where, max_depth=MAX_NESTING)  # duplicate keys refused, as TOML does
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: a spec must be a JSON object", [(where, "a spec must be a JSON object (got a " + type(doc).__name__ + ")")])
    return doc


_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        if m:
            loc = f"{where}:{m.group(1)}:{m.group(2)}"
            msg = msg[: m.start()]
        elif "(at end of document)" in msg:
            lines = text.splitlines() or [""]
            loc = f"{where}:{len(lines)}:{len(lines[-1]) + 1}"
            msg = msg.replace("(at end of document)", "").strip()
        else:
            loc = where
        raise SpecError(f"{loc}: invalid TOML: {msg}", [(loc, f"invalid TOML: {msg}")])


def check_version(doc: dict[str, Any]) -> None:
    """Refuse documents from another spec version before validating their fields."""
    readable = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
    if "schema_version" not in doc:
        raise SpecError(
            "schema_version: missing",
            [("schema_version", f"missing; add `schema_version = 1` (this build reads versions {readable})")],
        )
    v = doc["schema_version"]
    if isinstance(v, bool) or not isinstance(v, int):
        raise SpecError(
            "schema_version: not an integer",
            [("schema_version", f"must be an integer (got {v!r}; this build reads versions {readable})")],
        )
    if v not in SUPPORTED_SCHEMA_VERSIONS:
        newer = " (written by a newer disco-spec; upgrade it)" if v > max(SUPPORTED_SCHEMA_VERSIONS) else ""
        raise SpecError(
            f"schema_version: unsupported version {v}",
            [("schema_version", f"version {v} is not supported{newer}; this build reads versions {readable}")],
        )


def validate_document(doc: dict[str, Any]) -> JobSpec:
    """Validate a parsed document; raise SpecError listing every problem by field path.

    Every stage is checked even when an earlier one fails: a missing or non-integer schema_version is
    reported and the rest checked as version 1, and the rules that pydantic runs only on valid fields (a
    section's own rules, then the cross-field ones) run again with the wrong fields left at their defaults
    (`_problems_in_passes`), so one `validate` names an unknown key, a broken key-frame string and a
    skip_steps >= steps together."""
    spec, problems, _ = check_document(doc)
    if problems or spec is None:
        raise SpecError("; ".join(f"{loc}: {msg}" for loc, msg in problems), problems)
    return spec


def check_document(doc: dict[str, Any]) -> tuple[JobSpec | None, list[tuple[str, str]], JobSpec | None]:
    """(the spec or None, every problem, the spec with the wrong fields left at their defaults or None).

    The third value lets later stages (prompt lengths, model names) check what is right in a document
    that has problems elsewhere, so one `validate` reports every problem of every stage."""
    check_nesting(doc, "spec")  # documents also come from PNGs and manifests, not only read_document
    problems: list[tuple[str, str]] = []
    try:
        check_version(doc)
    except SpecError as exc:
        v = doc.get("schema_version")
        if isinstance(v, int) and not isinstance(v, bool):  # another version: its fields mean other things
            raise
        problems += exc.problems
        doc = {**doc, "schema_version": SUPPORTED_SCHEMA_VERSIONS[-1]}
    partial, found = _problems_in_passes(doc)
    problems += found
    return (None if problems else partial), problems, partial


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a spec file."""
    return validate_document(read_document(path))


def spec_to_document(spec: JobSpec) -> dict[str, Any]:
    """The spec as a plain JSON-compatible dict, with every default filled in (its canonical content).

    [symmetry] (DD 5.3+) is left out while it is all defaults (off), so every spec written before it
    existed keeps its document and hash (manifests, goldens)."""
    document = spec.model_dump(mode="json", by_alias=True, exclude_none=False)
    if spec.symmetry == type(spec.symmetry)():
        del document["symmetry"]
    return document


# ---------------------------------------------------------------------------------------------
# Error explanation
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Later stages: validate again without the fields already found wrong
# ---------------------------------------------------------------------------------------------

MAX_PASSES = 5  # fields, section rules, cross-field rules, and slack for rules that uncover each other


def _problems_in_passes(doc: dict[str, Any]) -> tuple[JobSpec | None, list[tuple[str, str]]]:
    """(the spec without the wrong fields or None, every problem): after a failed pass, the failing fields are removed (they take their
    defaults) and the document validated again, so the rules that need valid fields run too. A later
    problem at a removed field, or one naming a removed field (a cross-field rule that saw its default),
    is an echo of the first and is left out."""
    problems: list[tuple[str, str]] = []
    removed: list[tuple[tuple[Any, ...], bool]] = []  # (location, was an unknown key)
    current = doc
    for _ in range(MAX_PASSES):
        try:
            spec = JobSpec.model_validate(current)
        except ValidationError as exc:
            problems += [p for p in explain_errors(exc, current) if p not in problems and not _echo(p, removed)]
            locs = [(loc, err["type"] == "extra_forbidden") for loc, err in _locations(exc)]
            fresh = [(loc, unknown) for loc, unknown in locs if loc and (loc, unknown) not in removed]
            if not fresh:
                break
            removed += fresh
            current = _without(current, [loc for loc, _ in fresh])
            continue
        return spec, problems  # valid once the wrong fields were removed: the caller decides
    return None, problems


def _locations(exc: ValidationError) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    out = []
    for err in exc.errors(include_url=False):
        ctx_err = (err.get("ctx") or {}).get("error")
        out.append((tuple(getattr(ctx_err, "loc", None) or clean_loc(tuple(err["loc"]))), err))
    return out


def _without(doc: dict[str, Any], locs: list[tuple[Any, ...]]) -> dict[str, Any]:
    """A copy of `doc` without the values at `locs` (a location inside a list removes the whole list)."""
    out = copy.deepcopy(doc)
    for loc in locs:
        keys = []
        for part in loc:
            if not isinstance(part, str):
                break
            keys.append(part)
        cur: Any = out
        for k in keys[:-1]:
            cur = cur.get(k) if isinstance(cur, dict) else None
        if keys and isinstance(cur, dict):
            cur.pop(keys[-1], None)
    return out


def _echo(problem: tuple[str, str], removed: list[tuple[tuple[Any, ...], bool]]) -> bool:
    where, msg = problem
    for loc, unknown in removed:
        path = fmt_loc(loc)
        if where == path or where.startswith((path + ".", path + "[")) or path.startswith(where + "."):
            return True
        if not unknown and re.search(rf"(?<![\w]){re.escape(str(loc[-1]))}(?![\w])", msg):
            return True
    return False
