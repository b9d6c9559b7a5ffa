"""`verify RUN_DIR`: files on disk against their manifest; every changed or missing file is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from disco_spec.record import manifest
from disco_spec.record import pngmeta
from disco_spec.repro.verify import verify_run
from disco_spec.run.renderer import render
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("verify")
    result = render(ROOT / "specs" / "smoke.toml", out, progress=False)
    getattr(result, "manifest", None) or manifest.finalize_run(result, spec_dir=str(ROOT / "specs"))
    return result.run_dir


@pytest.mark.render
@pytest.mark.slow
def test_an_untouched_run_verifies(run_dir: Path) -> None:
    code, out, err = run_cli("verify", str(run_dir))
    assert code == 0, out + err
    assert "ok (3 files match" in out
    report = verify_run(run_dir)
    assert report.ok and report.checked == 3


def test_a_changed_and_a_missing_file_are_named(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    # one changed byte of metadata (pixels untouched) is still a change of the file
    pngmeta.set_text(run / "smoke_0000.png", {"comment": "edited"})
    (run / "plan.json").unlink()
    (run / "progress.png").unlink()  # a preview, not an output: not checked
    code, out, err = run_cli("verify", str(run))
    assert code == 1
    assert "smoke_0000.png: changed" in out and "plan.json: missing" in out
    assert "spec.json" not in out and "progress.png" not in out
    code, out, _ = run_cli("verify", str(run), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert {(p["path"], p["problem"].split(":")[0]) for p in doc["problems"]} == {
        ("smoke_0000.png", "changed"), ("plan.json", "missing")}


def test_an_edited_manifest_is_named(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    m = json.loads((run / "manifest.json").read_text())
    m["hashed"]["spec"]["diffusion"]["steps"] = 13
    (run / "manifest.json").write_text(json.dumps(m))
    code, out, _ = run_cli("verify", str(run))
    assert code == 1 and "manifest.json: edited" in out


def test_verify_bad_input_is_exit_2(tmp_path: Path) -> None:
    code, _, err = run_cli("verify", str(tmp_path))
    assert code == 2 and "no manifest.json" in err
    code, _, err = run_cli("verify", str(tmp_path / "absent"))
    assert code == 2
