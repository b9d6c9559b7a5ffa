"""The recipe inside the mp4s a render writes: container metadata that `ffprobe` (and `ffmpeg -i`) show and
`disco-spec inspect VIDEO.mp4` reads, and the video's content hash, which leaves that metadata out.

An mp4 (ISO BMFF) is a sequence of boxes; the encoded frames are in `mdat`, their index in `moov`, and
metadata in `moov/udta`. After the manifest id is known, `stamp` replaces `moov/udta` with a `meta` box
in QuickTime's `mdta` form (what `ffmpeg -movflags use_metadata_tags` writes), holding

    disco-spec:manifest-id   the run's manifest id
    disco-spec:spec          the spec, canonical JSON (with the concrete seed)
    disco-spec:version       disco-spec's version
    comment                  one line for players: what made the video and the manifest id

Only `moov`'s size changes, and `moov` follows `mdat` in the files disco-spec encodes (no faststart), so
no sample offset moves; a `moov` before `mdat` is left unstamped (its offsets would need rewriting).
`media_sha256` hashes every top-level box but `free`/`skip`, with `moov/udta` left out: the same for a
video before and after stamping, whatever metadata a stamp writes (a remux by another tool rewrites the
track headers too, and changes it), so it is the video's
`pixels_sha256` in the manifest, as the pixel hash is for PNGs, whose text chunks it leaves out.

Reading is for files from anyone: box sizes are checked against the file, `moov` is read only up to
MAX_MOOV_BYTES, a metadata value only up to MAX_VALUE_BYTES; a malformed file is a SpecError (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

from ..atomic import atomic_write_bytes
from ..errors import SpecError

KEY_MANIFEST_ID = "disco-spec:manifest-id"
KEY_SPEC = "disco-spec:spec"
KEY_VERSION = "disco-spec:version"
MAX_MOOV_BYTES = 64 << 20
MAX_VALUE_BYTES = 8 << 20
MAX_BOXES = 100_000  # top-level and nested boxes read from one file
_CONTAINERS = {b"moov", b"udta", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}
_UTF8 = 1  # the `data` box type indicator of a UTF-8 string


class Mp4FormatError(SpecError):
    def __init__(self, path: str | os.PathLike, why: str):
        super().__init__(f"{path}: {why}", [(str(path), why)])


def is_mp4(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[4:8] == b"ftyp"


def _file_boxes(f: BinaryIO, size: int, where: str | os.PathLike) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, header size, box size) of the top-level boxes, read by seeking (payloads unread)."""
    pos, n = 0, 0
    while pos < size:
        n += 1
        if n > MAX_BOXES:
            raise Mp4FormatError(where, f"more than {MAX_BOXES} boxes")
        f.seek(pos)
        box = _header(f.read(16), pos, size, where)
        yield box
        pos += box[3]


def _header(head: bytes, pos: int, end: int, where: str | os.PathLike) -> tuple[bytes, int, int, int]:
    if len(head) < 8:
        raise Mp4FormatError(where, f"truncated box header at byte {pos}")
    box_size, box_type = struct.unpack(">I4s", head[:8])
    header = 8
    if box_size == 1:
        if len(head) < 16:
            raise Mp4FormatError(where, f"truncated box header at byte {pos}")
        box_size, header = struct.unpack(">Q", head[8:16])[0], 16
    elif box_size == 0:
        box_size = end - pos
    if box_size < header or pos + box_size > end:
        raise Mp4FormatError(where, f"box {box_type!r} at byte {pos} has a bad size ({box_size})")
    return box_type, pos, header, box_size


def _children(data: bytes, start: int, end: int, where: str | os.PathLike) -> list[tuple[bytes, int, int, int]]:
    out, pos = [], start
    while pos < end:
        if len(out) >= MAX_BOXES:
            raise Mp4FormatError(where, f"more than {MAX_BOXES} boxes")
        box = _header(data[pos:pos + 16], pos, end, where)
        out.append(box)
        pos += box[3]
    return out


def _read_moov(path: str | os.PathLike) -> tuple[bytes, int, bool]:
    """(moov box bytes, its offset, whether it follows mdat)."""
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        seen_mdat = False
        for box_type, pos, _, box_size in _file_boxes(f, size, path):
            if box_type == b"mdat":
                seen_mdat = True
            elif box_type == b"moov":
                if box_size > MAX_MOOV_BYTES:
                    raise Mp4FormatError(path, f"moov box of {box_size} bytes (limit MAX_MOOV_BYTES = {MAX_MOOV_BYTES})")
                f.seek(pos)
                return f.read(box_size), pos, seen_mdat
    raise Mp4FormatError(path, "no moov box (not a complete mp4)")


