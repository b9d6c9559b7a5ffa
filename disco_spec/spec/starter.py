"""A starter spec for `disco-spec new`: every setting at Disco Diffusion 5.2's default, as commented TOML.

The text is generated from the spec models (disco_spec.spec.models), so it cannot drift from them: one
`[section]` per section model, headed by the first line of its docstring, and one line per field, led by a
comment that is the field's description. Settings whose default is "not set" (None) are written commented
out, since TOML has no null. Table-valued settings (prompts by frame) use dotted keys and long lists one
item a line, so the file stays readable. The result validates as it is; no torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..atomic import atomic_write_text
from ..errors import SpecError
from .models import SCHEMA_VERSION, JobSpec

# Written by tools, not by people: left out of the starter.
_LEFT_OUT = ("$schema", "imported_from")
_WIDTH = 100  # a list longer than this is written one item a line

HEADER = """\
# A disco-spec job (spec version {version}). Every setting is at Disco Diffusion 5.2's default;
# the comment above each one says what it does. Change what you need and delete the rest (an
# omitted setting takes the same default). Check it with `disco-spec validate FILE`, see what each
# image will use with `disco-spec plan FILE`, render it with `disco-spec render FILE`.
# The DD defaults need the full-size models (1280x768, 250 steps, 50 images); for a first try,
# `disco-spec render FILE --set n_batches=1 --set steps=50` renders one image.
"""


def toml_value(value: Any) -> str:
    """One TOML value (inline): strings as JSON-escaped basic strings, which TOML reads the same way."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 5000, as DD writes it (a number field reads it as 5000.0)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _key(name: str) -> str:
    bare = name and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    return name if bare else json.dumps(name, ensure_ascii=False)


def _assignment(key: str, value: Any) -> list[str]:
    text = f"{key} = {toml_value(value)}"
    if isinstance(value, list) and value and len(text) > _WIDTH:
        return [f"{key} = ["] + [f"    {toml_value(v)}," for v in value] + ["]"]
    return [text]


def _field_lines(name: str, info: Any, value: Any) -> list[str]:
    description = " ".join((info.description or "").split())
    lines = [f"# {description}"] if description else []
    if value is None:
        return lines + [f'# {_key(name)} = ""   (not set)']
    if isinstance(value, dict) and value:  # a table by frame: one dotted key per entry
        for k, v in value.items():
            lines += _assignment(f"{_key(name)}.{_key(str(k))}", v)
        return lines
    return lines + _assignment(_key(name), value)


def _summary(cls: type) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def starter_toml() -> str:
    """The starter spec's text."""
    # every section, [symmetry] included (spec_to_document leaves it out while it is off)
    document = JobSpec(schema_version=SCHEMA_VERSION).model_dump(mode="json", by_alias=True, exclude_none=False)
    top: list[str] = [HEADER.format(version=SCHEMA_VERSION)]
    sections: list[str] = []
    for name, info in JobSpec.model_fields.items():
        key = info.alias or name
        if key in _LEFT_OUT:
            continue
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            lines = ["", f"[{key}]", f"# --- {_summary(section)}"]
            for field, field_info in section.model_fields.items():
                fkey = field_info.alias or field
                lines += _field_lines(fkey, field_info, document[key][fkey])
            sections.append("\n".join(lines))
        else:
            top.append("\n".join(_field_lines(key, info, document[key])))
    return "\n".join(top) + "\n" + "\n".join(sections) + "\n"


def write_starter(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the starter spec to `path` (atomically); an existing file is kept unless `force`."""
    dest = Path(path)
    if dest.is_dir():
        raise SpecError(f"{dest}: is a folder", [(str(dest), "is a folder; give a file name such as disco.toml")])
    if dest.exists() and not force:
        raise SpecError(f"{dest}: exists", [(str(dest), "already exists; pass --force to overwrite it")])
    if dest.suffix.lower() not in (".toml", ""):
        raise SpecError(f"{dest}: not .toml", [(str(dest), "the starter spec is TOML; give a name ending in .toml")])
    atomic_write_text(dest, starter_toml())
    return dest
