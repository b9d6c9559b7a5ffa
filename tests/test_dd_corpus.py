"""Real settings files from public repositories (tests/data/dd_corpus/SOURCES): each one's expected outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import run_cli
from disco_spec.errors import SpecError
from disco_spec.spec.dd_import import import_dd_report
from disco_spec.spec.load import validate_document

CORPUS = Path(__file__).parent / "data" / "dd_corpus"


def test_every_file_has_a_source_line():
    listed = {line.split()[0] for line in (CORPUS / "SOURCES").read_text().splitlines()[3:] if line.strip()}
    assert listed == {p.name for p in CORPUS.iterdir() if p.name != "SOURCES"}


def _refused(name: str) -> SpecError:
    with pytest.raises(SpecError) as ei:
        import_dd_report(CORPUS / name)
    return ei.value


def test_progrockdiffusion_defaults_refused_naming_its_auto_values():
    err = _refused("prd_settings.json")
    assert [k for k, _ in err.problems] == ["clip_guidance_scale", "clamp_max", "eta"]
    assert all("progrockdiffusion computes or draws" in m for _, m in err.problems)
    # its // comment lines were read, and said so with line:col
    assert any(w.startswith(f"{CORPUS / 'prd_settings.json'}:1:1: a comment") for w in err.warnings)


def test_progrockdiffusion_random_values_refused_by_name():
    err = _refused("prd_random.json")
    assert {k for k, _ in err.problems} == {"range_scale", "clip_guidance_scale", "sat_scale", "eta", "clamp_max",
                                           "cut_ic_pow", "rand_mag", "tv_scale"}


def test_progrockdiffusion_partial_file_without_prompts_exits_2():
    err = _refused("prd_ultra_quality.json")
    assert "no text_prompts" in str(err) and "demo prompt" in str(err)
    assert any(":14:39: a trailing comma" in w for w in err.warnings)


def test_prompts_alone_are_not_a_dd_settings_file():
    assert "not a Disco Diffusion settings file" in str(_refused("prd_change_prompt_sample.json"))


def test_discoart_default_config_imports_with_its_values():
    result = import_dd_report(CORPUS / "discoart_default.yml")
    spec = validate_document(result.document)
    assert spec.prompts.text_prompts == {"0": [
        "A beautiful painting of a singular lighthouse, shining its light across a tumultuous sea of blood by greg "
        "rutkowski and thomas kinkade, Trending on artstation.", "yellow color scheme"]}
    assert spec.diffusion.width_height == [1280, 768] and spec.run.n_batches == 4 and spec.run.display_rate == 1
    assert spec.run.set_seed == "random_seed"
    assert (spec.models.ViTB32, spec.models.ViTB16, spec.models.RN50, spec.models.ViTL14) == (True, True, True, False)
    assert "run.n_batches" not in result.assumed and "diffusion.width_height" not in result.assumed
    extras = next(w for w in result.warnings if w.startswith("discoart settings a spec cannot express"))
    assert "gif_fps = 20" in extras and "save_rate = 20" in extras


def test_cli_prints_the_warnings_of_a_failed_import():
    code, _, err = run_cli("import-dd", str(CORPUS / "prd_settings.json"))
    assert code == 2 and "warning:" in err and "a comment in the JSON" in err and "clip_guidance_scale" in err


LIGHTHOUSE = ("A beautiful painting of a singular lighthouse, shining its light across a tumultuous sea of blood by greg "
              "rutkowski and thomas kinkade, Trending on artstation.")


def _imported(name: str, **kwargs):
    result = import_dd_report(CORPUS / name, **kwargs)
    return result, validate_document(result.document)


def test_dd_52_report_from_alembics_imports_its_values():
    result, spec = _imported("dd_alembics_TimeToDisco(0)_settings.txt")
    assert result.detected_version == "5.1-5.2"
    assert spec.prompts.text_prompts == {"0": [LIGHTHOUSE, "yellow color scheme"], "100": [
        "This set of prompts start at frame 100", "This prompt has weight five:5"]}
    assert spec.run.batch_name == "dd_alembics_TimeToDisco" and spec.run.set_seed == 2599079091
    assert spec.diffusion.width_height == [1280, 768] and spec.diffusion.steps == 250 and spec.init.skip_steps == 10
    assert (spec.models.ViTB32, spec.models.ViTB16, spec.models.RN50, spec.models.ViTL14) == (True, True, True, False)
    assert spec.cuts.cut_overview == "[12]*400+[4]*600" and spec.cuts.cutn_batches == 4
    # its null motion values mean "not set" (a still): DD's defaults, said so
    assert spec.animation.angle == "0:(0)" and any("null values read as not set" in w for w in result.warnings)


def test_hand_commented_dd_56_report_imports_with_its_comments_named():
    result, spec = _imported("dd_rossmurr4y_template.jsonc")
    assert result.detected_version == ">=5.5"
    assert any(w.endswith("dd_rossmurr4y_template.jsonc:2:5: a comment in the JSON (and 7 more): read as DD would "
                          "have meant it") for w in result.warnings)
    assert spec.guidance.clip_guidance_scale == 60000 and spec.guidance.sat_scale == 65000
    assert spec.diffusion.width_height == [832, 512] and spec.diffusion.steps == 500 and spec.init.skip_steps == 400
    assert (spec.models.ViTB32, spec.models.ViTB16, spec.models.ViTL14, spec.models.RN101) == (False, True, True, True)
    assert spec.cuts.cut_innercut == "[2]*200+[4]*200+[20]*600" and spec.run.set_seed == 2212829675
    assert spec.cuts.cut_ic_pow == "[100]*900+[40]*100"  # kept whole (was flattened to 100)
    assert len(spec.prompts.text_prompts["0"]) == 7 and spec.prompts.text_prompts["0"][2].endswith("low quality:-2")


def test_dd_56_report_with_an_empty_prompt_list_exits_2_saying_so():
    err = _refused("dd_rossmurr4y_20220807_UnderwaterCity.txt")
    assert err.problems == [("text_prompts/image_prompts", "frame 0 has no text or image prompt (spec field prompts)")]


def test_forked_dd_report_with_keyframed_eta_exits_2_naming_both_fields():
    err = _refused("dd_mjmaurer_settingsExample.txt")
    assert [k for k, _ in err.problems] == ["eta", "frames_skip_steps"]
    assert "'0:(0.2)'" in err.problems[0][1] and "'0:(.6)'" in err.problems[1][1]


def test_visions_of_chaos_script_exits_2_saying_what_it_is():
    code, _, err = run_cli("import-dd", str(CORPUS / "voc_rossmurr4y_underwater.cyberpunk.v1.txt"))
    assert code == 2 and "a Visions of Chaos script" in err and "invalid JSON" not in err


def test_entmike_dd_yaml_config_imports_its_notebook_names():
    result, spec = _imported("tgg_TimeToDisco.yaml")
    assert spec.run.batch_name == "TimeToDisco" and spec.run.n_batches == 50 and spec.run.display_rate == 50
    assert spec.run.set_seed == "random_seed" and spec.animation.animation_mode == "None"
    assert spec.diffusion.width_height == [1280, 768] and spec.models.use_checkpoint is True
    unknown = next(w for w in result.warnings if w.startswith("keys not known to DD"))
    assert "ViTL14_336 (did you mean 'ViTL14_336px'?)" in unknown and "symmetry_loss" in unknown
    assert not any("batch_name taken as" in w for w in result.warnings)  # the file names its batch


def test_entmike_art_study_few_keys_imports_with_version_unknown():
    result, spec = _imported("tgg_artstudy.yml")
    assert result.detected_version == "unknown"
    assert spec.run.batch_name == "art_study1" and spec.run.n_batches == 1 and spec.run.set_seed == 123
    assert spec.diffusion.steps == 100 and spec.diffusion.width_height == [1280, 768]
    assert "guidance.clip_guidance_scale" in result.assumed  # absent: DD's default, listed
    assert any("modifiers" in w for w in result.warnings)


def test_first_progrockdiffusion_settings_read_as_prd_reads_them():
    result, spec = _imported("prd_njbbaer_sample_settings_rtx_3090.json")
    # prd.py reads set_seed; the file's 'seed' is never read there
    assert spec.run.set_seed == "random_seed"
    assert any("not seed: seed = 3641041723" in w for w in result.warnings)
    assert spec.diffusion.width_height == [640, 400]  # width * width_height_scale (1), as prd.py
    assert spec.run.batch_name == "Default" and spec.run.n_batches == 1 and spec.models.use_secondary_model is False
    assert (spec.models.ViTB32, spec.models.ViTL14, spec.models.RN101, spec.models.RN50x4) == (True, True, True, True)
    assert any("cannot express" in w and "SLIPB16 = True" in w for w in result.warnings)
    assert result.detected_version == "unknown"  # a prd file: no pre-5.1 radians conversion


def test_progrockdiffusion_fork_custom_settings_refused_naming_auto_values():
    err = _refused("prd_tgg_ukiyoe.json")
    assert [k for k, _ in err.problems] == ["clip_guidance_scale", "clamp_max", "eta"]


def test_hydra_defaults_without_prompts_exit_2():
    assert "no text_prompts" in str(_refused("timoangerer_defaults.yaml"))


def test_corpus_spans_authors_and_tools():
    repos = {line.split()[1] for line in (CORPUS / "SOURCES").read_text().splitlines()[3:] if line.strip()}
    owners = {r.split("/")[1] for r in repos}
    assert len(list(CORPUS.iterdir())) - 1 >= 12 and len(owners) >= 8


def test_progrockdiffusion_width_height_scale_multiplies_the_size(tmp_path):
    import json

    doc = json.loads((CORPUS / "prd_njbbaer_sample_settings_rtx_3090.json").read_text())
    doc["width_height_scale"] = 2
    path = tmp_path / "scaled.json"
    path.write_text(json.dumps(doc))
    assert validate_document(import_dd_report(path).document).diffusion.width_height == [1280, 800]
