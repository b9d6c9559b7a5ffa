"""The render cache (run.cache): a recipe rendered once is served after, verified, never wrong; rebuild,
regress and doctor never read it; a sweep grown by one value renders only its new cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli, small_smoke_doc, write_spec
from disco_spec.record.ids import manifest_id, recipe_id

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# Fast: the recipe id and the cache's bookkeeping
# ---------------------------------------------------------------------------------------------


def test_the_recipe_id_is_the_manifest_id_without_the_outputs():
    hashed = {"spec": {"a": 1}, "models": [], "environment": {"threads": 1}, "items": [0], "outputs": [{"p": 1}]}
    same_recipe_other_outputs = {**hashed, "items": [0, 1], "outputs": [{"p": 2}, {"p": 3}]}
    assert recipe_id(hashed) == recipe_id(same_recipe_other_outputs) == recipe_id({"hashed": hashed, "id": "x"})
    assert manifest_id(hashed) != manifest_id(same_recipe_other_outputs)
    for key, value in (("spec", {"a": 2}), ("models", [{"sha256": "0"}]), ("environment", {"threads": 2})):
        assert recipe_id({**hashed, key: value}) != recipe_id(hashed), key


def test_a_folder_without_a_valid_manifest_is_a_miss_and_prune_removes_the_oldest(tmp_path):
    import os

    from disco_spec.run.cache import list_entries, prune, verify_entry

    assert verify_entry(tmp_path, None, lambda o: True) is None
    (tmp_path / "manifest.json").write_text("{not json")
    assert verify_entry(tmp_path, None, lambda o: True) is None
    root = tmp_path / "renders"
    for n, key in enumerate(("item-0000", "item-0001", "item-0002")):
        entry = root / ("ab" * 32) / key
        entry.mkdir(parents=True)
        (entry / "x.png").write_bytes(b"\0" * 1000)
        os.utime(entry, (1000 + n, 1000 + n))
    (root / ("ab" * 32) / ".item-0003.tmp").mkdir()  # an interrupted write: never listed
    assert [e.key for e in list_entries(root)] == ["item-0002", "item-0001", "item-0000"]
    removed = prune(root, 2500)
    assert [e.key for e in removed] == ["item-0000"]
    assert [e.key for e in list_entries(root)] == ["item-0002", "item-0001"]
    prune(root, 0)
    assert list_entries(root) == []


def test_no_cache_is_an_option_of_render_and_sweep():
    code, out, _ = run_cli("render", "--help")
    assert code == 0 and "--no-cache" in out
    code, out, _ = run_cli("sweep", "--help")
    assert code == 0 and "--no-cache" in out


# ---------------------------------------------------------------------------------------------
# Renders
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """A fresh render cache, a clean checkout, and the number of items the engine diffused."""
    from disco_spec.run import cache as render_cache, diffuse, loop

    monkeypatch.setenv("DISCO_SPEC_RENDER_CACHE_MAX_BYTES", str(2**30))
    monkeypatch.delenv("DISCO_SPEC_RENDER_CACHE", raising=False)  # conftest turns it off for other tests
    monkeypatch.setattr(render_cache, "renders_root", lambda: tmp_path / "render-cache")
    monkeypatch.setattr(render_cache, "checkout_dirty", lambda: False)
    calls: list[int] = []
    real = loop.diffuse_item

    def spy(result, item, *args, **kwargs):
        calls.append(item.index)
        return real(result, item, *args, **kwargs)

    monkeypatch.setattr(loop, "diffuse_item", spy)  # stills
    monkeypatch.setattr(diffuse, "diffuse_item", spy)  # animation frames (run.frames imports it when it runs)
    return {"calls": calls, "root": tmp_path / "render-cache", "tmp": tmp_path}


def _render(spec, out, **options):
    from disco_spec.run.renderer import render

    return render(spec, out, progress=False, spec_dir=str(ROOT / "specs"), **options)


def _two_items():
    from disco_spec.spec.load import validate_document

    return validate_document(small_smoke_doc(run={"n_batches": 2}))


@pytest.mark.render
def test_render_says_when_its_images_came_from_the_cache(counted):
    spec = write_spec(counted["tmp"] / "spec.toml", small_smoke_doc())
    out = counted["tmp"] / "out"
    code, _, err = run_cli("render", str(spec), "--out", str(out), "--no-track")
    assert code == 0 and "render cache" not in err
    code, _, err = run_cli("render", str(spec), "--out", str(out), "--no-track")
    assert code == 0 and "1 item(s) served from the render cache, verified" in err
    assert counted["calls"] == [0]


@pytest.mark.render
def test_a_still_rendered_twice_renders_once_and_gets_the_same_manifest_id(counted):
    spec = _two_items()
    first = _render(spec, counted["tmp"] / "out")
    assert counted["calls"] == [0, 1]
    second = _render(spec, counted["tmp"] / "out")
    assert counted["calls"] == [0, 1], "the second render diffused again"
    assert second.manifest["id"] == first.manifest["id"]
    assert recipe_id(second.manifest) == recipe_id(first.manifest)
    cached_from = second.manifest["volatile"]["cached_from"]
    assert [c["item"] for c in cached_from] == [0, 1]
    assert all(c["manifest_id"] == first.manifest["id"] and c["run_dir"] == str(first.run_dir.resolve())
               for c in cached_from)
    assert "cached_from" not in first.manifest["volatile"]
    # the same files byte for byte (the id chunk stamped again), and the journal lists them
    assert {f["path"]: f["sha256"] for f in second.manifest["files"]} == \
        {f["path"]: f["sha256"] for f in first.manifest["files"]}
    journal = [json.loads(line) for line in (second.run_dir / "frames.jsonl").read_text().splitlines()]
    assert [e["item"] for e in journal] == [0, 1]
    first_journal = [json.loads(line) for line in (first.run_dir / "frames.jsonl").read_text().splitlines()]
    assert [e["checksums"] for e in journal] == [e["checksums"] for e in first_journal]  # served with the items
    # --no-cache renders again, and gets the same id
    third = _render(spec, counted["tmp"] / "out", cache=False)
    assert counted["calls"] == [0, 1, 0, 1] and third.manifest["id"] == first.manifest["id"]
    assert "cached_from" not in third.manifest["volatile"]


@pytest.mark.render
def test_a_corrupted_cached_file_is_detected_and_rendered_again(counted):
    from disco_spec.record.pngmeta import pixels_sha256

    spec = _two_items()
    first = _render(spec, counted["tmp"] / "out")
    rid = recipe_id(first.manifest)
    cached = counted["root"] / rid / "item-0001" / "smoke_0001.png"
    assert cached.is_file()
    data = bytearray(cached.read_bytes())
    data[-40] ^= 0xFF  # inside the image data: the file no longer matches the manifest
    cached.write_bytes(bytes(data))
    second = _render(spec, counted["tmp"] / "out")
    assert counted["calls"] == [0, 1, 1], "only the corrupted item renders again"
    assert second.manifest["id"] == first.manifest["id"]
    assert pixels_sha256(second.run_dir / "smoke_0001.png") == pixels_sha256(first.run_dir / "smoke_0001.png")
    assert [c["item"] for c in second.manifest["volatile"]["cached_from"]] == [0]
    # the entry was replaced by the fresh render's: served again next time
    third = _render(spec, counted["tmp"] / "out")
    assert counted["calls"] == [0, 1, 1] and third.manifest["id"] == first.manifest["id"]


def test_when_the_cache_is_not_used(monkeypatch):
    from disco_spec.run import cache as render_cache

    monkeypatch.setattr(render_cache, "checkout_dirty", lambda: False)
    assert render_cache.for_render(enabled=True, seed_drawn=False, continued=False) is None  # the suite: off
    monkeypatch.delenv("DISCO_SPEC_RENDER_CACHE")
    assert render_cache.for_render(enabled=True, seed_drawn=False, continued=False).read
    assert render_cache.for_render(enabled=False, seed_drawn=False, continued=False) is None  # --no-cache
    assert render_cache.for_render(enabled=True, seed_drawn=False, continued=True) is None  # resume, branch
    drawn = render_cache.for_render(enabled=True, seed_drawn=True, continued=False)
    assert drawn.read is False and drawn.write  # a seed drawn now: stored for later, never served
    monkeypatch.setattr(render_cache, "checkout_dirty", lambda: True)
    assert render_cache.for_render(enabled=True, seed_drawn=False, continued=False) is None


@pytest.mark.render
def test_a_dirty_checkout_is_never_served(counted, monkeypatch):
    from disco_spec.run import cache as render_cache

    spec = _two_items()
    _render(spec, counted["tmp"] / "out")
    monkeypatch.setattr(render_cache, "checkout_dirty", lambda: True)
    second = _render(spec, counted["tmp"] / "out")
    assert counted["calls"] == [0, 1, 0, 1] and "cached_from" not in second.manifest["volatile"]


@pytest.mark.render
@pytest.mark.slow
def test_rebuild_regress_and_doctor_never_read_the_cache(counted, monkeypatch):
    from disco_spec.repro.doctor import run_doctor
    from disco_spec.repro.rebuild import rebuild
    from disco_spec.repro.regress import regress
    from disco_spec.run import cache as render_cache

    spec_file = write_spec(counted["tmp"] / "smoke.toml", small_smoke_doc())
    first = _render(spec_file, counted["tmp"] / "out")
    assert (counted["root"] / recipe_id(first.manifest) / "item-0000").is_dir()

    def no_reads(*args, **kwargs):
        raise AssertionError("the render cache was read")

    monkeypatch.setattr(render_cache.RenderCache, "lookup", no_reads)
    monkeypatch.setattr(render_cache, "verify_entry", no_reads)
    n = len(counted["calls"])
    report = rebuild(first.run_dir, fetch=False)
    assert report.ok and len(counted["calls"]) == n + 1
    golden = counted["tmp"] / "golden"
    regress([spec_file], golden, update=True)
    assert len(counted["calls"]) == n + 2
    doctor = run_doctor("cpu", steps=None, spec_path=spec_file)
    assert doctor.differences == [] and len(counted["calls"]) == n + 4


@pytest.mark.render
@pytest.mark.slow
def test_a_sweep_grown_by_one_value_renders_only_the_new_cells(counted, monkeypatch):
    from mlflow import MlflowClient

    base = counted["tmp"]
    spec = write_spec(base / "smoke4.toml", small_smoke_doc(diffusion={"steps": 4}))
    uri = f"sqlite:///{base / 'mlflow.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(base)  # MLflow puts the artifacts of new experiments under ./mlruns

    def sweep(*sets: str) -> dict:
        code, out, err = run_cli("sweep", str(spec), *sum((["--set", s] for s in sets), []), "--out",
                                 str(base / "out"), "--tracking-uri", uri, "--quiet", "--json")
        assert code == 0, err
        return json.loads(out)

    first = sweep("clip_guidance_scale=1500,5000", "eta=0.5,0.8")
    assert len(counted["calls"]) == 4
    second = sweep("clip_guidance_scale=1500,5000,10000", "eta=0.5,0.8")
    assert len(counted["calls"]) == 6, "only the two cells with the new value render"
    ids_first = {c["name"]: c["manifest_id"] for c in first["cells"]}
    ids_second = {c["name"]: c["manifest_id"] for c in second["cells"]}
    assert len(ids_second) == 6
    assert [ids_second[n] for n in ids_first if n in ids_second] == [ids_first[n] for n in ids_first if n in ids_second]
    sd = Path(second["sweep_dir"]) if "sweep_dir" in second else base / "out" / "smoke" / "sweep-0002"
    assert (sd / "contact_sheet.png").is_file()
    from disco_spec.scale.contact_sheet import sweep_contact_sheet
    from disco_spec.scale.sweep import plan_sweep

    plan = plan_sweep(spec, ["clip_guidance_scale=1500,5000,10000", "eta=0.5,0.8"])
    assert len(sweep_contact_sheet(plan, {c.index: sd / c.name / "smoke_0000.png" for c in plan.cells})
               .info["cell_boxes"]) == 6
    cached = [json.loads((sd / c.name / "manifest.json").read_text())["volatile"].get("cached_from")
              for c in plan.cells]
    assert sum(bool(c) for c in cached) == 4
    client = MlflowClient(tracking_uri=uri)
    parent = second["mlflow"]["parent_run_id"]
    exp = client.get_run(parent).info.experiment_id
    kids = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(kids) == 6
    assert {k.data.tags["disco_spec.manifest_id"] for k in kids} == set(ids_second.values())
    assert all(k.data.tags.get("disco_spec.recipe_id") for k in kids)
    assert sum("disco_spec.cached_from" in k.data.tags for k in kids) == 4


@pytest.mark.render
def test_an_animation_is_served_whole(counted):
    from disco_spec.spec.load import validate_document

    spec = validate_document(small_smoke_doc(animation={"animation_mode": "2D", "max_frames": 3}))
    first = _render(spec, counted["tmp"] / "out")
    assert counted["calls"] == [0, 1, 2]
    second = _render(spec, counted["tmp"] / "out")
    assert counted["calls"] == [0, 1, 2], "the frames were rendered again"
    assert second.manifest["id"] == first.manifest["id"]
    assert [c["item"] for c in second.manifest["volatile"]["cached_from"]] == [0, 1, 2]
    entries = list((counted["root"] / recipe_id(first.manifest)).iterdir())
    assert [e.name[:7] for e in entries] == ["frames-"]
