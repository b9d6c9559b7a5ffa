"""PNG text chunks (read, add/replace without re-encoding) and pixel hashes.

Every final PNG carries what is needed to rebuild it alone (written by render.png_metadata, plus the
manifest id and the provenance added by manifest.finalize_run):

    disco-spec:version         disco-spec version that wrote it
    disco-spec:spec            the spec, canonical JSON (with the concrete seed)
    disco-spec:plan-sha256     SHA-256 of the resolved plan
    disco-spec:item            plan item index (what `rebuild --item` takes)
    disco-spec:batch-index     still image number
    disco-spec:frame           animation frame
    disco-spec:seed            the item's seed
    disco-spec:manifest-id     id of the run's manifest (SHA-256 of its hashed part)
    disco-spec:provenance      models, code, packages and environment of the manifest (canonical JSON)
    parameters                 the prompt and settings in AUTOMATIC1111's form, for other tools (parameters.py)

Chunks are edited at the byte level: pixel data (IDAT) and every other chunk are copied untouched, so
adding a text chunk never changes the decoded pixels. Writes are atomic (temp file + os.replace).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Collection, Mapping

from ..atomic import atomic_write_bytes
from ..errors import SpecError
from ..hashes import file_sha256
from .parameters import KEY_PARAMETERS, format_parameters, parse_parameters

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PREFIX = "disco-spec:"
KEY_VERSION = PREFIX + "version"
KEY_SPEC = PREFIX + "spec"
KEY_PLAN = PREFIX + "plan-sha256"
KEY_ITEM = PREFIX + "item"
KEY_BATCH = PREFIX + "batch-index"
KEY_FRAME = PREFIX + "frame"
KEY_SEED = PREFIX + "seed"
KEY_MANIFEST_ID = PREFIX + "manifest-id"
KEY_PROVENANCE = PREFIX + "provenance"

_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")
_COMPRESS_OVER = 512  # iTXt values longer than this are stored compressed
# A PNG travels between people: an 8 MB text chunk can inflate to gigabytes. Our own chunks (the
# spec and provenance JSON) are far smaller than these caps.
MAX_TEXT_CHUNK_BYTES = 32 << 20  # decompressed size of one zTXt/iTXt chunk
MAX_TEXT_TOTAL_BYTES = 64 << 20  # decompressed size of all text chunks of one file
# The largest image disco-spec writes is 8192x8192 (diffusion.width_height); decoding more is refused.
MAX_PIXELS = 8192 * 8192
# A PNG of MAX_PIXELS RGBA pixels stored uncompressed is 256 MiB; no PNG disco-spec reads is larger.
MAX_PNG_BYTES = 4 * MAX_PIXELS + (MAX_TEXT_TOTAL_BYTES)


class _TextTooLarge(Exception):
    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


class PngFormatError(SpecError):
    """The file is not a PNG this module can read (bad input: exit 2)."""

    def __init__(self, path: str | os.PathLike, why: str):
        super().__init__(f"{path}: {why}", [(str(path), why)])


# ---------------------------------------------------------------------------------------------
# Chunks
# ---------------------------------------------------------------------------------------------


def read_chunks(path: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """All chunks of a PNG as (type, data), in file order (CRCs are checked)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_PNG_BYTES:  # bounded before reading: a 2 GB (sparse) file is refused at once
                raise PngFormatError(path, f"{size} bytes: larger than the {MAX_PNG_BYTES} bytes a PNG may have "
                                           "(MAX_PNG_BYTES)")
            raw = f.read(size + 1)  # (not MAX_PNG_BYTES + 1: read(n) allocates n bytes up front)
    except OSError as exc:
        raise PngFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    return parse_chunks(raw, path)


