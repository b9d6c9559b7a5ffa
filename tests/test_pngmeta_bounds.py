"""PNG metadata from strangers: text chunks that inflate to gigabytes are refused fast (issue 14 item 5)."""

from __future__ import annotations

import io
import time
import tracemalloc
import zlib

import pytest
from PIL import Image

from cli_helpers import run_cli
from disco_spec.record import pngmeta


def _png_bytes(width: int = 8, height: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _zlib_of_zeros(n_bytes: int) -> bytes:
    """zlib stream of n_bytes zeros, built in 1 MiB steps (the test never holds the inflated text)."""
    c = zlib.compressobj(9)
    block = b"\0" * (1 << 20)
    parts = [c.compress(block) for _ in range(n_bytes >> 20)]
    return b"".join(parts) + c.flush()


def _with_chunk(png: bytes, ctype: bytes, data: bytes, before: bytes = b"IDAT") -> bytes:
    chunks = pngmeta.parse_chunks(png)
    at = next(i for i, (t, _) in enumerate(chunks) if t == before)
    return pngmeta.build_png(chunks[:at] + [(ctype, data)] + chunks[at:])


def _itxt_bomb(n_bytes: int, keyword: bytes = b"disco-spec:spec") -> bytes:
    return keyword + b"\0\x01\x00\0\0" + _zlib_of_zeros(n_bytes)


@pytest.mark.parametrize("where", [b"IDAT", b"IEND"])  # before the pixels, and after them
def test_itxt_bomb_is_refused_without_inflating(tmp_path, monkeypatch, where):
    monkeypatch.setattr(pngmeta, "MAX_TEXT_CHUNK_BYTES", 1 << 20)  # keeps the test's memory small
    bomb = _itxt_bomb(48 << 20)  # 48 MiB of text from ~50 KB
    path = tmp_path / "bomb.png"
    path.write_bytes(_with_chunk(_png_bytes(), b"iTXt", bomb, before=where))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(pngmeta.PngFormatError, match="MAX_TEXT_CHUNK_BYTES"):
            pngmeta.read_text(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # inflating it whole took 48 MiB
    assert time.perf_counter() - start < 5
    code, _, err = run_cli("inspect", str(path))
    assert code == 2 and "MAX_TEXT_CHUNK_BYTES" in err and "internal error" not in err


def test_ztxt_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pngmeta, "MAX_TEXT_CHUNK_BYTES", 1 << 20)
    path = tmp_path / "bomb.png"
    path.write_bytes(_with_chunk(_png_bytes(), b"zTXt", b"Comment\0\0" + _zlib_of_zeros(40 << 20)))
    with pytest.raises(pngmeta.PngFormatError, match="MAX_TEXT_CHUNK_BYTES"):
        pngmeta.read_text(path)


def test_many_chunks_share_one_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(pngmeta, "MAX_TEXT_CHUNK_BYTES", 3 << 20)
    monkeypatch.setattr(pngmeta, "MAX_TEXT_TOTAL_BYTES", 5 << 20)
    png = _png_bytes()
    for i in range(3):  # 2 MiB each: every chunk fits, all three do not
        png = _with_chunk(png, b"iTXt", _itxt_bomb(2 << 20, f"k{i}".encode()))
    with pytest.raises(pngmeta.PngFormatError, match="MAX_TEXT_TOTAL_BYTES"):
        pngmeta.text_chunks(pngmeta.parse_chunks(png))


def test_ordinary_compressed_text_still_reads(tmp_path):
    path = tmp_path / "ok.png"
    path.write_bytes(_png_bytes())
    text = "x" * 100_000
    pngmeta.set_text(path, {"disco-spec:spec": text})
    assert pngmeta.read_text(path)["disco-spec:spec"] == text


def test_set_text_replaces_a_bomb_without_inflating_it(tmp_path):
    png = _with_chunk(_png_bytes(), b"iTXt", _itxt_bomb(48 << 20, b"k"))
    out = pngmeta.with_text(png, {"k": "small"})
    assert pngmeta.text_chunks(pngmeta.parse_chunks(out)) == {"k": "small"}


def test_huge_dimensions_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pngmeta, "MAX_PIXELS", 32 * 32)
    path = tmp_path / "big.png"
    path.write_bytes(_png_bytes(40, 40))
    with pytest.raises(pngmeta.PngFormatError, match="MAX_PIXELS"):
        pngmeta.pixels_sha256(path)
