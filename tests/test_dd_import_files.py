"""import-dd reads what the file says: notebook names, hand-edited files, non-DD files, versions, batch names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli
from disco_spec.errors import SpecError
from disco_spec.spec.dd_import import import_dd_report
from disco_spec.spec.load import validate_document

R52 = Path(__file__).parent / "data" / "dd_reports" / "TimeToDisco(3)_settings.txt"


def _report(**changes) -> dict:
    doc = json.loads(R52.read_text(encoding="utf-8"))
    doc.update(changes)
    return doc


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=4), encoding="utf-8")
    return path


def test_notebook_names_are_read_not_guessed(tmp_path):
    doc = {k: v for k, v in _report().items() if k not in ("width", "height")}
    doc.update(animation_mode="Video Input", width_height=[1088, 640], n_batches=1, display_rate=7, fps=24,
               intermediate_saves=3, use_checkpoint=False, vr_mode=False, set_seed="1234", batch_name="MyRun")
    doc.pop("seed")
    result = import_dd_report(_write(tmp_path / "settings.json", doc))
    spec = validate_document(result.document)
    assert spec.animation.animation_mode == "Video Input"
    assert spec.diffusion.width_height == [1088, 640] and spec.run.n_batches == 1
    assert (spec.run.display_rate, spec.video.fps, spec.saving.intermediate_saves) == (7, 24, 3)
    assert spec.models.use_checkpoint is False and spec.run.set_seed == 1234 and spec.run.batch_name == "MyRun"
    for path in ("animation.animation_mode", "diffusion.width_height", "run.n_batches", "run.display_rate",
                 "video.fps", "run.set_seed"):
        assert path not in result.assumed
    assert not any("not known" in w for w in result.warnings)


def test_cli_gives_exactly_the_files_values(tmp_path):
    doc = {k: v for k, v in _report().items() if k not in ("width", "height")}
    doc.update(animation_mode="Video Input", width_height=[1088, 640], n_batches=1)
    out = tmp_path / "spec.toml"
    code, _, err = run_cli("import-dd", str(_write(tmp_path / "a(0)_settings.txt", doc)), "-o", str(out))
    assert code == 0, err
    text = out.read_text()
    assert 'animation_mode = "Video Input"' in text and "width_height = [\n    1088,\n    640,\n]" in text \
        or "width_height = [ 1088, 640 ]" in text or "width_height = [1088, 640]" in text
    assert "n_batches = 1\n" in text
    header = text.split("\n\n", 1)[0]  # the comment names as guesses only what the file did not give
    assert "Check animation.animation_mode" not in header and "run.n_batches" not in header


def test_the_header_names_the_guessed_mode_and_batches(tmp_path):
    out = tmp_path / "spec.toml"
    code, _, err = run_cli("import-dd", str(_write(tmp_path / "a(0)_settings.txt", _report())), "-o", str(out))
    assert code == 0, err
    assert "Check animation.animation_mode and run.n_batches in particular." in out.read_text().split("\n\n", 1)[0]


def test_truly_unknown_keys_get_did_you_mean(tmp_path):
    result = import_dd_report(_write(tmp_path / "x(0)_settings.txt", _report(clip_guidence_scale=5)))
    assert any("clip_guidence_scale (did you mean 'clip_guidance_scale'?)" in w for w in result.warnings)


def test_package_json_exits_2_saying_what_it_is(tmp_path):
    path = _write(tmp_path / "package.json", {"name": "x", "version": "1.0.0", "scripts": {"test": "jest"}})
    code, _, err = run_cli("import-dd", str(path))
    assert code == 2 and "an npm package.json" in err


@pytest.mark.parametrize("raw, what", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "a PNG image"),
    (b"a castle\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7", "AUTOMATIC1111"),
    (b"name: demo\nlr: 0.1\n", "without Disco Diffusion's settings"),
])
def test_other_files_exit_2_saying_what_they_look_like(tmp_path, raw, what):
    path = tmp_path / "thing.txt"
    path.write_bytes(raw)
    with pytest.raises(SpecError) as ei:
        import_dd_report(path)
    assert what in str(ei.value)


def test_no_text_prompts_exits_2_never_the_demo_prompt(tmp_path):
    doc = {k: v for k, v in _report().items() if k != "text_prompts"}
    doc["prompts"] = ["a cat"]
    with pytest.raises(SpecError) as ei:
        import_dd_report(_write(tmp_path / "p(0)_settings.txt", doc))
    assert "no text_prompts" in str(ei.value) and "'prompts'" in str(ei.value)


def test_a_1000_deep_file_exits_2(tmp_path):
    path = tmp_path / "deep(0)_settings.txt"
    path.write_text('{"text_prompts": ' + "[" * 1000 + "]" * 1000 + "}")
    code, _, err = run_cli("import-dd", str(path))
    assert code == 2 and "levels" in err


def test_hand_edited_json_is_read_with_line_col_warnings(tmp_path):
    text = json.dumps(_report(), indent=4)
    text = text.replace('"clamp_grad": true', '"clamp_grad": True').replace('"clip_denoised": false',
                                                                           '"clip_denoised": False')
    text = "// my favourite settings\n" + text[:-2] + ",\n}"
    path = tmp_path / "h(0)_settings.txt"
    path.write_text(text, encoding="utf-16")
    result = import_dd_report(path)
    spec = validate_document(result.document)
    assert spec.guidance.clamp_grad is True and spec.diffusion.clip_denoised is False
    kinds = " | ".join(result.warnings)
    assert "UTF-16" in kinds and ":1:1: a comment" in kinds and "a trailing comma" in kinds and "Python's True" in kinds


def test_invalid_json_says_the_likely_cause(tmp_path):
    path = tmp_path / "b(0)_settings.txt"
    path.write_text('{"steps": 250, "eta": }')
    with pytest.raises(SpecError) as ei:
        import_dd_report(path)
    assert ei.value.problems[0][0].endswith(":1:23") and "invalid JSON" in ei.value.problems[0][1]


def test_batch_name_option_and_cleaned_file_names(tmp_path):
    doc = _report()
    path = _write(tmp_path / "My Run (3)_settings.txt", doc)  # file name batch 'My Run ' ends with a space
    result = import_dd_report(path)
    assert validate_document(result.document).run.batch_name == "My Run"
    assert any("cleaned to 'My Run'" in w for w in result.warnings)
    named = import_dd_report(path, batch_name="Chosen")
    assert validate_document(named.document).run.batch_name == "Chosen"


def test_null_means_not_set(tmp_path):
    result = import_dd_report(_write(tmp_path / "n(0)_settings.txt", _report(angle=None, zoom=None)))
    assert any("null values read as not set: angle, zoom" in w for w in result.warnings)
    validate_document(result.document)


def test_52_report_with_rotations_imports_them_unchanged(tmp_path):
    doc = _report(rotation_3d_x="0: (0.5)", rotation_3d_y="0: (-1.25), 10: (2)", rotation_3d_z="0: (3)")
    result = import_dd_report(_write(tmp_path / "r(0)_settings.txt", doc), animation_mode="3D")
    spec = validate_document(result.document)
    assert (spec.animation.rotation_3d_x, spec.animation.rotation_3d_y, spec.animation.rotation_3d_z) == (
        "0: (0.5)", "0: (-1.25), 10: (2)", "0: (3)")
    assert result.detected_version == "5.1-5.2"
    assert not any("radians" in w for w in result.warnings)


def test_partial_file_is_version_unknown_and_not_converted(tmp_path):
    doc = {"text_prompts": {"0": ["a"]}, "rotation_3d_x": "0: (0.5)", "translation_z": "0: (1)",
           "animation_mode": "3D", "clip_guidance_scale": 5000, "cutn_batches": 2}
    path = _write(tmp_path / "p(0)_settings.txt", doc)
    result = import_dd_report(path)
    assert result.detected_version == "unknown"
    assert validate_document(result.document).animation.rotation_3d_x == "0: (0.5)"
    assert any("--dd-version 5.0" in w for w in result.warnings)
    converted = import_dd_report(path, dd_version="5.0")
    assert "28.6478897565" in validate_document(converted.document).animation.rotation_3d_x


def test_custom_model_exits_2_asking_for_the_file(tmp_path):
    path = _write(tmp_path / "c(0)_settings.txt", _report(diffusion_model="custom", custom_path="/content/m.pt"))
    code, _, err = run_cli("import-dd", str(path))
    assert code == 2 and "give {path, sha256, config}" in err and "/content/m.pt" in err


def test_progrockdiffusion_partial_settings_convert(tmp_path):
    text = ('// my prd settings\n{\n "text_prompts": {"0": ["a castle"]},\n "ViTB32": 1.0,\n "RN50": 0,\n'
            ' "ViTL14_336": 0.5,\n "sampling_mode": "plms",\n "gobig_scale": 2,\n "fix_brightness_contrast": true,\n}')
    path = tmp_path / "settings.json"
    path.write_text(text)
    result = import_dd_report(path)
    spec = validate_document(result.document)
    assert spec.models.ViTB32 is True and spec.models.RN50 is False
    assert spec.diffusion.diffusion_sampling_mode == "plms"
    assert any(e.get("arch") == "ViT-L-14-336" for e in result.document["models"]["extra_clip_models"])
    text = " | ".join(result.warnings)
    assert "progrockdiffusion settings a spec cannot express" in text and "gobig_scale = 2" in text
    assert "ViTL14_336px = 0.5" in text or "ViTL14_336 = 0.5" in text
