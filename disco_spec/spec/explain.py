"""pydantic's validation errors explained as a person reads them: a dotted field path, what was wrong with
the value written there, what is allowed, and "did you mean" for unknown keys (also in the wrong section)."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from . import models
from .models import JobSpec


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


def clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """An error location without pydantic's union tags and model class names: the spec's own path."""
    return tuple(p for p in loc if not (isinstance(p, str) and (_TAG.match(p) or p in _MODEL_CLASSES)))


def fmt_loc(loc: tuple[Any, ...]) -> str:
    """A location as a user writes it: `diffusion.width_height[1]`."""
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
        located.append((tuple(getattr(ctx_err, "loc", None) or clean_loc(tuple(err["loc"]))), err))
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
        path = fmt_loc(loc)
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
        if isinstance(ctx_err, models.FieldError):
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
