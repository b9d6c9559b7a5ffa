"""`validate` reports every problem of every stage at once, and checks model names against the registry."""

from __future__ import annotations

from cli_helpers import run_cli, smoke_doc, write_spec
from disco_spec.models.spec_check import spec_file_problems

LONG = "word " * 80  # 82 tokens with start and end


def test_one_validate_names_an_unknown_key_a_grammar_error_a_long_prompt_and_a_model(tmp_path):
    doc = smoke_doc(diffusion={"stepz": 3}, animation={"animation_mode": "2D", "angle": "banana"},
                    models={"diffusion_model": "watercolourdiffusion"})
    doc["prompts"]["text_prompts"] = {"0": ["fine", LONG]}
    code, _, err = run_cli("validate", str(write_spec(tmp_path / "s.toml", doc)))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 4, err
    assert "diffusion.stepz: unknown key 'stepz'; did you mean 'steps'?" in lines[0]
    assert "animation.angle: key-frame value 'banana'" in lines[1]
    assert "prompts.text_prompts.0[1]: prompt is 82 CLIP tokens" in lines[2]
    assert "models.diffusion_model: unknown diffusion model 'watercolourdiffusion'; did you mean 'watercolordiffusion'" \
        in lines[3]


def test_model_suggestions_are_of_the_fields_kind_only(tmp_path):
    doc = smoke_doc(models={"diffusion_model": "RN50x4", "extra_clip_models": [{"name": "tiny-clp"}]})
    problems = dict(spec_file_problems(write_spec(tmp_path / "s.toml", doc)))
    text = problems["models.diffusion_model"]
    assert text.startswith("unknown diffusion model 'RN50x4'")
    assert "RN50x4'?" not in text and "tiny-clip" not in text and "portrait_generator_v001" in text
    assert problems["models.extra_clip_models[0].name"].startswith(
        "unknown CLIP model 'tiny-clp'; did you mean 'tiny-clip'")


def test_custom_asks_for_path_sha256_and_config(tmp_path):
    doc = smoke_doc(models={"diffusion_model": "custom"})
    code, _, err = run_cli("validate", str(write_spec(tmp_path / "s.toml", doc)))
    assert code == 2 and "models.diffusion_model: 'custom'" in err and "give {path, sha256, config}" in err


def test_every_dd_57_model_name_validates(tmp_path):
    for name in ("portrait_generator_v001", "pixelartdiffusion_expanded", "pixel_art_diffusion_hard_256",
                 "pixel_art_diffusion_soft_256", "pixelartdiffusion4k", "watercolordiffusion_2",
                 "watercolordiffusion", "PulpSciFiDiffusion"):
        doc = smoke_doc(models={"diffusion_model": name})
        assert spec_file_problems(write_spec(tmp_path / "s.toml", doc)) == [], name


def test_render_refuses_an_unknown_model_with_exit_2_before_a_run_folder(tmp_path):
    doc = smoke_doc(models={"diffusion_model": "custom"})
    out = tmp_path / "out"
    code, _, err = run_cli("render", str(write_spec(tmp_path / "s.toml", doc)), "--out", str(out), "--no-track", "-q")
    assert code == 2 and "models.diffusion_model" in err and not out.exists()
