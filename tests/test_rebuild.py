"""`rebuild`: a recorded run renders again to the same pixels (whole run, one item, a PNG on its own),
and different weights are refused before anything is rendered."""

from __future__ import annotations

import copy
import json
import shutil
import tomllib
from pathlib import Path

import pytest

from disco_spec import errors
from disco_spec.record import manifest
from disco_spec.record import pngmeta
from disco_spec.repro.rebuild import rebuild
from disco_spec.run.renderer import render
from cli_helpers import run_cli, write_spec

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())


def render_run(spec: Path, out: Path):
    result = render(spec, out, progress=False)
    m = getattr(result, "manifest", None) or manifest.finalize_run(result, spec_dir=str(spec.parent))
    return result, m


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("rebuild")
    doc = copy.deepcopy(SMOKE)
    doc["run"]["n_batches"] = 2
    spec = write_spec(base / "batch2.toml", doc)
    return render_run(spec, base / "out")


@pytest.mark.render
@pytest.mark.slow
def test_rebuild_of_a_run_folder_is_identical_exit_0(batch_run, tmp_path: Path) -> None:
    result, m = batch_run
    code, out, err = run_cli("rebuild", "-q", str(result.run_dir), "--out", str(tmp_path / "again"))
    assert code == 0, out + err
    assert "smoke_0000.png: identical" in out and "smoke_0001.png: identical" in out
    rebuilt = manifest.load_manifest(tmp_path / "again")
    assert rebuilt["id"] == m["id"]  # same machine, same spec: the same manifest, the same files
    assert rebuilt["files"] == m["files"]


@pytest.mark.render
@pytest.mark.slow
def test_rebuild_of_a_single_item_from_the_manifest(batch_run) -> None:
    result, m = batch_run
    report = rebuild(result.run_dir / "manifest.json", item=1)
    assert report.ok and report.items == [1]
    assert [(o.path, o.status) for o in report.outputs] == [("smoke_0001.png", "identical")]
    assert report.rebuilt_id != m["id"]  # a one-item manifest, but the same pixels


@pytest.mark.render
@pytest.mark.slow
def test_a_png_copied_out_of_its_run_can_be_inspected_and_rebuilt_alone(batch_run, tmp_path: Path) -> None:
    result, m = batch_run
    lone = tmp_path / "somewhere" / "keep-this.png"
    lone.parent.mkdir()
    shutil.copyfile(result.run_dir / "smoke_0001.png", lone)

    code, out, err = run_cli("inspect", str(lone), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["manifest_id"] == m["id"]
    assert (info["item"], info["batch_index"], info["frame"], info["seed"]) == (1, 1, 0, 43)
    assert info["spec"] == m["hashed"]["spec"] and info["spec_sha256"] == m["hashed"]["spec_sha256"]
    code, text, _ = run_cli("inspect", str(lone))
    assert code == 0 and "seed           43" in text and m["id"] in text

    code, out, err = run_cli("rebuild", "-q", str(lone))
    assert code == 0, out + err
    assert "items 1" in out and "smoke_0001.png: identical" in out


@pytest.mark.render
@pytest.mark.slow
def test_rebuild_refuses_a_tampered_custom_checkpoint_naming_both_hashes(batch_run, tmp_path: Path) -> None:
    result, m = batch_run
    diffusion = next(w for w in result.weights if w.role == "diffusion")
    ckpt = tmp_path / "my-unet.safetensors"
    shutil.copyfile(diffusion.path, ckpt)
    doc = copy.deepcopy(SMOKE)
    doc["models"]["diffusion_model"] = {"path": "my-unet.safetensors", "sha256": diffusion.sha256, "config": "tiny-uncond"}
    spec = write_spec(tmp_path / "custom.toml", doc)
    r, cm = render_run(spec, tmp_path / "out")
    rec = next(x for x in cm["hashed"]["models"] if x["role"] == "diffusion")
    assert rec["name"] == "custom" and rec["sha256"] == diffusion.sha256

    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    tampered = pngmeta.file_sha256(ckpt)

    # the run folder is outside the spec's folder (no git here): the spec's files need --spec-dir (issue 14)
    code, out, err = run_cli("rebuild", "-q", str(r.run_dir), "--out", str(tmp_path / "never"))
    assert code == 2 and "models.diffusion_model.path" in err and "--spec-dir" in err and tampered not in err
    with pytest.raises(errors.ModelError) as exc:
        rebuild(r.run_dir, spec_dir=tmp_path)
    assert diffusion.sha256 in str(exc.value) and tampered in str(exc.value)
    code, out, err = run_cli("rebuild", "-q", str(r.run_dir), "--out", str(tmp_path / "never"), "--spec-dir", str(tmp_path))
    assert code == 1
    assert "diffusion model custom" in err and diffusion.sha256 in err and tampered in err
    assert not (tmp_path / "never").exists()  # refused before rendering


@pytest.mark.render
@pytest.mark.slow
def test_rebuild_reports_environment_differences_when_outputs_differ(batch_run, tmp_path: Path) -> None:
    """A manifest whose recorded pixels and environment differ from this machine's: exit 1, fields named."""
    result, m = batch_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run)
    doctored = copy.deepcopy(m)
    doctored["hashed"]["outputs"][0]["pixels_sha256"] = "0" * 64
    doctored["hashed"]["environment"]["threads"]["torch"] = 977
    doctored["hashed"]["packages"]["numpy"] = "0.0.1"
    doctored["id"] = manifest.manifest_id(doctored)
    manifest.write_manifest(run / "manifest.json", doctored)
    code, out, err = run_cli("rebuild", "-q", str(run), "--item", "0", "--json")
    assert code == 1, out + err
    report = json.loads(out)
    assert report["ok"] is False
    assert [(o["path"], o["status"]) for o in report["outputs"]] == [("smoke_0000.png", "differs")]
    assert [c["path"] for c in report["fingerprint"]] == ["environment.threads.torch"]
    assert {c["path"] for c in report["environment"]} == {"environment.threads.torch"}
    assert [c["path"] for c in report["packages"]] == ["packages.numpy"]
    assert report["environment"][0]["a"] == 977


def test_rebuild_rejects_bad_input(tmp_path: Path) -> None:
    code, _, err = run_cli("rebuild", str(tmp_path / "nothing-here"))
    assert code == 2 and "no such file" in err
    code, _, err = run_cli("rebuild", str(ROOT / "specs" / "smoke.toml"))
    assert code == 2 and "rebuild needs a manifest" in err
