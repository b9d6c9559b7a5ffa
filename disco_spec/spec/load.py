"""Read a spec file (TOML or JSON), check its version, validate it, and explain problems by field path.

Every problem becomes a `SpecError` whose `problems` are `(location, message)` pairs, where location is
`FILE:LINE:COL` for syntax errors and a dotted field path for validation errors. Nothing here imports torch.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from ..errors import SpecError
from . import models
from .models import SUPPORTED_SCHEMA_VERSIONS, JobSpec

# A spec is a small text file; these bound what reading one can cost (documented in docs/security.md).
MAX_SPEC_BYTES = 16 << 20
MAX_NESTING = 64  # tables/arrays inside each other; the deepest real spec nests 4


def read_document(path: str | Path) -> dict[str, Any]:
    """Parse a TOML or JSON file into a plain dict; syntax errors carry FILE:LINE:COL."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}", [(str(path), f"cannot read: {exc.strerror or exc}")])
    if len(raw) > MAX_SPEC_BYTES:
        why = f"spec file is larger than {MAX_SPEC_BYTES} bytes (MAX_SPEC_BYTES)"
        raise SpecError(f"{path}: {why}", [(str(path), why)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text", [(f"{path}:1:{exc.start + 1}", "file is not UTF-8 text")])
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
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        loc = f"{where}:{exc.lineno}:{exc.colno}"
        raise SpecError(f"{loc}: invalid JSON: {exc.msg}", [(loc, f"invalid JSON: {exc.msg}")])
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
    spec, found = _problems_in_passes(doc)
    problems += found
    if problems or spec is None:
        raise SpecError("; ".join(f"{loc}: {msg}" for loc, msg in problems), problems)
    return spec


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a spec file."""
    return validate_document(read_document(path))


def spec_to_document(spec: JobSpec) -> dict[str, Any]:
    """The spec as a plain JSON-compatible dict, with every default filled in (its canonical content)."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=False)


# ---------------------------------------------------------------------------------------------
# Error explanation
# ---------------------------------------------------------------------------------------------

_MODEL_CLASSES = {
    cls.__name__: cls
    for cls in vars(models).values()
    if isinstance(cls, type) and issubclass(cls, BaseModel) and cls is not BaseModel
}
# Tags pydantic puts into error locations for union members and validators; not field names.
_TAG = re.compile(r"^(str|int|float|bool|none|constrained-\w+|literal\[.*\]|list\[.*\]|dict\[.*\]|tuple\[.*\]|"
                  r"function-\w+\[.*\]|json-or-python\[.*\]|is-instance\[.*\]|lax-or-strict\[.*\]|chain\[.*\])$")


def _field_index() -> dict[str, list[str]]:
    """Every field name in the spec -> the dotted paths where it lives (for 'did you mean')."""
    index: dict[str, list[str]] = {}

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, info in cls.model_fields.items():
            key = info.alias or name
            path = f"{prefix}{key}"
            index.setdefault(key, []).append(path)
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, path + ".")

    walk(JobSpec, "")
    return index


def _model_at(loc: Iterable[Any]) -> type[BaseModel] | None:
    cls: type[BaseModel] = JobSpec
    for part in loc:
        if not isinstance(part, str):
            return None
        info = cls.model_fields.get(part) or next(
            (f for f in cls.model_fields.values() if f.alias == part), None
        )
        if info is None:
            return None
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            cls = ann
        else:
            return None
    return cls


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and (_TAG.match(p) or p in _MODEL_CLASSES)))


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def explain_errors(exc: ValidationError, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Turn pydantic errors into (field path, 'what is wrong (got …; expected …)') lines."""
    index = _field_index()
    located = []
    for err in exc.errors(include_url=False):
        ctx_err = (err.get("ctx") or {}).get("error")
        located.append((tuple(getattr(ctx_err, "loc", None) or _clean_loc(tuple(err["loc"]))), err))
    # In a union (e.g. a registry name or a {path, sha256} table), the branch that matched the input's shape
    # failed deeper; the other branch's bare type error only adds noise.
    deeper = {loc[:n] for loc, _ in located for n in range(len(loc))}
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for loc, err in located:
        if err["type"].endswith("_type") and loc in deeper:
            continue
        grouped.setdefault(loc, []).append(err)

    problems: list[tuple[str, str]] = []
    for loc, errs in grouped.items():
        path = _fmt_loc(loc)
        first = errs[0]
        if first["type"] == "extra_forbidden":
            problems.append((path, _unknown_key(loc, first.get("input"), index)))
            continue
        if first["type"] == "missing":
            problems.append((path, "required field is missing"))
            continue
        got = _short(_value_at(doc, loc))
        if len(errs) > 1:  # a union: every alternative failed
            expected = sorted({_expected(e) for e in errs})
            problems.append((path, f"wrong type or value (got {got}; expected one of: {', '.join(expected)})"))
            continue
        ctx_err = (first.get("ctx") or {}).get("error")
        if isinstance(ctx_err, models._FieldError):
            msg = str(ctx_err).split(": ", 1)[1]
            got = _short(ctx_err.got) if ctx_err.got is not None else None
            problems.append((path, msg + (f" (got {got})" if got else "")))
            continue
        msg = first["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if first["type"] == "value_error":  # our validators' messages already say what is allowed
            problems.append((path, f"{_lower(msg)} (got {got})"))
        else:
            problems.append((path, f"{_lower(msg)} (got {got}; expected {_expected(first)})"))
    return problems


def _lower(msg: str) -> str:
    return msg[:1].lower() + msg[1:]


def _expected(err: dict[str, Any]) -> str:
    t = err["type"]
    ctx = err.get("ctx") or {}
    simple = {
        "int_type": "an integer", "float_type": "a number", "bool_type": "true or false", "string_type": "a string",
        "list_type": "a list", "dict_type": "a table/object", "model_type": "a table/object",
        "int_from_float": "an integer", "finite_number": "a finite number",
    }
    if t in simple:
        return simple[t]
    if t == "literal_error":
        return str(ctx.get("expected", "one of the listed values"))
    if t in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[t]
        key = next(iter(ctx))
        return f"a value {op} {ctx[key]}"
    if t in ("too_short", "too_long"):
        return f"{ctx.get('min_length', ctx.get('max_length'))} items" if "min_length" in ctx or "max_length" in ctx else "another length"
    if t in ("string_too_short", "string_too_long"):
        return "a string of allowed length"
    return t.replace("_", " ")


def _value_at(doc: Any, loc: tuple[Any, ...]) -> Any:
    cur = doc
    for p in loc:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and isinstance(p, int) and 0 <= p < len(cur):
            cur = cur[p]
        else:
            return None
    return cur


def _unknown_key(loc: tuple[Any, ...], value: Any, index: dict[str, list[str]]) -> str:
    key = str(loc[-1]) if loc else ""
    parent = _model_at(loc[:-1])
    siblings = [f.alias or n for n, f in parent.model_fields.items()] if parent else []
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    elsewhere = index.get(key) or [p for k, ps in index.items() for p in ps if k.lower() == key.lower()]
    if elsewhere:
        return f"unknown key {key!r} here; did you mean {' or '.join(repr(p) for p in elsewhere)}?"
    close_any = difflib.get_close_matches(key, list(index), n=1, cutoff=0.75)
    if close_any:
        return f"unknown key {key!r}; did you mean {' or '.join(repr(p) for p in index[close_any[0]])}?"
    allowed = ", ".join(siblings[:12]) + (", ..." if len(siblings) > 12 else "")
    return f"unknown key {key!r} (allowed here: {allowed})" if siblings else f"unknown key {key!r}"


# ---------------------------------------------------------------------------------------------
# Later stages: validate again without the fields already found wrong
# ---------------------------------------------------------------------------------------------

MAX_PASSES = 5  # fields, section rules, cross-field rules, and slack for rules that uncover each other


def _problems_in_passes(doc: dict[str, Any]) -> tuple[JobSpec | None, list[tuple[str, str]]]:
    """(the spec or None, every problem): after a failed pass, the failing fields are removed (they take their
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
        return (None if problems else spec), problems
    return None, problems


def _locations(exc: ValidationError) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    out = []
    for err in exc.errors(include_url=False):
        ctx_err = (err.get("ctx") or {}).get("error")
        out.append((tuple(getattr(ctx_err, "loc", None) or _clean_loc(tuple(err["loc"]))), err))
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
        path = _fmt_loc(loc)
        if where == path or where.startswith((path + ".", path + "[")) or path.startswith(where + "."):
            return True
        if not unknown and re.search(rf"(?<![\w]){re.escape(str(loc[-1]))}(?![\w])", msg):
            return True
    return False
