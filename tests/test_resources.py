"""Memory before it fails: the estimate behind `plan --resources` matches what was measured, and `render`
refuses what the device cannot hold (exit 2 naming the setting) unless --force."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cli_helpers import run_cli, write_spec
from disco_spec.errors import SpecError
from disco_spec.plan.resolve import resolve_plan, with_concrete_seed
from disco_spec.run import resources
from disco_spec.spec.load import load_spec, validate_document

ROOT = Path(__file__).resolve().parent.parent
MEASURED = json.loads((ROOT / "bench" / "results" / "dd-reference-h200.json").read_text())


def _dd_default(width: int, height: int, secondary: bool):
    doc = tomllib.loads((ROOT / "specs" / "dd-default-still.toml").read_text())
    doc.setdefault("diffusion", {})["width_height"] = [width, height]
    doc.setdefault("models", {})["use_secondary_model"] = secondary
    spec, _ = with_concrete_seed(validate_document(doc))
    return spec, resolve_plan(spec)


@pytest.mark.parametrize("run", MEASURED["runs"], ids=lambda r: f"{r['width']}x{r['height']}-secondary-{r['secondary']}")
def test_dds_default_fits_where_dds_fits(run) -> None:
    """With disco-spec's default settings the estimate is within 5 % of DD 5.2's measured peak, and not above it
    (an 8 GiB card renders DD's default as DD did); the time within 10 %."""
    spec, plan = _dd_default(run["width"], run["height"], run["secondary"])
    assert spec.engine.batch_cut_batches is False  # a memory-for-speed lever: opt-in
    est = resources.estimate_resources(spec, plan, "cuda")
    gib = est.peak_bytes / 2**30
    assert run["peak_gib"] * 0.95 <= gib <= run["peak_gib"], gib
    assert est.h200_seconds_per_step == pytest.approx(run["s_per_step_early"], rel=0.10)
    # the copy the package carries is the file's, and the estimate states its error against each measured peak
    assert resources.MEASURED_PEAKS[(run["width"], run["height"], run["secondary"])] == run["peak_gib"]
    line = f"{run['width']}x{run['height']}, secondary {'on' if run['secondary'] else 'off'}: measured {run['peak_gib']:.2f} GiB"
    assert any(e.startswith(line) and e.endswith(" %)") for e in est.errors), est.errors
    assert len(est.errors) == len(MEASURED["runs"]) == len(resources.MEASURED_PEAKS)


def test_batching_cut_batches_costs_memory_and_the_limit_brings_it_back() -> None:
    spec, plan = _dd_default(1280, 768, True)
    one = resources.estimate_resources(spec, plan, "cuda")
    batched = spec.model_copy(update={"engine": spec.engine.model_copy(update={"batch_cut_batches": True})})
    all_at_once = resources.estimate_resources(batched, plan, "cuda")
    limited = batched.model_copy(update={"engine": batched.engine.model_copy(update={"max_cuts_per_forward": 16})})
    assert all_at_once.peak_bytes > one.peak_bytes
    assert resources.estimate_resources(limited, plan, "cuda").peak_bytes == one.peak_bytes
    # fp32 on a CPU: the activations count twice
    assert resources.estimate_resources(spec, plan, "cpu").parts["image activations (diffusion.width_height)"] == \
        2 * one.parts["image activations (diffusion.width_height)"]


def test_a_huge_image_is_refused_naming_width_height(tmp_path: Path, smoke_doc: dict) -> None:
    smoke_doc["diffusion"]["width_height"] = [8192, 8192]
    path = write_spec(tmp_path / "huge.toml", smoke_doc)
    code, _, err = run_cli("render", str(path), "--out", str(tmp_path / "out"), "--no-track", "-q")
    assert code == 2, err
    assert "diffusion.width_height" in err and "--force" in err and "GiB" in err
    assert not (tmp_path / "out").exists()  # refused before a run folder was made


def test_a_tall_thin_image_costs_its_padded_square(smoke_doc: dict) -> None:
    smoke_doc["diffusion"]["width_height"] = [8192, 64]
    spec, _ = with_concrete_seed(validate_document(smoke_doc))
    est = resources.estimate_resources(spec, resolve_plan(spec), "cpu")
    assert est.parts["padded overview (the longer side squared)"] == 8192 * 8192 * resources.PER_PADDED_PIXEL
    with pytest.raises(SpecError) as exc:
        resources.check_fits(est, available=est.peak_bytes // 2)
    assert exc.value.problems[0][0] == "diffusion.width_height"


@pytest.mark.render
def test_force_starts_a_render_the_estimate_would_refuse(tmp_path: Path, smoke_doc: dict, monkeypatch) -> None:
    monkeypatch.setattr(resources, "available_bytes", lambda device: 1)  # "no memory free"
    smoke_doc["diffusion"]["steps"] = 3
    smoke_doc["init"]["skip_steps"] = 1
    path = write_spec(tmp_path / "s.toml", smoke_doc)
    code, _, err = run_cli("render", str(path), "--out", str(tmp_path / "refused"), "--no-track", "-q")
    assert code == 2 and "--force" in err
    code, _, err = run_cli("render", str(path), "--out", str(tmp_path / "forced"), "--no-track", "-q", "--force")
    assert code == 0, err
    assert list((tmp_path / "forced").rglob("manifest.json"))


def test_plan_resources_prints_both_devices() -> None:
    code, out, err = run_cli("plan", str(ROOT / "specs" / "dd-default-still.toml"), "--resources")
    assert code == 0, err
    assert "expected peak memory on cuda" in out and "expected peak memory on cpu" in out
    assert "time per step on an H200" in out
    cuda_gib = float(out.split("expected peak memory on cuda: ")[1].split(" GiB")[0])
    assert 6.2 * 0.95 <= cuda_gib <= 6.2  # DD 5.2 measured 6.2 GiB on these settings
    assert "the estimate against measured peaks" in out and out.count("measured ") >= 3


def test_the_refusal_names_the_setting_and_force(smoke_doc: dict) -> None:
    smoke_doc["cuts"]["cutn_batches"] = 64
    smoke_doc["engine"] = {"batch_cut_batches": True}
    spec, _ = with_concrete_seed(validate_document(smoke_doc))
    est = resources.estimate_resources(spec, resolve_plan(spec), "cuda")
    with pytest.raises(SpecError) as exc:
        resources.check_fits(est, available=est.peak_bytes // 2)
    assert exc.value.problems[0][0] == "cuts.cutn_batches"
    assert "engine.batch_cut_batches" in str(exc.value) and "--force" in str(exc.value)


def test_the_machines_free_memory_is_read() -> None:
    free = resources.available_bytes("cpu")
    assert free is not None and free > 0
    assert load_spec(ROOT / "specs" / "smoke.toml")  # the smoke spec fits any machine that runs the tests
