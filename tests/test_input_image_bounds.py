"""Init images and image prompts: a huge header is refused before decoding (issue 14 item 5)."""

from __future__ import annotations

import struct
import zlib

import pytest

from disco_spec.run import images
from disco_spec.errors import SpecError


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG claiming width x height pixels; its few bytes are never decoded."""
    def chunk(ctype: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [20000, 12000])  # past PIL's bomb error, and between its warning and error
def test_huge_init_image_is_a_spec_error_naming_the_limit(tmp_path, side):
    path = tmp_path / "huge.png"
    _png_header_only(path, side, side)
    assert path.stat().st_size < 200
    with pytest.raises(SpecError) as info:
        images.load_init_image(str(path), 64, 64, inputs=None)
    (loc, msg), = info.value.problems
    assert loc == "init.init_image" and "MAX_INPUT_PIXELS" in msg


def test_huge_image_prompt_is_refused(tmp_path):
    path = tmp_path / "huge.png"
    _png_header_only(path, 20000, 20000)
    with pytest.raises(SpecError, match="MAX_INPUT_PIXELS"):
        images.load_image_prompt(str(path), 64, 64, inputs=None)


def test_ordinary_image_still_loads(tmp_path):
    from PIL import Image

    path = tmp_path / "ok.png"
    Image.new("RGB", (80, 48), (255, 0, 0)).save(path)
    x = images.load_init_image(str(path), 64, 64, inputs=None)
    assert tuple(x.shape) == (1, 3, 64, 64) and float(x[0, 0].mean()) == pytest.approx(1.0)
