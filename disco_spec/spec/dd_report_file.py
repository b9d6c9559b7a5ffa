"""Reading a DD settings report file: bytes to a JSON object, and batch name/number from its file name.

DD names the report ``{batch_name}({batchNum})_settings.txt`` (``{batch_name}-{batchNum}_...`` in older
builds) and wrote it in the platform's encoding before 5.6, so decoding falls back from UTF-8 to
cp1252 and latin-1 with a warning. Problems reading or parsing the file are raised as
:class:`~disco_spec.errors.SpecError`. Standard library only, besides that error type.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import SpecError

_REPORT_NAME = (
    re.compile(r"^(?P<name>.+)\((?P<num>\d+)\)_settings\.txt$"),
    re.compile(r"^(?P<name>.+)-(?P<num>\d+)_settings\.txt$"),
)


def _read_report(path: Path, warnings: list[str]) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}", [(str(path), f"cannot read: {exc.strerror or exc}")])
    text = _decode(raw, path, warnings)
    from .untrusted_json import loads

    report = loads(text, str(path))  # the one bounded reader: depth, huge integers, duplicate keys
    if not isinstance(report, dict):
        msg = f"a DD settings report is a JSON object (got a {type(report).__name__})"
        raise SpecError(f"{path}: {msg}", [(str(path), msg)])
    return report


def _decode(raw: bytes, path: Path, warnings: list[str]) -> str:
    """UTF-8 first; DD 5.2 wrote the platform encoding (cp1252 on Windows), so fall back to it, then latin-1."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for encoding in ("cp1252", "latin-1"):  # latin-1 decodes any byte string
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        warnings.append(f"{path.name} is not UTF-8; decoded as {encoding} (DD before 5.6 wrote the report "
                        "in the platform's default encoding): check non-ASCII prompts")
        return text
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def _parse_file_name(path: Path, warnings: list[str]) -> tuple[str, int | None, str | None]:
    """batch_name and batchNum from `{batch_name}({batchNum})_settings.txt` or `{batch_name}-{batchNum}_...`."""
    for separator, pattern in zip(("()", "-"), _REPORT_NAME):
        m = pattern.match(path.name)
        if m:
            return m.group("name"), int(m.group("num")), separator
    stem = path.stem[: -len("_settings")] if path.stem.endswith("_settings") else path.stem
    warnings.append(f"file name {path.name!r} is not '{{batch_name}}({{batchNum}})_settings.txt'; "
                    f"batch_name taken as {stem!r}, batchNum unknown")
    return stem or "TimeToDisco", None, None
