"""Manifests are input too (issue 14, item 6): a manifest with wrong types, a path out of its run folder
or a 5,000-deep JSON is a bad input (exit 2 naming the field), never a traceback; a file outside the
run folder is never hashed, and its hash and size never printed. `rebuild` keeps the paths a manifest
records (its spec folder, its model paths) inside the same input policy as a render."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from cli_helpers import run_cli
from disco_spec.errors import SpecError
from disco_spec.record.manifest import load_manifest
from disco_spec.record.manifest_schema import inside_run_dir, json_depth_exceeds

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "tests" / "golden" / "smoke.manifest.json").read_text())


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    p = tmp_path / "secret" / "passwd"
    p.parent.mkdir()
    p.write_text("root:x:0:0:root:/root:/bin/bash\n" * 7)
    return p


def run_with(tmp_path: Path, manifest: dict) -> Path:
    run = tmp_path / "a" / "b" / "c" / "run"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_the_golden_manifest_fits_the_schema(tmp_path: Path) -> None:
    assert load_manifest(run_with(tmp_path, GOLDEN))["id"] == GOLDEN["id"]


@pytest.mark.parametrize("edit, field", [
    (lambda m: m["hashed"].__setitem__("outputs", "smoke_0000.png"), "hashed.outputs"),
    (lambda m: m["files"][0].__setitem__("bytes", "many"), "files[0].bytes"),
    (lambda m: m["hashed"]["models"][0].__setitem__("sha256", 12), "hashed.models[0].sha256"),
    (lambda m: m["hashed"]["outputs"][0].__setitem__("item", None), "hashed.outputs[0].item"),
    (lambda m: m.__setitem__("files", {"path": "x"}), "files"),
    (lambda m: m["volatile"].__setitem__("model_paths", [{"role": 1}]), "volatile.model_paths[0].role"),
])
def test_verify_of_a_manifest_with_wrong_types_exits_2_naming_the_field(tmp_path, edit, field) -> None:
    m = copy.deepcopy(GOLDEN)
    edit(m)
    code, out, err = run_cli("verify", str(run_with(tmp_path, m)))
    assert code == 2, err
    assert field in err and "internal error" not in err


def test_a_path_out_of_the_run_folder_is_refused_never_hashed(tmp_path: Path, secret: Path) -> None:
    m = copy.deepcopy(GOLDEN)
    rel = "../../../../secret/passwd"
    run = run_with(tmp_path, m)
    assert (run / rel).resolve() == secret
    m["files"].append({"path": rel, "sha256": "0" * 64, "bytes": 1})
    (run / "manifest.json").write_text(json.dumps(m))
    code, out, err = run_cli("verify", str(run))
    assert code == 2 and "files[3].path" in err and "relative path inside the run folder" in err
    leaked = hashlib.sha256(secret.read_bytes()).hexdigest()
    assert leaked not in out + err and str(secret.stat().st_size) not in out + err
    for bad in ("/etc/passwd", "a/../../x", "C:/x", "a\\..\\x", ""):
        assert inside_run_dir(run, bad) is None


def test_a_symlink_out_of_the_run_folder_is_not_followed(tmp_path: Path, secret: Path) -> None:
    m = copy.deepcopy(GOLDEN)
    run = run_with(tmp_path, m)
    (run / "leak.txt").symlink_to(secret)
    m["files"].append({"path": "leak.txt", "sha256": "0" * 64, "bytes": 1})
    (run / "manifest.json").write_text(json.dumps(m))
    code, out, err = run_cli("verify", str(run))
    assert code == 1
    assert "leak.txt: outside the run folder" in out
    assert hashlib.sha256(secret.read_bytes()).hexdigest() not in out + err


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_diff_and_verify_of_a_5000_deep_json_exit_2(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(nested(5000))
    code, out, err = run_cli("diff", str(deep), str(ROOT / "specs" / "smoke.toml"))
    assert code == 2 and "nested more than" in err, err
    deep_manifest = tmp_path / "run" / "manifest.json"
    deep_manifest.parent.mkdir()
    deep_manifest.write_text('{"id": "x", "hashed": ' + "{\"a\": " * 5000 + "1" + "}" * 5000 + "}")
    code, out, err = run_cli("verify", str(deep_manifest.parent))
    assert code == 2 and "nested more than" in err, err
    assert json_depth_exceeds(json.loads(nested(70))) and not json_depth_exceeds(json.loads(nested(60)))


def test_rebuild_does_not_read_or_hash_files_a_manifest_points_at(tmp_path: Path, secret: Path, monkeypatch) -> None:
    from disco_spec.models import weights
    from disco_spec.repro import rebuild
    from disco_spec.repro.sources import load_source

    m = copy.deepcopy(GOLDEN)
    m["hashed"]["models"][0] = {"role": "diffusion", "name": "custom", "sha256": "1" * 64, "size": 1, "source_url": None}
    m["volatile"] = {"spec_dir": str(secret.parent), "model_paths": [{"role": "diffusion", "name": "custom",
                                                                     "path": str(secret)}]}
    run = run_with(tmp_path, m)
    hashed: list[str] = []
    real = weights.weight_sha256
    monkeypatch.setattr(weights, "weight_sha256", lambda p, **k: hashed.append(str(p)) or real(p, **k))
    src = load_source(run)
    with pytest.raises(Exception) as exc:
        rebuild.check_weights(src, fetch=False)
    assert str(secret) not in hashed
    assert hashlib.sha256(secret.read_bytes()).hexdigest() not in str(exc.value)
    # the recorded spec folder says where relative paths start, not what may be read
    policy = rebuild.source_policy(src)
    assert policy.base == secret.parent
    with pytest.raises(SpecError):
        policy.resolve("passwd", "init.init_image")
    assert rebuild.source_policy(src, allow_paths=[secret.parent]).resolve("passwd", "init.init_image") == secret
    shutil.rmtree(run)


def test_a_png_whose_provenance_has_wrong_types_is_bad_input(tmp_path: Path) -> None:
    from PIL import Image

    from disco_spec.record import pngmeta

    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    pngmeta.set_text(img, {pngmeta.KEY_SPEC: json.dumps(GOLDEN["hashed"]["spec"]), pngmeta.KEY_ITEM: "0",
                           pngmeta.KEY_PROVENANCE: json.dumps({"models": ["x"]})})
    code, out, err = run_cli("diff", str(img), str(img))
    assert code == 2 and "models[0]" in err and "internal error" not in err, err
