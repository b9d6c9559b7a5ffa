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
