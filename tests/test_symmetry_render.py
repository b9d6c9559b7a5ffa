"""A tiny render with DD 5.7's symmetry on: mirrored before the last step (transformation_percent = [1.0]),
the final image is left-right symmetric (up to the last step's small ε and guidance terms), while the same
render with symmetry off is not, and top-bottom stays as asymmetric as without."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from disco_spec.run.renderer import render
from disco_spec.spec.load import validate_document

pytestmark = pytest.mark.render

SMOKE = Path(__file__).parent.parent / "specs" / "smoke.toml"


def _render(tmp_path: Path, name: str, **symmetry) -> np.ndarray:
    doc = tomllib.loads(SMOKE.read_text())
    if symmetry:
        doc["symmetry"] = symmetry
    spec = validate_document(doc)
    result = render(spec, tmp_path / name, progress=False)
    with Image.open(result.run_dir / result.outputs[0].path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64)


def _left_right(img: np.ndarray) -> float:
    return float(np.abs(img - img[:, ::-1]).mean())


def _top_bottom(img: np.ndarray) -> float:
    return float(np.abs(img - img[::-1]).mean())


def test_horizontal_symmetry_before_the_last_step_gives_a_mirrored_image(tmp_path: Path) -> None:
    off = _render(tmp_path, "off")
    on = _render(tmp_path, "on", use_horizontal_symmetry=True, transformation_percent=[1.0])
    assert _left_right(off) > 10  # grey levels: a random-weight render is far from symmetric
    assert _left_right(on) < 0.1 * _left_right(off) and _left_right(on) < 3
    assert _top_bottom(on) > 0.5 * _top_bottom(off)  # only the horizontal mirror was asked for
