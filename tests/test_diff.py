"""`diff`: one changed value is named exactly (spec path, or plan field and frames), outputs are compared
by pixels with PSNR and a difference image."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from disco_spec.record import manifest
from disco_spec.repro.compare import diff, plan_differences
from disco_spec.repro.outputs import compare_images
from disco_spec.plan.resolve import resolve_plan
from disco_spec.run.renderer import render
from disco_spec.spec.load import validate_document
from cli_helpers import run_cli, write_spec

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())


def doc_with(**patch) -> dict:
    doc = copy.deepcopy(SMOKE)
    for section, values in patch.items():
        doc.setdefault(section, {}).update(values)
    return doc


def anim(**animation) -> dict:
    return doc_with(animation={"animation_mode": "2D", "max_frames": 20, **animation})


# ---------------------------------------------------------------------------------------------
# Parameters (no rendering)
# ---------------------------------------------------------------------------------------------


def test_a_changed_scalar_is_named_exactly_at_spec_level(tmp_path: Path) -> None:
    a = write_spec(tmp_path / "a.toml", doc_with())
    b = write_spec(tmp_path / "b.toml", doc_with(guidance={"clip_guidance_scale": 6000}))
    report = diff(a, b)
    assert report.parameters() == {"guidance.clip_guidance_scale"}
    assert [(c.a, c.b) for c in report.spec] == [(5000.0, 6000.0)]
    assert not report.same
    code, out, _ = run_cli("diff", str(a), str(b))
    assert code == 1 and "guidance.clip_guidance_scale: 5000.0 → 6000.0" in out
    code, out, _ = run_cli("diff", str(a), str(a))
    assert code == 0 and out.strip().endswith("same")


def test_a_changed_zoom_key_frame_is_named_with_its_frames(tmp_path: Path) -> None:
    a = write_spec(tmp_path / "a.toml", anim(zoom="0: (1), 10: (1.05)"))
    b = write_spec(tmp_path / "b.toml", anim(zoom="0: (1), 10: (1.1)"))
    report = diff(a, b)
    assert report.parameters() == {"zoom"}  # not animation.zoom at spec level: the plan shows it per frame
    ranges = [(c.first, c.last, c.varying) for c in report.plan]
    # frames 1-9 interpolate differently; frames 10-19 all changed 1.05 → 1.1
    assert ranges == [(1, 9, True), (10, 19, False)]
    assert report.plan[1].text() == "frames 10–19: zoom 1.05 → 1.1"
    code, out, _ = run_cli("diff", str(a), str(b), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["same"] is False and doc["spec"] == []
    assert [(p["field"], p["first"], p["last"]) for p in doc["plan"]] == [("zoom", 1, 9), ("zoom", 10, 19)]


def test_plan_level_diff_of_key_frames_collapses_ranges() -> None:
    a = validate_document(anim(zoom="0: (1), 10: (1.1)", angle="0: (0)"))
    b = validate_document(anim(zoom="0: (1), 10: (1.1)", angle="0: (0), 5: (0), 6: (2), 8: (2), 9: (0)"))
    changes = plan_differences(resolve_plan(a), resolve_plan(b))
    assert [c.text() for c in changes] == ["frames 6–8: angle 0.0 → 2.0"]
    # a one-frame change, and frames only one plan has
    c = validate_document(anim(zoom="0: (1), 10: (1.1)", angle="0: (0), 3: (0), 4: (1), 5: (0)", max_frames=22))
    changes = plan_differences(resolve_plan(a), resolve_plan(c))
    assert [ch.text() for ch in changes if ch.field == "angle"] == ["frame 4: angle 0.0 → 1.0"]
    assert [ch.field for ch in changes] == ["angle", "(items)"]  # not one line per field for the extra frames
    assert changes[-1].text() == "frames 20–21: only in B"


def test_a_prompt_change_at_a_frame_is_reported_from_that_frame(tmp_path: Path) -> None:
    prompts_a = {"0": ["a lighthouse"], "12": ["a red lighthouse"]}
    prompts_b = {"0": ["a lighthouse"], "12": ["a blue lighthouse"]}
    a = write_spec(tmp_path / "a.toml", {**anim(), "prompts": {"text_prompts": prompts_a}})
    b = write_spec(tmp_path / "b.toml", {**anim(), "prompts": {"text_prompts": prompts_b}})
    report = diff(a, b)
    assert report.parameters() == {"text_prompts"}
    (c,) = report.plan
    assert c.text() == 'frames 12–19: text_prompts ["a red lighthouse"] → ["a blue lighthouse"]'


def test_a_per_frame_field_unused_by_a_still_is_still_reported(tmp_path: Path) -> None:
    a = write_spec(tmp_path / "a.toml", doc_with())
    b = write_spec(tmp_path / "b.toml", doc_with(animation={"zoom": "0: (1)"}))
    report = diff(a, b)
    assert report.parameters() == {"animation.zoom"}


def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    code, _, err = run_cli("diff", str(tmp_path / "missing.toml"), str(ROOT / "specs" / "smoke.toml"))
    assert code == 2 and "no such file" in err


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


def test_compare_images_psnr_max_and_difference_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    y = x.copy()
    y[0, 0, 0] = 255 - y[0, 0, 0] // 2 if y[0, 0, 0] < 128 else 0
    Image.fromarray(x).save(tmp_path / "x.png")
    Image.fromarray(y).save(tmp_path / "y.png")
    r = compare_images(tmp_path / "x.png", tmp_path / "y.png", tmp_path / "d.png")
    peak = abs(int(x[0, 0, 0]) - int(y[0, 0, 0]))
    assert r["max_abs_diff"] == peak
    mse = peak**2 / (16 * 16 * 3)
    assert r["psnr"] == pytest.approx(10 * np.log10(255**2 / mse))
    d = np.asarray(Image.open(tmp_path / "d.png"))
    assert d[0, 0, 0] == 255 and d.sum() == 255
    same = compare_images(tmp_path / "x.png", tmp_path / "x.png")
    assert same["psnr"] == float("inf") and same["max_abs_diff"] == 0


@pytest.mark.render
@pytest.mark.slow
def test_diff_of_two_runs_compares_outputs(tmp_path: Path) -> None:
    a_spec = write_spec(tmp_path / "a.toml", doc_with())
    b_spec = write_spec(tmp_path / "b.toml", doc_with(diffusion={"eta": 0.5}))
    runs = []
    for s in (a_spec, b_spec):
        r = render(s, tmp_path / s.stem, progress=False)
        getattr(r, "manifest", None) or manifest.finalize_run(r, spec_dir=str(tmp_path))
        runs.append(r.run_dir)
    code, out, err = run_cli("diff", str(runs[0]), str(runs[1]), "--diff-dir", str(tmp_path / "d"), "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert [c["path"] for c in doc["spec"]] == ["diffusion.eta"]
    assert doc["plan"] == [] and doc["models"] == [] and doc["environment"] == []
    (o,) = doc["outputs"]
    assert o["path"] == "smoke_0000.png" and o["status"] == "differs"
    assert o["psnr"] > 0 and o["max_abs_diff"] > 0
    assert Path(o["diff_image"]).is_file()
    # the PNGs alone say the same about their pixels
    code, out, _ = run_cli("diff", str(runs[0] / "smoke_0000.png"), str(runs[1] / "smoke_0000.png"))
    assert code == 1 and "diffusion.eta: 0.8 → 0.5" in out and "PSNR" in out
    code, out, _ = run_cli("diff", str(runs[0] / "smoke_0000.png"), str(runs[0] / "manifest.json"))
    assert code == 0, out