def parse_chunks(raw: bytes, where: str | os.PathLike = "<bytes>") -> list[tuple[bytes, bytes]]:
    if not raw.startswith(PNG_SIGNATURE):
        raise PngFormatError(where, "not a PNG file")
    chunks: list[tuple[bytes, bytes]] = []
    pos = len(PNG_SIGNATURE)
    while pos < len(raw):
        if pos + 8 > len(raw):
            raise PngFormatError(where, "truncated PNG (chunk header)")
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        ctype = raw[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > len(raw):
            raise PngFormatError(where, f"truncated PNG (chunk {ctype!r})")
        data = raw[pos + 8 : end]
        (crc,) = struct.unpack(">I", raw[end : end + 4])
        if zlib.crc32(ctype + data) & 0xFFFFFFFF != crc:
            raise PngFormatError(where, f"corrupt PNG (CRC of chunk {ctype.decode('latin-1')!r})")
        chunks.append((ctype, data))
        pos = end + 4
        if ctype == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise PngFormatError(where, "not a complete PNG (IHDR/IEND missing)")
    return chunks


def build_png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [PNG_SIGNATURE]
    for ctype, data in chunks:
        out.append(struct.pack(">I", len(data)))
        out.append(ctype)
        out.append(data)
        out.append(struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF))
    return b"".join(out)


def _inflate(data: bytes, keyword: str, limit: int) -> bytes:
    """zlib-decompress at most `limit` bytes; more is refused without inflating it."""
    d = zlib.decompressobj()
    out = d.decompress(data, limit + 1)
    if len(out) > limit:
        raise _TextTooLarge(
            f"text chunk {_printable(keyword)} inflates to more than {limit} bytes "
            f"(limit MAX_TEXT_CHUNK_BYTES = {MAX_TEXT_CHUNK_BYTES})"
        )
    if not d.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _printable(keyword: str) -> str:
    return ascii(keyword[:79])


def _decode_text_chunk(ctype: bytes, data: bytes, limit: int = MAX_TEXT_CHUNK_BYTES) -> tuple[str, str] | None:
    try:
        key, rest = data.split(b"\0", 1)
        keyword = key.decode("latin-1")
        if ctype == b"tEXt":
            return keyword, rest.decode("latin-1")
        if ctype == b"zTXt":
            return keyword, _inflate(rest[1:], keyword, limit).decode("latin-1")
        # iTXt: compression flag, method, language\0, translated keyword\0, text
        flag = rest[0]
        rest = rest[2:]
        _lang, rest = rest.split(b"\0", 1)
        _translated, text = rest.split(b"\0", 1)
        if flag:
            text = _inflate(text, keyword, limit)
        return keyword, text.decode("utf-8")
    except (ValueError, IndexError, zlib.error, UnicodeDecodeError):
        return None  # a malformed text chunk is ignored, as PNG readers do


def _keyword(ctype: bytes, data: bytes) -> str | None:
    """A text chunk's keyword, without inflating its text."""
    if b"\0" not in data:
        return None
    return data.split(b"\0", 1)[0].decode("latin-1")


def _encode_itxt(keyword: str, text: str, compress: bool = True) -> bytes:
    key = keyword.encode("latin-1")
    if not 1 <= len(key) <= 79:
        raise ValueError(f"PNG keyword must be 1-79 bytes: {keyword!r}")
    body = text.encode("utf-8")
    if compress and len(body) > _COMPRESS_OVER:
        return key + b"\0\x01\x00\0\0" + zlib.compress(body, 9)
    return key + b"\0\x00\x00\0\0" + body


def text_chunks(chunks: list[tuple[bytes, bytes]], where: str | os.PathLike = "<bytes>") -> dict[str, str]:
    """{keyword: text} of every readable text chunk; a chunk that inflates past the caps is a PngFormatError."""
    out: dict[str, str] = {}
    budget = MAX_TEXT_TOTAL_BYTES
    for ctype, data in chunks:
        if ctype in _TEXT_TYPES:
            try:
                kv = _decode_text_chunk(ctype, data, min(MAX_TEXT_CHUNK_BYTES, budget))
            except _TextTooLarge as exc:
                why = exc.why
                if budget < MAX_TEXT_CHUNK_BYTES:
                    why += f"; all text chunks together may inflate to {MAX_TEXT_TOTAL_BYTES} bytes (MAX_TEXT_TOTAL_BYTES)"
                raise PngFormatError(where, why) from None
            if kv is not None:
                out[kv[0]] = kv[1]
                budget -= len(kv[1]) if ctype == b"tEXt" else len(kv[1].encode("utf-8", "surrogatepass"))
    return out


