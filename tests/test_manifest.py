"""Run manifests: canonical id, volatile fields outside it, PNG text chunks, environment fingerprint,
and two renders of one spec giving the same manifest id and identical files."""

from __future__ import annotations

import copy
import io
import json
import tomllib
from pathlib import Path

import pytest
import rfc8785
from PIL import Image, PngImagePlugin

from disco_spec.record import environment
from disco_spec.record import manifest
from disco_spec.record import pngmeta
from disco_spec.run.renderer import render

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())


def render_run(spec, out: Path):
    """Render and return (result, manifest): render() writes the manifest once finalize_run is wired in."""
    result = render(spec, out, progress=False)
    m = getattr(result, "manifest", None) or manifest.finalize_run(result, spec_dir=str(Path(spec).parent))
    return result, m


def write_spec(path: Path, doc: dict) -> Path:
    import tomli_w

    path.write_text(tomli_w.dumps(doc))
    return path


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same two-image spec rendered twice, into unrelated folders."""
    base = tmp_path_factory.mktemp("two-runs")
    doc = copy.deepcopy(SMOKE)
    doc["run"]["n_batches"] = 2
    spec = write_spec(base / "batch2.toml", doc)
    r1, m1 = render_run(spec, base / "first")
    r2, m2 = render_run(spec, base / "elsewhere" / "second")
    return r1, m1, r2, m2


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------


@pytest.mark.render
@pytest.mark.slow
def test_two_renders_give_the_same_manifest_id_and_identical_files(two_runs) -> None:
    r1, m1, r2, m2 = two_runs
    assert r1.run_dir != r2.run_dir
    assert m1["id"] == m2["id"]
    assert m1["hashed"] == m2["hashed"]
    assert m1["files"] == m2["files"]  # file SHA-256s and sizes, PNGs included
    assert [o.sha256 for o in r1.outputs] == [o.sha256 for o in r2.outputs]
    # volatile: the folders differ, the id does not
    assert m1["volatile"]["run_dir"] != m2["volatile"]["run_dir"]


@pytest.mark.render
@pytest.mark.slow
def test_manifest_file_is_canonical_and_its_id_hashes_the_hashed_part(two_runs) -> None:
    r1, m1, _, _ = two_runs
    raw = (r1.run_dir / "manifest.json").read_bytes()
    on_disk = json.loads(raw)
    assert raw.rstrip(b"\n") == rfc8785.dumps(on_disk)
    assert on_disk == m1
    assert manifest.manifest_id(on_disk) == on_disk["id"] == manifest.sha256_canonical(on_disk["hashed"])
    assert manifest.id_matches(on_disk)
    h = on_disk["hashed"]
    assert h["spec_sha256"] == manifest.spec_sha256(r1.spec_document)
    assert h["plan_sha256"] == r1.plan.sha256()
    assert h["items"] == [0, 1]
    assert {m["role"] for m in h["models"]} >= {"diffusion", "clip"}
    for m in h["models"]:
        assert len(m["sha256"]) == 64 and m["size"] > 0 and "path" not in m
    assert set(h["packages"]) >= {"torch", "open_clip", "guided_diffusion", "numpy", "pillow", "opencv", "mlflow"}
    assert h["packages"]["torch"]
    assert h["code"]["disco_spec"]
    env = h["environment"]
    assert env["device"] == "cpu" and env["threads"]["torch"] >= 1
    assert env["torch"]["deterministic_algorithms"] is True
    assert {"python", "os", "cpu", "gpu", "compile"} <= set(env)
    # volatile fields are outside the hashed part
    flat = json.dumps(h)
    for volatile in ("hostname", "created_utc", "run_dir", str(r1.run_dir)):
        assert volatile not in flat
    assert set(on_disk["volatile"]) >= {"hostname", "created_utc", "run_dir", "seconds"}


@pytest.mark.render
@pytest.mark.slow
def test_outputs_record_pixels_in_the_hash_and_files_outside(two_runs) -> None:
    r1, m1, _, _ = two_runs
    outs = m1["hashed"]["outputs"]
    assert [(o["path"], o["item"], o["batch_index"], o["frame"], o["seed"]) for o in outs] == [
        ("smoke_0000.png", 0, 0, 0, 42), ("smoke_0001.png", 1, 1, 0, 43)]
    files = {f["path"]: f for f in m1["files"]}
    assert set(files) == {"spec.json", "plan.json", "smoke_0000.png", "smoke_0001.png"}
    for o in outs:
        p = r1.run_dir / o["path"]
        assert o["pixels_sha256"] == pngmeta.pixels_sha256(p)
        assert files[o["path"]]["sha256"] == pngmeta.file_sha256(p)
        assert files[o["path"]]["bytes"] == p.stat().st_size
        # every final PNG carries the id of the manifest and the provenance
        text = pngmeta.read_text(p)
        assert text[pngmeta.KEY_MANIFEST_ID] == m1["id"]
        assert text[pngmeta.KEY_SEED] == str(o["seed"])
        prov = json.loads(text[pngmeta.KEY_PROVENANCE])
        assert prov["models"] == m1["hashed"]["models"] and prov["environment"] == m1["hashed"]["environment"]
    # RenderResult's records now describe the final files
    assert {o.path: o.sha256 for o in r1.outputs} == {p: f["sha256"] for p, f in files.items() if p.endswith(".png")}


@pytest.mark.render
@pytest.mark.slow
def test_manifest_id_ignores_volatile_fields(two_runs) -> None:
    _, m1, _, _ = two_runs
    other = copy.deepcopy(m1)
    other["volatile"] = {"run_dir": "/somewhere/else", "hostname": "another", "seconds": 99.0}
    other["files"] = []
    assert manifest.manifest_id(other) == m1["id"]
    edited = copy.deepcopy(m1)
    edited["hashed"]["spec"]["guidance"]["clip_guidance_scale"] = 1.0
    assert manifest.manifest_id(edited) != m1["id"] and not manifest.id_matches(edited)


# ---------------------------------------------------------------------------------------------
# PNG text chunks
# ---------------------------------------------------------------------------------------------


def _png_bytes(text: dict[str, str] | None = None) -> bytes:
    img = Image.new("RGB", (5, 3))
    img.putdata([(i * 10, 255 - i * 10, 7) for i in range(15)])
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_set_text_adds_replaces_and_keeps_everything_else(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(_png_bytes({"Software": "x", "disco-spec:manifest-id": "old"}))
    before_pixels = pngmeta.pixels_sha256(p)
    before = pngmeta.read_chunks(p)
    long_value = "é" * 2000  # stored compressed
    pngmeta.set_text(p, {"disco-spec:manifest-id": "new", "disco-spec:long": long_value})
    text = pngmeta.read_text(p)
    assert text["disco-spec:manifest-id"] == "new" and text["Software"] == "x" and text["disco-spec:long"] == long_value
    assert pngmeta.pixels_sha256(p) == before_pixels
    after = pngmeta.read_chunks(p)
    # every non-text chunk is byte-identical and in order
    assert [c for c in before if c[0] not in (b"tEXt", b"iTXt", b"zTXt")] == [
        c for c in after if c[0] not in (b"tEXt", b"iTXt", b"zTXt")]
    with Image.open(p) as img:  # other readers agree
        assert img.text["disco-spec:manifest-id"] == "new"
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_pixels_hash_ignores_text_but_not_pixels(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(_png_bytes())
    b.write_bytes(_png_bytes({"comment": "other metadata"}))
    assert pngmeta.file_sha256(a) != pngmeta.file_sha256(b)
    assert pngmeta.pixels_sha256(a) == pngmeta.pixels_sha256(b)
    img = Image.open(a).copy()
    img.putpixel((0, 0), (1, 2, 3))
    img.save(b)
    assert pngmeta.pixels_sha256(a) != pngmeta.pixels_sha256(b)


def test_bad_png_input_is_a_spec_error(tmp_path: Path) -> None:
    from disco_spec.errors import SpecError

    p = tmp_path / "x.png"
    p.write_bytes(b"not a png at all")
    with pytest.raises(SpecError):
        pngmeta.read_text(p)
    good = _png_bytes()
    p.write_bytes(good[:-20])
    with pytest.raises(SpecError):
        pngmeta.read_chunks(p)


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def test_environment_fingerprint_fields_and_differences() -> None:
    env = environment.capture_environment("cpu")
    assert env["cpu"]["logical_cpus"] >= 1
    assert env["os"]["system"] and env["python"]["version"]
    assert env["gpu"] is None  # no GPU used on the CPU device
    assert "hostname" not in json.dumps(env)
    versions = environment.package_versions()
    assert versions["torch"] and versions["numpy"]
    hashed = {"environment": env, "packages": versions}
    fp = environment.fingerprint(hashed)
    assert set(fp) == set(environment.FINGERPRINT_FIELDS)
    assert fp["environment.device"] == "cpu" and fp["packages.torch"] == versions["torch"]
    other = copy.deepcopy(hashed)
    other["environment"]["threads"]["torch"] += 1
    other["environment"]["python"]["version"] = "0.0"  # not part of the fingerprint
    diffs = environment.fingerprint_differences(hashed, other)
    assert [d[0] for d in diffs] == ["environment.threads.torch"]


def test_code_version_tolerates_missing_git(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    code = environment.code_version()
    assert code["disco_spec"] and len(code["source_sha256"]) == 64
    assert environment.code_checkout()["git_commit"] is None
