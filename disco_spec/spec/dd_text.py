"""Reading settings files as DD users leave them: encodings, and JSON edited by hand.

DD writes strict JSON, but people paste Python dicts into it and tools write their own flavours:
trailing commas, Python's `True`/`False`/`None`, `//` and `#` comment lines (progrockdiffusion's own
settings.json starts with them), UTF-16 from Windows Notepad, UTF-8 with a byte-order mark, cp1252.
Each tolerance is a warning naming line:column; what still does not parse gets an error saying the
likely cause. Standard library only (YAML, for discoart, where pyyaml is installed).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import SpecError
from .untrusted_json import parse_bounded

__all__ = ["decode_settings", "parse_settings"]

_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
                b"RIFF": "a RIFF file (WEBP image or AVI video)", b"%PDF": "a PDF document", b"PK\x03\x04": "a ZIP archive"}


def _fail(where: str, msg: str) -> SpecError:
    return SpecError(f"{where}: {msg}", [(where, msg)])


def decode_settings(raw: bytes, name: str, warnings: list[str]) -> str:
    """Bytes to text: a BOM decides (UTF-8, UTF-16), else UTF-8, else cp1252 (DD before 5.6), else latin-1."""
    for magic, what in _IMAGE_MAGIC.items():
        if raw.startswith(magic):
            hint = (" (a DD image does not hold its settings: import the {batch_name}(N)_settings.txt beside it)"
                    if "image" in what else "")
            raise _fail(name, f"this is {what}, not a Disco Diffusion settings file{hint}")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
        warnings.append(f"{name}:1:1: UTF-16 with a byte-order mark (as Windows Notepad saves it): read as UTF-16")
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise _fail(name, f"starts like UTF-16 but is not valid UTF-16 at byte {exc.start}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        warnings.append(f"{name}:1:1: UTF-8 byte-order mark ignored")
        raw = raw[3:]
    if b"\x00" in raw[:4096]:
        raise _fail(name, "binary data (NUL bytes), not a text settings file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for encoding in ("cp1252", "latin-1"):  # latin-1 decodes any byte string
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        warnings.append(f"{name} is not UTF-8; decoded as {encoding} (DD before 5.6 wrote the report "
                        "in the platform's default encoding): check non-ASCII prompts")
        return text
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


# One token of hand-edited JSON: a string (double or single quoted), a comment, or a bare word.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|//[^\n]*|#[^\n]*|/\*.*?\*/|[A-Za-z_]\w*|,\s*(?=[}\]])',
                    re.S)
_PY_WORDS = {"True": "true", "False": "false", "None": "null"}


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _tolerant_json(text: str, name: str, warnings: list[str]) -> Any:
    """Rewrite the hand-edits DD users make into JSON, one warning per kind with its first place."""
    seen: dict[str, tuple[int, int, int]] = {}
    out: list[str] = []
    last = 0

    def note(kind: str, pos: int) -> None:
        line, col = _line_col(text, pos)
        first = seen.get(kind)
        seen[kind] = (first[0], first[1], first[2] + 1) if first else (line, col, 1)

    for m in _TOKEN.finditer(text):
        token, start = m.group(0), m.start()
        out.append(text[last:start])
        last = m.end()
        if token.startswith('"'):
            out.append(token)
        elif token.startswith("'"):
            note("a single-quoted string (Python)", start)
            out.append(json.dumps(_py_single_quoted(token)))
        elif token.startswith(("//", "#", "/*")):
            note("a comment", start)
            out.append(" " * len(token) if "\n" not in token else "\n" * token.count("\n"))
        elif token.startswith(","):
            note("a trailing comma", start)
            out.append(token[1:])
        elif token in _PY_WORDS:
            note(f"Python's {token}", start)
            out.append(_PY_WORDS[token])
        else:
            out.append(token)
    out.append(text[last:])
    doc = parse_bounded("".join(out), name)
    for kind, (line, col, n) in seen.items():
        more = f" (and {n - 1} more)" if n > 1 else ""
        warnings.append(f"{name}:{line}:{col}: {kind} in the JSON{more}: read as DD would have meant it")
    return doc


def _py_single_quoted(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}.get(m.group(1), m.group(0)),
                  body)


_INI_SECTION = re.compile(r"^\[([^\[\]\"\n]+)\]\s*$", re.M)
_INI_KEY = re.compile(r"^[A-Za-z_][\w ]*=", re.M)


def _ini_cause(text: str) -> str | None:
    """What an INI file is (it starts with '[' like JSON, so it gets its own test)."""
    first_line = text.lstrip().split("\n", 1)[0]
    if _INI_SECTION.fullmatch(first_line.rstrip()) and _INI_KEY.search(text):
        sections = _INI_SECTION.findall(text)
        if any("Disco Diffusion" in s for s in sections):
            return (f"this is a Visions of Chaos script (an INI file with sections {', '.join(sections[:4])}), not a "
                    "Disco Diffusion settings report: import-dd reads the JSON report DD writes next to its images "
                    "({batch_name}({batchNum})_settings.txt)")
        return ("this is an INI or TOML file ([section] and key = value lines), not a Disco Diffusion settings file; "
                "a TOML spec is read by validate/render")
    return None


def _likely_cause(text: str) -> str | None:
    stripped = text.lstrip()
    if re.search(r"(?m)^Steps: \d+, Sampler: ", text) or "Negative prompt:" in text:
        return "this is an AUTOMATIC1111 / Stable Diffusion infotext, not a Disco Diffusion settings file"
    if stripped.startswith("<"):
        return "this is HTML/XML, not a Disco Diffusion settings file (a saved web page?)"
    if re.match(r"^\s*\w+\s*=", text) and "[" in text and "\n" in text:
        return "this looks like TOML or Python assignments: import-dd reads DD's JSON settings files; a TOML spec is read by validate/render"
    return None


def parse_settings(text: str, name: str, warnings: list[str]) -> tuple[Any, str]:
    """(the parsed document, its syntax: 'json' | 'json (hand-edited)' | 'yaml')."""
    ini = _ini_cause(text)
    if ini:
        raise _fail(name, ini)
    cause = _likely_cause(text)
    if cause and not text.lstrip().startswith(("{", "[")):
        raise _fail(name, cause)
    try:  # the one bounded reader's rules (depth, integer digits, duplicate keys) before any tolerance
        return parse_bounded(text, name), "json"
    except json.JSONDecodeError as strict:
        first_error = strict
    if text.lstrip().startswith(("{", "//", "#")):
        tolerated: list[str] = []
        try:
            doc = _tolerant_json(text, name, tolerated)
        except json.JSONDecodeError:
            pass
        except RecursionError:
            raise _too_deep(name) from None
        else:
            warnings.extend(tolerated)
            return doc, "json (hand-edited)"
    if not text.lstrip().startswith(("{", "[")):
        try:
            import yaml
        except ImportError:
            yaml = None
        if yaml is not None:
            try:
                doc = yaml.safe_load(text)
            except RecursionError:
                raise _too_deep(name) from None
            except yaml.YAMLError:
                doc = None
            if isinstance(doc, dict):
                return doc, "yaml"
        elif re.search(r"(?m)^\w+:\s", text):
            raise _fail(name, "looks like YAML (a discoart config?): reading it needs pyyaml (pip install pyyaml)")
    loc = f"{name}:{first_error.lineno}:{first_error.colno}"
    raise SpecError(f"{loc}: invalid JSON: {first_error.msg}",
                    [(loc, f"invalid JSON: {first_error.msg}" + (f" ({cause})" if cause else
                                                               " (not JSON, hand-edited JSON or YAML this reader knows)"))])


def _too_deep(name: str) -> SpecError:
    from .load import MAX_NESTING

    return _fail(name, f"nested deeper than this reader allows (at most {MAX_NESTING} levels)")
