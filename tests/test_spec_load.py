"""Loading and validating specs: TOML/JSON into one model, versions, error messages by field path."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from disco_spec.errors import SpecError
from disco_spec.spec.load import load_spec, read_document, spec_to_document, validate_document
from disco_spec.spec.models import JobSpec


def _problems(doc: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        validate_document(doc)
    return info.value.problems


def test_every_example_spec_validates(specs_dir: Path) -> None:
    files = sorted(specs_dir.glob("*.toml"))
    assert len(files) >= 9
    for f in files:
        assert isinstance(load_spec(f), JobSpec), f


def test_toml_and_json_load_into_the_same_model(tmp_path: Path, smoke_doc: dict) -> None:
    j = tmp_path / "smoke.json"
    j.write_text(json.dumps({"$schema": "../schemas/disco-spec.v1.schema.json", **smoke_doc}))
    from_json = load_spec(j)
    from_toml = validate_document(smoke_doc)
    a, b = spec_to_document(from_json), spec_to_document(from_toml)
    assert a.pop("$schema") == "../schemas/disco-spec.v1.schema.json"
    b.pop("$schema")
    assert a == b


def test_defaults_are_dd52_code_defaults() -> None:
    spec = validate_document({"schema_version": 1})
    # where the user guide differs, the code's #@param defaults win (e.g. disco.py:1889-1896 (BasicSettings cell))
    assert spec.diffusion.eta == 0.8
    assert spec.guidance.rand_mag == 0.05
    assert spec.animation.zoom == "0: (1), 10: (1.05)"
    assert spec.turbo.turbo_preroll == 10
    assert spec.diffusion.width_height == [1280, 768]
    assert spec.diffusion.steps == 250
    assert spec.guidance.clip_guidance_scale == 5000
    assert spec.guidance.range_scale == 150
    assert spec.cuts.cutn_batches == 4
    assert spec.cuts.cut_overview == "[12]*400+[4]*600"
    assert spec.models.enabled_clip_names() == ["ViTB32", "ViTB16", "RN50"]
    assert spec.init.skip_steps == 10 and spec.init.init_scale == 1000
    assert spec.animation.frames_skip_steps == "60%" and spec.animation.frames_scale == 1500
    assert spec.run.n_batches == 50 and spec.run.display_rate == 50
    assert spec.models.diffusion_model == "512x512_diffusion_uncond_finetune_008100"


def test_missing_and_newer_versions_are_refused_with_readable_versions() -> None:
    assert "add `schema_version = 1`" in _problems({})[0][1]
    loc, msg = _problems({"schema_version": 7})[0]
    assert loc == "schema_version" and "newer" in msg and "reads versions 1" in msg
    assert _problems({"schema_version": "1"})[0][0] == "schema_version"


@pytest.mark.parametrize(
    "section, key, suggestion",
    [
        ("cuts", "cutn_batch", "cutn_batches"),
        ("guidance", "clip_guidance_scal", "clip_guidance_scale"),
        ("run", "batchname", "batch_name"),
    ],
)
def test_unknown_key_suggests_the_close_name(section: str, key: str, suggestion: str) -> None:
    loc, msg = _problems({"schema_version": 1, section: {key: 1}})[0]
    assert loc == f"{section}.{key}"
    assert f"did you mean '{suggestion}'" in msg


def test_key_in_wrong_section_points_to_its_section() -> None:
    loc, msg = _problems({"schema_version": 1, "clip_guidance_scale": 5000})[0]
    assert loc == "clip_guidance_scale"
    assert "guidance.clip_guidance_scale" in msg


@pytest.mark.parametrize(
    "patch, path, words",
    [
        ({"run": {"n_batches": "3"}}, "run.n_batches", "integer"),
        ({"run": {"n_batches": 0}}, "run.n_batches", ">= 1"),
        ({"diffusion": {"eta": True}}, "diffusion.eta", "number"),
        ({"diffusion": {"width_height": [100]}}, "diffusion.width_height", "2"),
        ({"diffusion": {"width_height": [32, 64]}}, "diffusion.width_height[0]", ">= 64"),
        ({"diffusion": {"diffusion_sampling_mode": "euler"}}, "diffusion.diffusion_sampling_mode", "'ddim' or 'plms'"),
        ({"animation": {"zoom": "0: (1.0), 10: (abc)"}}, "animation.zoom", "character"),
        ({"cuts": {"cut_overview": "[12]*400+[4]*599"}}, "cuts.cut_overview", "1000"),
        ({"cuts": {"cut_overview": "__import__('os')"}}, "cuts.cut_overview", "character"),
        ({"animation": {"frames_skip_steps": "60.5%"}}, "animation.frames_skip_steps", ""),
        ({"init": {"skip_steps": 250}}, "init.skip_steps", "less than diffusion.steps"),
        ({"prompts": {"text_prompts": ["a:1", "b:-1"]}}, "prompts.text_prompts", "must not sum to 0"),
        ({"prompts": {"text_prompts": {"x": ["a"]}}}, "prompts.text_prompts", "non-negative integer"),
        ({"run": {"set_seed": 2**32}}, "run.set_seed", "4294967295"),
        ({"camera_3d": {"midas_weight": 0}}, "camera_3d.midas_weight", "> 0"),
        ({"models": {"diffusion_model": {"path": "x.pt", "sha256": "abc"}}}, "models.diffusion_model.sha256", "64 hexadecimal"),
    ],
)
def test_bad_values_name_the_field(patch: dict, path: str, words: str) -> None:
    doc = {"schema_version": 1}
    doc.update(copy.deepcopy(patch))
    problems = _problems(doc)
    locs = [loc for loc, _ in problems]
    assert path in locs, problems
    msg = dict(problems)[path]
    assert words in msg, msg
    assert "got" in msg or "must" in msg or "did you mean" in msg


def test_frames_skip_steps_leaving_no_steps_is_refused_in_animation() -> None:
    doc = {"schema_version": 1, "animation": {"animation_mode": "2D", "frames_skip_steps": "100%"}}
    (loc, msg), = _problems(doc)
    assert loc == "animation.frames_skip_steps" and "at least one" in msg


def test_syntax_errors_give_file_line_column(tmp_path: Path) -> None:
    t = tmp_path / "bad.toml"
    t.write_text("schema_version = 1\n[run\nbatch_name = 'x'\n")
    with pytest.raises(SpecError) as info:
        read_document(t)
    assert info.value.problems[0][0] == f"{t}:2:5"
    j = tmp_path / "bad.json"
    j.write_text('{\n  "schema_version": 1,\n  "run": {,}\n}')
    with pytest.raises(SpecError) as info:
        read_document(j)
    assert info.value.problems[0][0] == f"{j}:3:11"


def test_validation_does_not_import_torch(tmp_path: Path, specs_dir: Path) -> None:
    code = (
        "import sys; from disco_spec.spec.load import load_spec; from disco_spec.plan.resolve import resolve_plan;"
        f"s = load_spec({str(specs_dir / 'anim-3d-turbo.toml')!r}); resolve_plan(s);"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
