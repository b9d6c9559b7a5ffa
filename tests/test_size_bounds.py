"""Every size bounded before work (issue 21, item 4): each refusal exits 2 naming the input, at once."""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path

import pytest

from cli_helpers import run_cli, smoke_doc, write_spec
from disco_spec.errors import SpecError
from disco_spec.record.image_bounds import open_image_bounded

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "specs" / "smoke.toml")


def _quick(*args: str) -> tuple[int, str]:
    start = time.perf_counter()
    code, out, err = run_cli(*args)
    assert time.perf_counter() - start < 5, "refused, but not at once"
    assert "internal error" not in err, err
    return code, out + err


def test_sweep_cells_are_counted_before_they_are_built() -> None:
    values = ",".join(str(v) for v in range(2, 102))
    code, text = _quick("sweep", SMOKE, "--dry-run", "--set", f"steps={values}", "--set", f"clip_guidance_scale={values}",
                        "--set", f"tv_scale={values}", "--set", f"range_scale={values}")
    assert code == 2 and "100000000 cells is more than" in text, text


def test_a_huge_integer_in_set_is_refused_as_in_a_file() -> None:
    code, text = _quick("sweep", SMOKE, "--dry-run", "--set", "steps=" + "9" * 5000)
    assert code == 2 and "--set" in text and "4300 digits" in text, text


def test_batch_name_is_bounded_in_bytes_and_must_be_text(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "long.toml", smoke_doc(run={"batch_name": "𝔸" * 120}))  # 120 letters, 480 bytes
    code, text = _quick("validate", str(path))
    assert code == 2 and "run.batch_name" in text and "480 bytes" in text, text
    doc = smoke_doc()
    path = tmp_path / "surrogate.json"
    path.write_text(json.dumps(doc).replace('"batch_name": "smoke"', '"batch_name": "sm\\ud800ke"'))
    code, text = _quick("validate", str(path))
    assert code == 2 and "run.batch_name" in text and "surrogate" in text, text


def test_an_input_png_is_bounded_by_file_size_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(2 << 30)  # a 2 GiB sparse file: reading it whole took 4.2 GB
    for cmd in (["inspect", str(big)], ["diff", str(big), str(big)], ["rebuild", str(big), "--no-fetch"]):
        code, text = _quick(*cmd)
        assert code == 2 and str(big) in text and "MAX_PNG_BYTES" in text, (cmd, text)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def test_decoded_images_are_bounded_by_pixel_count(tmp_path: Path) -> None:
    huge = _png_header_only(tmp_path / "huge.png", 12000, 12000)  # 3.2 GiB once decoded
    with pytest.raises(SpecError, match="MAX_PIXELS"):
        with open_image_bounded(huge):
            pass
    from disco_spec.repro.outputs import compare_images

    with pytest.raises(SpecError, match="MAX_PIXELS"):
        compare_images(huge, huge)


@pytest.mark.parametrize("body", ['{"a": ' + "[" * 5000 + "]" * 5000 + "}", '{"steps": ' + "9" * 5000 + "}"],
                         ids=["deep", "bigint"])
def test_import_dd_of_deep_or_huge_json_is_exit_2(tmp_path: Path, body: str) -> None:
    report = tmp_path / "x_settings.txt"
    report.write_text(body)
    code, text = _quick("import-dd", str(report))
    assert code == 2 and str(report) in text and ("64 levels" in text or "4300 digits" in text), text
