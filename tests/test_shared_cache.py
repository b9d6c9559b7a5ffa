"""MLflow as the render cache's shared store (tracking.shared_cache): a render or a sweep on one machine, tracked to
a real local MLflow server, serves a render or sweep of the same recipe on another (an empty local cache), verified,
and the other machine keeps what it was served in its own cache; and `cache verify` re-renders what the cache
holds."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from cli_helpers import run_cli, small_smoke_doc, write_spec
from disco_spec.record.ids import recipe_id
from test_render_cache import ROOT, _render, counted  # noqa: F401 - the fixture
from test_tracking import mlflow_server, mlflow_server_proc  # noqa: F401 - the server fixtures


def test_only_a_recipe_hash_goes_into_the_mlflow_filter():
    from disco_spec.tracking.shared_cache import find_recipe_run

    class NoClient:
        def search_experiments(self):
            raise AssertionError("the store was asked")

    assert find_recipe_run(NoClient(), None, "x' or tags.a = 'b", None, Path("/nonexistent")) is None


def test_a_cache_entry_is_kept_only_when_its_check_passes(tmp_path):
    from disco_spec.run.cache import write_entry

    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    (run / "a.png").write_bytes(b"png")
    final = tmp_path / "renders" / ("ab" * 32) / "item-0000"
    outputs = [{"path": "a.png", "item": 0}]
    assert write_entry(final, run, outputs, check=lambda tmp: False) is False
    assert not final.exists() and list(final.parent.iterdir()) == [], "nothing kept, no temp folder left"
    seen = []
    assert write_entry(final, run, outputs, source={"mlflow_run_id": "f" * 32},
                       check=lambda tmp: seen.append(sorted(p.name for p in tmp.iterdir())) or True) is True
    assert seen == [["a.png", "manifest.json", "source.json"]], "checked before it was renamed into place"
    assert json.loads((final / "source.json").read_text()) == {"mlflow_run_id": "f" * 32}


def test_a_sweep_cell_lookup_travels_to_workers_without_its_client_and_never_creates_a_store(tmp_path):
    from disco_spec.scale.jobs import Job
    from disco_spec.tracking.shared_cache import SharedCacheLookup

    uri = f"sqlite:///{tmp_path / 'not-here' / 'mlflow.db'}"
    job = Job(spec_document={}, run_dir=str(tmp_path), shared_caches=(SharedCacheLookup(uri, client=object()),))
    (lookup,) = pickle.loads(pickle.dumps(job)).shared_caches
    assert lookup.tracking_uri == uri and lookup._client is None
    assert lookup.find_cached_render("ab" * 32, 0, tmp_path / "dest") is None
    assert not (tmp_path / "not-here").exists(), "a worker without the store's file must not make one"


@pytest.mark.render
@pytest.mark.slow
@pytest.mark.mlflow_server
def test_a_run_tracked_on_one_machine_serves_a_render_on_another(counted, mlflow_server, monkeypatch):
    from mlflow import MlflowClient

    from disco_spec.run import cache as render_cache
    from disco_spec.spec.load import validate_document
    from disco_spec.tracking.tracker import MlflowTracker

    spec = validate_document(small_smoke_doc(run={"n_batches": 2}))
    first_tracker = MlflowTracker(tracking_uri=mlflow_server, experiment="shared-cache", system_metrics=False)
    first = _render(spec, counted["tmp"] / "a", observers=[first_tracker])
    assert counted["calls"] == [0, 1]
    client = MlflowClient(tracking_uri=mlflow_server)
    assert client.get_run(first_tracker.run_id).data.tags["disco_spec.recipe_id"] == recipe_id(first.manifest)

    # another machine: an empty local cache, the same server
    monkeypatch.setattr(render_cache, "renders_root", lambda: counted["tmp"] / "other-machine-cache")
    second_tracker = MlflowTracker(tracking_uri=mlflow_server, experiment="shared-cache", system_metrics=False)
    second = _render(spec, counted["tmp"] / "b", observers=[second_tracker])
    assert counted["calls"] == [0, 1], "served from the MLflow store, not rendered"
    assert second.manifest["id"] == first.manifest["id"]
    sources = second.manifest["volatile"]["cached_from"]
    assert [s["item"] for s in sources] == [0, 1]
    assert all(s["mlflow_run_id"] == first_tracker.run_id and s["manifest_id"] == first.manifest["id"] for s in sources)
    tags = client.get_run(second_tracker.run_id).data.tags
    assert first_tracker.run_id in tags["disco_spec.cached_from"]
    assert tags["disco_spec.manifest_id"] == first.manifest["id"]

    # what the other machine was served is now in its own cache, verified, naming the run it came from
    kept = render_cache.list_entries(counted["tmp"] / "other-machine-cache")
    assert sorted(e.key for e in kept) == ["item-0000", "item-0001"]
    for e, item in zip(sorted(kept, key=lambda e: e.key), (0, 1)):
        entry = render_cache.verify_entry(e.path, recipe_id(first.manifest), lambda o: o["item"] == item)
        assert entry is not None and [o["item"] for o in entry.outputs] == [item]
        assert entry.source == {"manifest_id": first.manifest["id"], "mlflow_run_id": first_tracker.run_id}

    # a download changed after it was served and before it is stored is not kept (verified as it is stored)
    monkeypatch.setattr(render_cache, "renders_root", lambda: counted["tmp"] / "fourth-machine-cache")
    real_write = render_cache.write_entry

    def change_then_write(final, run_dir, outputs, **kwargs):
        for o in outputs:
            (Path(run_dir) / o["path"]).write_bytes(b"changed")
        return real_write(final, run_dir, outputs, **kwargs)

    monkeypatch.setattr(render_cache, "write_entry", change_then_write)
    fourth = _render(spec, counted["tmp"] / "d", observers=[
        MlflowTracker(tracking_uri=mlflow_server, experiment="shared-cache", system_metrics=False)])
    assert counted["calls"] == [0, 1] and fourth.manifest["id"] == first.manifest["id"], "served, as verified"
    assert render_cache.list_entries(counted["tmp"] / "fourth-machine-cache") == []
    assert not any((counted["tmp"] / "fourth-machine-cache").rglob(".item-*")), "no temp folder left"
    monkeypatch.setattr(render_cache, "write_entry", real_write)

    # an artifact corrupted in the store is detected: the item renders on a third machine
    monkeypatch.setattr(render_cache, "renders_root", lambda: counted["tmp"] / "third-machine-cache")
    from disco_spec.run import cache as rc

    real_verify = rc.verify_entry

    def corrupt_then_verify(folder, recipe, want, source=None):
        if source is not None:  # a download: damage one file before it is checked
            png = Path(folder) / "smoke_0001.png"
            if png.is_file():
                data = bytearray(png.read_bytes())
                data[-40] ^= 0xFF
                png.write_bytes(bytes(data))
        return real_verify(folder, recipe, want, source)

    monkeypatch.setattr(rc, "verify_entry", corrupt_then_verify)
    third = _render(spec, counted["tmp"] / "c", cache=True,
                    observers=[MlflowTracker(tracking_uri=mlflow_server, experiment="shared-cache", system_metrics=False)])
    assert counted["calls"][2:] == [1] and third.manifest["id"] == first.manifest["id"]
    assert [s["item"] for s in third.manifest["volatile"]["cached_from"]] == [0]


@pytest.mark.render
@pytest.mark.slow
@pytest.mark.mlflow_server
def test_a_sweep_tracked_on_one_machine_serves_the_same_sweep_on_another(counted, mlflow_server, monkeypatch):
    from mlflow import MlflowClient

    from disco_spec.run import cache as render_cache
    from disco_spec.tracking import shared_cache

    base = counted["tmp"]
    spec = write_spec(base / "smoke4.toml", small_smoke_doc(diffusion={"steps": 4}))

    def sweep(out: str, *options: str) -> tuple[dict, dict]:
        code, text, err = run_cli("sweep", str(spec), "--set", "clip_guidance_scale=1500,5000", "--set", "eta=0.5,0.8",
                                  "--out", str(base / out), "--quiet", "--json", *options)
        assert code == 0, err
        doc = json.loads(text)
        cells = {c["name"]: c for c in doc["cells"]}
        manifests = {n: json.loads((Path(doc["sweep_dir"]) / n / "manifest.json").read_text()) for n in cells}
        return cells, manifests

    tracked = ("--tracking-uri", mlflow_server, "--experiment", "shared-sweep")
    a_cells, a_manifests = sweep("machine-a", *tracked)
    assert len(counted["calls"]) == 4 and len(a_cells) == 4
    assert all("cached_from" not in m["volatile"] for m in a_manifests.values())
    a_runs = {n: c["mlflow_run_id"] for n, c in a_cells.items()}
    assert all(a_runs.values())

    # machine B: an empty cache of its own, the same server
    cache_b = base / "machine-b-cache"
    monkeypatch.setattr(render_cache, "renders_root", lambda: cache_b)
    b_cells, b_manifests = sweep("machine-b", *tracked)
    assert len(counted["calls"]) == 4, "no cell rendered: every one came from machine A's runs"
    client = MlflowClient(tracking_uri=mlflow_server)
    for name, manifest in b_manifests.items():
        assert manifest["id"] == a_manifests[name]["id"], name
        assert manifest["volatile"]["cached_from"] == [
            {"item": 0, "manifest_id": a_manifests[name]["id"], "mlflow_run_id": a_runs[name]}], name
        tags = client.get_run(b_cells[name]["mlflow_run_id"]).data.tags
        assert a_runs[name] in tags["disco_spec.cached_from"], name
        assert tags["disco_spec.recipe_id"] == recipe_id(a_manifests[name])
    kept = render_cache.list_entries(cache_b)
    assert sorted(e.recipe_id for e in kept) == sorted(recipe_id(m) for m in a_manifests.values())

    # machine B again, untracked: its own cache serves every cell, the server is not asked
    asked = []
    monkeypatch.setattr(shared_cache, "find_recipe_run", lambda *a, **k: asked.append(a))
    _, again = sweep("machine-b-again", "--no-track")
    assert len(counted["calls"]) == 4 and asked == []
    for name, manifest in again.items():
        assert manifest["id"] == a_manifests[name]["id"], name
        assert manifest["volatile"]["cached_from"] == [
            {"item": 0, "manifest_id": a_manifests[name]["id"], "mlflow_run_id": a_runs[name]}], name


@pytest.mark.render
@pytest.mark.slow
def test_cache_verify_renders_again_and_fails_when_the_stack_no_longer_gives_the_same_image(counted, monkeypatch):
    from disco_spec.engine import sampler

    _render(small_smoke_doc_spec(), counted["tmp"] / "out")
    code, out, err = run_cli("cache", "ls")
    assert code == 0 and "item-0000" in out and "1 entry" in out
    code, out, err = run_cli("cache", "verify", "--sample", "1")
    assert code == 0, out + err
    assert "1 same" in out and len(counted["calls"]) == 2

    real = sampler.ddim_sample

    def drifting(*args, **kwargs):  # a stack that is no longer deterministic: a changed value at step 1
        for j, out_ in enumerate(real(*args, **kwargs)):
            if j == 1:
                out_["sample"].add_(1e-3)
            yield out_

    monkeypatch.setattr(sampler, "ddim_sample", drifting)
    code, out, err = run_cli("cache", "verify")
    assert code == 1 and "differs" in out and "smoke_0000.png: pixels" in out
    code, out, _ = run_cli("cache", "prune", "--all")
    assert code == 0 and "removed 1 entry" in out
    assert run_cli("cache", "ls")[1].strip().startswith("0 entries")


def small_smoke_doc_spec():
    from disco_spec.spec.load import validate_document

    return validate_document(small_smoke_doc())