def media_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the video without its metadata (module docstring): every top-level box but free/skip, in
    order, with moov/udta left out."""
    h = hashlib.sha256()
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        for box_type, pos, header, box_size in list(_file_boxes(f, size, path)):
            if box_type in (b"free", b"skip"):
                continue
            h.update(box_type)
            if box_type == b"moov":
                if box_size > MAX_MOOV_BYTES:
                    raise Mp4FormatError(path, f"moov box of {box_size} bytes (limit MAX_MOOV_BYTES = {MAX_MOOV_BYTES})")
                f.seek(pos)
                moov = f.read(box_size)
                for child, cpos, _, csize in _children(moov, header, box_size, path):
                    if child != b"udta":
                        h.update(moov[cpos:cpos + csize])
                continue
            f.seek(pos + header)
            left = box_size - header
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise Mp4FormatError(path, "truncated file")
                h.update(chunk)
                left -= len(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Writing and reading the metadata
# ---------------------------------------------------------------------------------------------


def _box(box_type: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), box_type) + payload


def udta_box(metadata: Mapping[str, str]) -> bytes:
    """moov/udta holding `metadata` as an mdta meta box (keys + ilst of UTF-8 data boxes)."""
    items = list(metadata.items())
    hdlr = _box(b"hdlr", b"\0\0\0\0" + b"\0\0\0\0" + b"mdta" + b"\0" * 12 + b"\0")
    keys = _box(b"keys", b"\0\0\0\0" + struct.pack(">I", len(items)) + b"".join(
        struct.pack(">I", 8 + len(k.encode("utf-8"))) + b"mdta" + k.encode("utf-8") for k, _ in items))
    ilst = _box(b"ilst", b"".join(
        _box(struct.pack(">I", i + 1), _box(b"data", struct.pack(">II", _UTF8, 0) + v.encode("utf-8")))
        for i, (_, v) in enumerate(items)))
    return _box(b"udta", _box(b"meta", b"\0\0\0\0" + hdlr + keys + ilst))


def stamp(path: str | os.PathLike, metadata: Mapping[str, str]) -> bool:
    """Replace the video's moov/udta with `metadata` (atomically); False, and nothing written, when moov comes
    before mdat (then the sample offsets would move)."""
    p = Path(path)
    moov, at, after_mdat = _read_moov(p)
    if not after_mdat:
        return False
    header = 16 if struct.unpack(">I", moov[:4])[0] == 1 else 8
    kept = b"".join(moov[s:s + n] for t, s, _, n in _children(moov, header, len(moov), p) if t != b"udta")
    new_moov = _box(b"moov", kept + udta_box(metadata))
    raw = p.read_bytes()
    atomic_write_bytes(p, raw[:at] + new_moov + raw[at + len(moov):])
    return True


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The mdta metadata of moov/udta/meta as {key: text} (other forms and non-text values are skipped)."""
    moov, _, _ = _read_moov(path)
    header = 16 if struct.unpack(">I", moov[:4])[0] == 1 else 8
    out: dict[str, str] = {}
    for t, s, h, n in _children(moov, header, len(moov), path):
        if t != b"udta":
            continue
        for mt, ms, mh, mn in _children(moov, s + h, s + n, path):
            if mt != b"meta" or mn < mh + 4:
                continue
            boxes = {bt: (bs, bh, bn) for bt, bs, bh, bn in _children(moov, ms + mh + 4, ms + mn, path)}
            if b"keys" not in boxes or b"ilst" not in boxes:
                continue
            ks, kh, kn = boxes[b"keys"]
            names: list[str] = []
            pos = ks + kh + 8
            while pos + 8 <= ks + kn:
                size = struct.unpack(">I", moov[pos:pos + 4])[0]
                if size < 8 or pos + size > ks + kn:
                    raise Mp4FormatError(path, "bad metadata key")
                names.append(moov[pos + 8:pos + size].decode("utf-8", "replace"))
                pos += size
            ls, lh, ln = boxes[b"ilst"]
            for it, is_, ih, in_ in _children(moov, ls + lh, ls + ln, path):
                index = struct.unpack(">I", it)[0] - 1
                for dt, ds, dh, dn in _children(moov, is_ + ih, is_ + in_, path):
                    if dt == b"data" and 0 <= index < len(names) and dn - dh >= 8:
                        kind = struct.unpack(">I", moov[ds + dh:ds + dh + 4])[0] & 0xFFFFFF
                        value = moov[ds + dh + 8:ds + min(dn, dh + 8 + MAX_VALUE_BYTES)]
                        if kind == _UTF8:
                            out[names[index]] = value.decode("utf-8", "replace")
    return out


def video_metadata(spec_json: str, manifest_id: str, version: str) -> dict[str, str]:
    """The metadata a render's mp4 carries."""
    return {KEY_MANIFEST_ID: manifest_id, KEY_SPEC: spec_json, KEY_VERSION: version,
            "comment": f"made by disco-spec {version}; manifest {manifest_id} (disco-spec inspect shows the spec)"}


def video_info(path: str | os.PathLike) -> dict[str, Any]:
    """What `inspect VIDEO.mp4` shows: the metadata, the spec it carries (parsed), manifest id and hashes."""
    from ..hashes import file_sha256
    from .pngmeta import json_text_or_none

    meta = read_metadata(path)
    spec = json_text_or_none(meta.get(KEY_SPEC), f"{path}: {KEY_SPEC}")

    return {"path": str(path), "kind": "video", "manifest_id": meta.get(KEY_MANIFEST_ID),
            "disco_spec_version": meta.get(KEY_VERSION), "spec": spec if isinstance(spec, dict) else None,
            "media_sha256": media_sha256(path), "file_sha256": file_sha256(path), "bytes": Path(path).stat().st_size,
            "other_metadata": {k: v for k, v in meta.items() if k not in (KEY_MANIFEST_ID, KEY_SPEC, KEY_VERSION)}}


def format_video_info(info: Mapping[str, Any]) -> str:
    lines = [f"{info['path']}: mp4, {info['bytes']} bytes"]
    if info.get("spec") is None:
        lines.append("  no disco-spec metadata (not written by disco-spec, or its metadata was replaced)")
    for label, key in (("manifest id", "manifest_id"), ("disco-spec", "disco_spec_version"),
                       ("media sha256", "media_sha256"), ("file sha256", "file_sha256")):
        if info.get(key) is not None:
            lines.append(f"  {label:<14} {info[key]}")
    for k, v in (info.get("other_metadata") or {}).items():
        lines.append(f"  {k}: {v if len(v) <= 200 else v[:197] + '...'}")
    if isinstance(info.get("spec"), dict):
        lines.append("  spec:")
        lines += ["    " + ln for ln in json.dumps(info["spec"], indent=2, sort_keys=True, ensure_ascii=False).splitlines()]
    return "\n".join(lines)
