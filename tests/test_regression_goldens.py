"""Every regression spec has a consistent golden: the same spec, and images whose pixels the manifest names."""

from __future__ import annotations

from pathlib import Path

import pytest

from disco_spec.record import manifest, pngmeta
from disco_spec.plan.resolve import resolve_plan
from disco_spec.spec.load import load_spec, validate_document

ROOT = Path(__file__).resolve().parent.parent
REGRESSION = ROOT / "specs" / "regression"
SPECS = sorted(REGRESSION.glob("*.toml"))
# every code path the renderer has has a golden: PLMS, secondary off, init + LPIPS, Perlin, image prompts + fuzzy,
# two CLIP models with 2 cut batches, tv/sat scales, 2D and 3D animation (depth warps), turbo, VR
PATHS = {"plms", "plms-no-secondary", "no-secondary", "init-lpips", "perlin", "image-prompt-fuzzy", "two-clips", "tv-sat",
         "anim-2d", "anim-3d", "turbo", "vr"}


def test_every_code_path_has_a_regression_spec():
    assert PATHS <= {p.stem for p in SPECS}


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_golden_matches_its_spec_and_its_images(spec_path: Path):
    golden = manifest.load_manifest(REGRESSION / "golden" / f"{spec_path.stem}.manifest.json")
    assert manifest.id_matches(golden)
    hashed = golden["hashed"]
    recorded = validate_document(hashed["spec"])
    assert recorded == load_spec(spec_path), "the spec changed since its golden was made: regenerate it (--update)"
    resolve_plan(recorded)  # still plans (the plan hash itself may move with plan-format changes)
    images = [o for o in hashed["outputs"] if o["kind"] == "image"]
    assert images
    for o in images:
        img = REGRESSION / "golden" / spec_path.stem / o["path"]
        assert img.is_file() and img.stat().st_size < 64 * 1024
        assert pngmeta.pixels_sha256(img) == o["pixels_sha256"]