def read_text(path: str | os.PathLike) -> dict[str, str]:
    """Every text chunk (tEXt, zTXt, iTXt) of a PNG as {keyword: text}."""
    return text_chunks(read_chunks(path), path)


def with_text(raw: bytes, updates: Mapping[str, str], where: str | os.PathLike = "<bytes>",
              plain: Collection[str] = ()) -> bytes:
    """PNG bytes with `updates` set as iTXt chunks (replacing chunks of the same keywords); keywords in `plain`
    are never compressed (readers that skip compressed text still see them)."""
    chunks = parse_chunks(raw, where)
    keys = set(updates)
    kept = [(t, d) for t, d in chunks if not (t in _TEXT_TYPES and _keyword(t, d) in keys)]
    new = [(b"iTXt", _encode_itxt(k, v, compress=k not in plain)) for k, v in updates.items()]
    at = next(i for i, (t, _) in enumerate(kept) if t in (b"IDAT", b"IEND"))
    return build_png(kept[:at] + new + kept[at:])


def set_text(path: str | os.PathLike, updates: Mapping[str, str], dest: str | os.PathLike | None = None,
             plain: Collection[str] = ()) -> Path:
    """Add or replace text chunks of a PNG atomically (temp + os.replace); other chunks are kept as they are."""
    src = Path(path)
    dest = Path(dest) if dest is not None else src
    data = with_text(src.read_bytes(), updates, src, plain)
    atomic_write(dest, data)
    return dest


def atomic_write(dest: str | os.PathLike, data: bytes) -> None:
    """Write `data` atomically (see disco_spec.atomic)."""
    atomic_write_bytes(dest, data)


# ---------------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------------


