"""`regress`: the smoke spec against its checked-in golden manifest; a changed spec value fails (exit 1)
with a JUnit <failure>."""

from __future__ import annotations

import pytest
import shutil
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

from disco_spec.record import manifest
from disco_spec.repro.regress import compare_with_golden, regress
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
SMOKE_TOML = ROOT / "specs" / "smoke.toml"


def test_checked_in_golden_files_are_consistent() -> None:
    m = manifest.load_manifest(GOLDEN / "smoke.manifest.json")
    assert manifest.id_matches(m)
    (out,) = m["hashed"]["outputs"]
    img = GOLDEN / "smoke" / out["path"]
    assert img.is_file() and img.stat().st_size < 64 * 1024
    from disco_spec.record import pngmeta

    assert pngmeta.pixels_sha256(img) == out["pixels_sha256"]
    assert pngmeta.read_text(img)[pngmeta.KEY_MANIFEST_ID] == m["id"]


@pytest.mark.render
@pytest.mark.slow
def test_smoke_passes_against_the_checked_in_golden(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    code, out, err = run_cli("regress", str(SMOKE_TOML), "--golden", str(GOLDEN), "--junit", str(junit))
    assert code == 0, out + err
    assert out.startswith("PASS smoke [")
    # byte-exact where the golden was made, within PSNR elsewhere; either way the report says which
    assert "[byte-exact]" in out or ("[psnr]" in out and "environment differs" in out)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "0" and suite.get("errors") == "0"
    (case,) = suite.findall("testcase")
    assert case.get("name") == "smoke" and case.find("failure") is None


@pytest.mark.render
@pytest.mark.slow
def test_a_changed_spec_value_fails_with_a_junit_failure(tmp_path: Path) -> None:
    doc = tomllib.loads(SMOKE_TOML.read_text())
    doc["diffusion"]["eta"] = 0.5
    import tomli_w

    changed = tmp_path / "smoke.toml"  # the same stem: compared with the smoke golden
    changed.write_text(tomli_w.dumps(doc))
    junit = tmp_path / "report" / "junit.xml"
    code, out, err = run_cli("regress", str(changed), "--golden", str(GOLDEN), "--junit", str(junit))
    assert code == 1, out + err
    assert out.startswith("FAIL smoke")
    assert "diffusion.eta: 0.8 → 0.5" in out
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite.get("failures") == "1"
    failure = suite.find("testcase").find("failure")
    assert failure is not None and "diffusion.eta" in failure.get("message")
    assert "smoke_0000.png" in failure.text  # the image differs too


@pytest.mark.render
@pytest.mark.slow
def test_update_writes_golden_files_that_then_pass_byte_exact(tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    report = regress([SMOKE_TOML], golden, update=True)
    assert report.ok and report.cases[0].status == "updated"
    m = manifest.load_manifest(golden / "smoke.manifest.json")
    assert (golden / "smoke" / "smoke_0000.png").is_file()
    assert "hostname" not in m["volatile"] and "run_dir" not in m["volatile"]
    again = regress([SMOKE_TOML], golden)
    assert again.ok and again.cases[0].mode == "byte-exact", again.to_text()


@pytest.mark.render
@pytest.mark.slow
def test_off_fingerprint_comparison_uses_psnr(tmp_path: Path) -> None:
    """A golden from 'another machine' (another thread count, slightly different pixels): compared by PSNR."""
    import numpy as np
    from PIL import Image

    keep = tmp_path / "renders"
    regress([SMOKE_TOML], GOLDEN, out=keep)  # the render stays in keep/smoke for the comparisons below
    run_dir = keep / "smoke"
    rendered = manifest.load_manifest(run_dir)

    golden = tmp_path / "golden"
    shutil.copytree(GOLDEN, golden)
    m = manifest.load_manifest(golden / "smoke.manifest.json")
    m["hashed"]["environment"]["threads"]["torch"] = 977
    m["hashed"]["outputs"][0]["pixels_sha256"] = "0" * 64
    m["id"] = manifest.manifest_id(m)
    manifest.write_manifest(golden / "smoke.manifest.json", m)
    img_path = golden / "smoke" / "smoke_0000.png"
    px = np.asarray(Image.open(run_dir / "smoke_0000.png")).copy()
    px[0, 0] ^= 1  # one pixel off by one: PSNR far above 40 dB
    Image.fromarray(px).save(img_path)

    case = compare_with_golden(SMOKE_TOML, golden, rendered, run_dir)
    assert case.status == "passed" and case.mode == "psnr", case.messages
    assert any("threads.torch: 977 →" in d for d in case.details)
    assert any("smoke_0000.png: within tolerance (PSNR" in d for d in case.details)

    strict = compare_with_golden(SMOKE_TOML, golden, rendered, run_dir, psnr_threshold=1000)
    assert strict.status == "failed" and "below the threshold 1000 dB" in strict.messages[0]

    # without the golden image, an off-fingerprint difference cannot be measured: a failure, said so
    img_path.unlink()
    blind = compare_with_golden(SMOKE_TOML, golden, rendered, run_dir)
    assert blind.status == "failed" and "no golden image" in blind.messages[0]

    # on the fingerprint, any pixel difference fails
    m["hashed"]["environment"] = rendered["hashed"]["environment"]
    m["hashed"]["packages"] = rendered["hashed"]["packages"]
    manifest.write_manifest(golden / "smoke.manifest.json", m)
    exact = compare_with_golden(SMOKE_TOML, golden, rendered, run_dir)
    assert exact.mode == "byte-exact" and exact.status == "failed"
    assert "byte-exact expected" in exact.messages[0]


def test_regress_bad_input_is_exit_2(tmp_path: Path) -> None:
    code, _, err = run_cli("regress", str(tmp_path / "nope.toml"), "--golden", str(GOLDEN))
    assert code == 2
    code, _, err = run_cli("regress", str(SMOKE_TOML), "--golden", str(tmp_path / "absent"))
    assert code == 2 and "no such folder" in err
    code, _, err = run_cli("regress", str(SMOKE_TOML), "--golden", str(GOLDEN), "--psnr-threshold", "-1")
    assert code == 2
