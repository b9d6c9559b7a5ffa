"""The one reader of JSON that disco-spec did not just write itself: specs, DD settings reports, manifests,
run folders' journals and states, PNG text chunks, sweep files. Each of those may come from a stranger.

`loads` refuses, as SpecError (exit 2) naming the input: a byte-order mark (named as such), duplicate keys
(as TOML does: JSON's last-one-wins would replace a whole section silently), nesting deeper than
MAX_JSON_DEPTH (caught from the C parser's recursion guard, then checked iteratively), integers longer than
Python converts, and anything that is not JSON. `read_file` bounds the file's size before reading it and
names a file that is not text for what it is (a PNG, a GIF, a video...) instead of reporting a syntax error.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from ..errors import SpecError

MAX_JSON_DEPTH = 64  # a spec document nests 3 deep, a manifest 6; far below Python's recursion limit
MAX_JSON_BYTES = 256 * 2**20

# Leading bytes of files users hand over by mistake (a picture saved as .png, a video, an archive...).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"RIFF", "a RIFF file (WebP image, WAV or AVI)"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive (or a PyTorch checkpoint)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "an executable program"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"\x80\x02", "a pickle file"),
)


def _bad(where: str, why: str) -> SpecError:
    return SpecError(f"{where}: {why}", [(where, why)])


def describe_binary(head: bytes) -> str | None:
    """What a file is when its first bytes say it is not text ("a GIF image"); None for text."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        return "an MP4/QuickTime video"
    if b"\x00" in head[:4096]:
        return "a binary file (it holds NUL bytes)"
    return None


def decode_text(raw: bytes, where: str, *, kind: str) -> str:
    """UTF-8 text of a spec-like file; a BOM, a binary file or other encodings are named (SpecError)."""
    what = describe_binary(raw[:4096])
    if what is not None:
        raise _bad(where, f"this is {what}, not a {kind} (UTF-8 text)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise _bad(where, f"starts with a UTF-8 byte-order mark (BOM); save the {kind} as UTF-8 without BOM")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _bad(where, f"is UTF-16 text (it starts with a UTF-16 byte-order mark); save the {kind} as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{where}: not UTF-8 text", [(f"{where}:1:{exc.start + 1}", "file is not UTF-8 text")]) from None


def _no_duplicates(where: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise _bad(where, f"the key {k!r} appears twice in one object (JSON keeps only the last; "
                                  "refused as in TOML)")
            out[k] = v
        return out
    return hook


def depth_exceeds(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists/dicts nest deeper than `limit` (iterative: safe on any depth)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return False


def loads(text: str, where: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON text (see the module docstring); SpecError naming `where` on any problem."""
    if text.startswith("\ufeff"):
        raise _bad(where, "starts with a byte-order mark (BOM); save it as UTF-8 without BOM")
    try:
        return parse_bounded(text, where, max_depth=max_depth)
    except json.JSONDecodeError as exc:
        loc = f"{where}:{exc.lineno}:{exc.colno}"
        raise SpecError(f"{loc}: invalid JSON: {exc.msg}", [(loc, f"invalid JSON: {exc.msg}")]) from None


def parse_bounded(text: str, where: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The bounds of `loads` (depth, integer digits, duplicate keys: SpecError naming `where`); a syntax error
    is left a json.JSONDecodeError, for a reader that tolerates more (spec.dd_text, hand-edited DD files)."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates(where))
    except RecursionError:
        raise _bad(where, f"JSON nested more than {max_depth} levels deep") from None
    except (json.JSONDecodeError, SpecError):
        raise
    except ValueError as exc:  # an integer past Python's int-to-text digit limit
        why = f"invalid JSON: {exc}"
        if "digits" in str(exc):
            why = f"invalid JSON: an integer has more than {sys.get_int_max_str_digits()} digits"
        raise _bad(where, why) from None
    if depth_exceeds(doc, max_depth):
        raise _bad(where, f"JSON nested more than {max_depth} levels deep")
    return doc


def read_file(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES, kind: str = "JSON file",
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON file: a plain file (not a FIFO or device), at most `max_bytes` (checked before reading)."""
    p = Path(path)
    where = str(p)
    try:
        with open(p, "rb", opener=nonblocking_opener) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise _bad(where, f"not a plain file; a {kind} is read only from a plain file")
            if st.st_size > max_bytes:
                raise _bad(where, f"{st.st_size} bytes: larger than the {max_bytes} bytes a {kind} may have")
            raw = f.read(st.st_size + 1)  # (read(n) allocates n bytes up front: not max_bytes)
    except OSError as exc:
        raise _bad(where, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise _bad(where, f"larger than the {max_bytes} bytes a {kind} may have")
    return loads(decode_text(raw, where, kind=kind), where, max_depth=max_depth)


def nonblocking_opener(path: str, flags: int) -> int:
    # O_NONBLOCK: a FIFO named like a JSON file fails the S_ISREG check instead of hanging the open.
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
