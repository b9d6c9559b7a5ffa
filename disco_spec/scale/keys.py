"""Sweep keys and values, read into `Axis` objects: a `--set KEY` is resolved to a spec path (a unique
field name, a dotted path, or a path into a table-valued field; a "did you mean" for unknown keys), its
comma-separated values are split and each parsed for the field's type, and a sweep file gives the same
from TOML or JSON (`load_sweep_file`).
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import SpecError

MODES = ("grid", "zip")


@dataclass(frozen=True)
class Axis:
    key: str  # as the user wrote it (`--set KEY`)
    path: str  # dotted path in the spec document
    values: tuple[Any, ...]
    labels: tuple[str, ...]  # how each value is shown (contact sheet, sweep.json, MLflow)


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def spec_leaves() -> dict[str, Any]:
    """Every leaf field of the spec: dotted path -> pydantic FieldInfo."""
    from pydantic import BaseModel

    from ..spec.models import JobSpec

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
    for path in spec_leaves():
        index.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    return index


def _accepts_table(path: str) -> bool:
    return "dict[" in str(spec_leaves()[path].annotation)


def bad_key(key: str, msg: str) -> SpecError:
    """The exit-2 error for a `--set` (or sweep) key, named as the user wrote it."""
    return SpecError(f"--set {key}: {msg}", [(f"--set {key}", msg)])


def resolve_key(key: str) -> str:
    """The dotted path of a sweep key: a leaf path, a path into a table-valued field, or a unique name."""
    key = key.strip()
    leaves = spec_leaves()
    if not key:
        raise bad_key(key, "empty key (write KEY=VALUE1,VALUE2,...)")
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
        raise bad_key(key, f"{key!r} is ambiguous; write one of {', '.join(repr(p) for p in paths)}")
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
    raise bad_key(key, return_msg)


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
    except ValueError as exc:  # an integer past Python's digit limit: refused as in a spec file (exit 2)
        why = f"{text[:20]}…: an integer has more than {sys.get_int_max_str_digits()} digits ({exc.__class__.__name__})"
        raise SpecError(f"--set: {why}", [("--set", why)]) from None


@lru_cache(maxsize=None)
def _adapter(path: str) -> Any:
    """A strict pydantic validator for the field at `path` (None when the type cannot have one)."""
    from typing import Annotated

    from pydantic import ConfigDict, TypeAdapter

    info = spec_leaves().get(path)
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
        raise bad_key(key or arg, f"expected KEY=VALUE1,VALUE2,... (got {arg!r})")
    path = resolve_key(key)
    texts = split_values(rest)
    if any(t == "" for t in texts):
        raise bad_key(key, f"empty value in {rest!r} (values are separated by commas; quote strings that contain one)")
    values = tuple(parse_value(path, t) for t in texts)
    return Axis(key=key, path=path, values=values, labels=tuple(_unquote(t) for t in texts))


def load_sweep_file(path: str | os.PathLike) -> tuple[str | None, list[Axis]]:
    """(mode or None, axes) from a TOML/JSON sweep file: {mode = "grid"|"zip", set = {KEY = [values]}}."""
    from ..spec.load import read_document

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