def is_png(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == PNG_SIGNATURE
    except OSError:
        return False


def pixels_sha256(path: str | os.PathLike) -> str:
    """SHA-256 over `"{mode} {width}x{height}\\n"` and the decoded pixel bytes (independent of text chunks
    and of how the PNG was compressed)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            check_pixels(path, img.width, img.height)
            img.load()
            h = hashlib.sha256(f"{img.mode} {img.width}x{img.height}\n".encode("ascii"))
            h.update(img.tobytes())
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # PIL's own text and size limits
        raise PngFormatError(path, f"cannot decode image: {exc}") from None
    return h.hexdigest()


def check_pixels(path: str | os.PathLike, width: int, height: int) -> None:
    """Refuse an image past MAX_PIXELS before its pixels are decoded (from its header's size)."""
    if width * height > MAX_PIXELS:
        raise PngFormatError(path, f"{width}x{height} image has more than {MAX_PIXELS} pixels (MAX_PIXELS)")


def content_sha256(path: str | os.PathLike) -> str:
    """pixels_sha256 for PNGs, the file's SHA-256 for anything else (videos, ...)."""
    if is_png(path):
        return pixels_sha256(path)
    return file_sha256(path)


# ---------------------------------------------------------------------------------------------
# What a disco-spec PNG says about itself
# ---------------------------------------------------------------------------------------------


def _int_or_none(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def json_text_or_none(v: str | None, where: str = "PNG text chunk") -> Any:
    """JSON text a file carries (a PNG text chunk, an mp4 metadata value) decoded through the one bounded
    reader; None when absent or not acceptable JSON (too deep, duplicate keys, malformed...)."""
    from ..spec.untrusted_json import loads

    if v is None:
        return None
    try:
        return loads(v, where)
    except SpecError:
        return None


def png_info(path: str | os.PathLike) -> dict[str, Any]:
    """The disco-spec metadata of a PNG, decoded: spec (dict), item, frame, seed, manifest id, provenance, ..."""
    from PIL import Image

    chunks = read_chunks(path)
    text = text_chunks(chunks, path)
    try:
        with Image.open(path) as img:
            size, mode = [img.width, img.height], img.mode
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PngFormatError(path, f"cannot decode image: {exc}") from None
    spec = json_text_or_none(text.get(KEY_SPEC))
    info: dict[str, Any] = {
        "path": str(path),
        "disco_spec_version": text.get(KEY_VERSION),
        "manifest_id": text.get(KEY_MANIFEST_ID),
        "plan_sha256": text.get(KEY_PLAN),
        "item": _int_or_none(text.get(KEY_ITEM)),
        "batch_index": _int_or_none(text.get(KEY_BATCH)),
        "frame": _int_or_none(text.get(KEY_FRAME)),
        "seed": _int_or_none(text.get(KEY_SEED)),
        "size": size,
        "mode": mode,
        "pixels_sha256": pixels_sha256(path),
        "file_sha256": file_sha256(path),
        "spec": spec,
        "spec_sha256": None,
        "provenance": json_text_or_none(text.get(KEY_PROVENANCE)),
        "other_text": {k: v for k, v in text.items() if not k.startswith(PREFIX) and k != KEY_PARAMETERS},
        "parameters": parse_parameters(text[KEY_PARAMETERS]) if KEY_PARAMETERS in text else None,
    }
    if isinstance(spec, dict):
        from .ids import spec_sha256

        info["spec_sha256"] = spec_sha256(spec)
    return info


def is_disco_png(path: str | os.PathLike) -> bool:
    try:
        return KEY_SPEC in read_text(path)
    except SpecError:
        return False


def format_info(info: Mapping[str, Any]) -> str:
    """The readable form of png_info for `disco-spec inspect`."""
    lines = [f"{info['path']}: {info['size'][0]}x{info['size'][1]} {info['mode']}"]
    if info.get("spec") is None:
        lines.append("  no disco-spec metadata (not written by disco-spec, or the text chunks were stripped)")
    rows = [
        ("manifest id", info.get("manifest_id")),
        ("item", info.get("item")),
        ("batch index", info.get("batch_index")),
        ("frame", info.get("frame")),
        ("seed", info.get("seed")),
        ("plan sha256", info.get("plan_sha256")),
        ("spec sha256", info.get("spec_sha256")),
        ("pixels sha256", info.get("pixels_sha256")),
        ("file sha256", info.get("file_sha256")),
        ("disco-spec", info.get("disco_spec_version")),
    ]
    for label, value in rows:
        if value is not None:
            lines.append(f"  {label:<14} {value}")
    prov = info.get("provenance")
    if isinstance(prov, dict):
        for m in prov.get("models") or []:
            lines.append(f"  model          {m.get('role')}: {m.get('name')}  sha256 {m.get('sha256')}")
        env = prov.get("environment") or {}
        dev = env.get("device")
        gpu = env.get("gpu") or {}
        cpu = env.get("cpu") or {}
        torch_v = (prov.get("packages") or {}).get("torch")
        where = f"{dev}" + (f" ({gpu.get('name')})" if gpu else f" ({cpu.get('model')})" if cpu.get("model") else "")
        lines.append(f"  rendered on    {where}, torch {torch_v}")
    if isinstance(info.get("parameters"), dict):
        lines += format_parameters(info["parameters"])
    spec = info.get("spec")
    if isinstance(spec, dict):
        lines.append("  spec:")
        text = json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False)
        lines.extend("    " + ln for ln in text.splitlines())
    for k, v in (info.get("other_text") or {}).items():
        short = v if len(v) <= 100 else v[:97] + "..."
        lines.append(f"  {k}: {short}")
    return "\n".join(lines)
