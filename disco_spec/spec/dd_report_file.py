"""Reading a DD settings report file: bytes to a JSON object, and batch name/number from its file name.

DD names the report ``{batch_name}({batchNum})_settings.txt`` (``{batch_name}-{batchNum}_...`` in older
builds). Decoding and hand-edited JSON are `dd_text`'s job, telling DD's files from other tools'
`dd_family`'s; problems are raised as :class:`~disco_spec.errors.SpecError` (exit 2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .dd_family import classify, to_dd_names
from .dd_text import decode_settings, parse_settings
from .load import MAX_SPEC_BYTES, check_nesting

_REPORT_NAME = (
    re.compile(r"^(?P<name>.+)\((?P<num>\d+)\)_settings\.txt$"),
    re.compile(r"^(?P<name>.+)-(?P<num>\d+)_settings\.txt$"),
)


def read_report(path: Path, warnings: list[str]) -> tuple[dict[str, Any], str]:
    """(the settings under DD's names, the family: 'Disco Diffusion', 'progrockdiffusion' or 'discoart')."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}", [(str(path), f"cannot read: {exc.strerror or exc}")])
    if len(raw) > MAX_SPEC_BYTES:
        why = f"larger than {MAX_SPEC_BYTES} bytes (MAX_SPEC_BYTES): not a settings file"
        raise SpecError(f"{path}: {why}", [(str(path), why)])
    text = decode_settings(raw, str(path), warnings)
    doc, syntax = parse_settings(text, str(path), warnings)
    check_nesting(doc, path.name)  # the spec loader's bound (one reader's rule for both)
    family = classify(doc, path.name, syntax)
    return to_dd_names(doc, family, path.name, warnings), family


def parse_file_name(path: Path, warnings: list[str], name_used: bool = True) -> tuple[str, int | None, str | None]:
    """batch_name and batchNum from `{batch_name}({batchNum})_settings.txt` or `{batch_name}-{batchNum}_...`."""
    for separator, pattern in zip(("()", "-"), _REPORT_NAME):
        m = pattern.match(path.name)
        if m:
            return m.group("name"), int(m.group("num")), separator
    stem = path.stem[: -len("_settings")] if path.stem.endswith("_settings") else path.stem
    warnings.append(f"file name {path.name!r} is not '{{batch_name}}({{batchNum}})_settings.txt'; "
                    + (f"batch_name taken as {stem!r}, " if name_used else "") + "batchNum unknown")
    return stem or "TimeToDisco", None, None
