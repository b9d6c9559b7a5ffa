"""The Ray backend against the local one, on a real local Ray instance with logical GPUs on the CPU.

One Ray instance per module (`ray.init(num_cpus=2, num_gpus=2)`: each task reserves one logical GPU and
renders on the CPU, because the device comes from the spec, not from Ray). Every comparison is of
bytes: manifest ids, every output's SHA-256, every file of the run folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")

from disco_spec import errors  # noqa: E402
from disco_spec.record import manifest  # noqa: E402
from disco_spec.record import pngmeta  # noqa: E402
from disco_spec.repro.verify import verify_run  # noqa: E402
from disco_spec.scale.backends import Job, render_on_backend, run_jobs  # noqa: E402
from disco_spec.spec.load import validate_document  # noqa: E402
from disco_spec.scale.sweep import SweepRequest, plan_sweep, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETS = ["clip_guidance_scale=1500,5000,10000", "steps=4,5"]


def small_smoke(**changes) -> dict:
    doc = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text(encoding="utf-8"))
    doc["diffusion"]["steps"] = 4
    doc["init"]["skip_steps"] = 2
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        doc.setdefault(section, {})[key] = value
    return doc


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    import torch

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Two tasks run at once on a 2-core machine: one torch thread each (the workers take the driver's
    # thread count, so local and Ray renders still use the same settings).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    assert ray.cluster_resources().get("GPU") == 2
    yield
    ray.shutdown()
    torch.set_num_threads(threads)


def tree(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder except manifest.json (whose unhashed part names the folder and time)."""
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def assert_same_run(a: Path, b: Path) -> None:
    ma, mb = manifest.load_manifest(a), manifest.load_manifest(b)
    assert ma["id"] == mb["id"]
    assert ma["files"] == mb["files"]  # every output's (and spec/plan's) SHA-256
    ta, tb = tree(a), tree(b)
    assert ta.keys() == tb.keys()
    assert [k for k in ta if ta[k] != tb[k]] == []


# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The same 3×2 sweep on the local backend (untracked) and on Ray (tracked in sqlite)."""
    from disco_spec.tracking.sweeps import SweepTracker

    base = tmp_path_factory.mktemp("ray-sweep")
    plan = plan_sweep(small_smoke(), SETS)
    local = run_sweep(plan, SweepRequest(out=base / "local"))
    cwd = os.getcwd()
    os.chdir(base)  # new experiments' artifacts go to ./mlruns
    try:
        uri = f"sqlite:///{base / 'mlflow.db'}"
        tracker = SweepTracker(uri)
        on_ray = run_sweep(plan, SweepRequest(out=base / "ray", backend="ray", tracker=tracker))
    finally:
        os.chdir(cwd)
    return {"local": local, "ray": on_ray, "uri": uri, "tracker": tracker}


@pytest.mark.render
@pytest.mark.slow
def test_sweep_on_ray_equals_local(sweeps):
    local, on_ray = sweeps["local"], sweeps["ray"]
    assert [c.manifest_id for c in on_ray.cells] == [c.manifest_id for c in local.cells]
    assert len({c.manifest_id for c in local.cells}) == 6
    assert [c.outputs for c in on_ray.cells] == [c.outputs for c in local.cells]  # every output's sha256
    for a, b in zip(local.cells, on_ray.cells):
        assert_same_run(a.run_dir, b.run_dir)
        for o in b.outputs:
            assert pngmeta.file_sha256(b.run_dir / o["path"]) == o["sha256"]
    assert local.contact_sheet.read_bytes() == on_ray.contact_sheet.read_bytes()
    jl = json.loads(local.sweep_json.read_text())
    jr = json.loads(on_ray.sweep_json.read_text())
    assert jr["backend"] == "ray" and jl["backend"] == "local"
    assert [c["manifest_id"] for c in jr["cells"]] == [c["manifest_id"] for c in jl["cells"]]


def test_ray_sweep_is_tracked_in_the_driver(sweeps):
    from mlflow import MlflowClient

    tracker, on_ray = sweeps["tracker"], sweeps["ray"]
    assert tracker.failure is None
    client = MlflowClient(tracking_uri=sweeps["uri"])
    parent = client.get_run(tracker.parent_run_id)
    assert parent.data.tags["disco_spec.backend"] == "ray" and parent.info.status == "FINISHED"
    kids = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{tracker.parent_run_id}'")
    assert len(kids) == 6
    assert sorted(k.data.tags["disco_spec.manifest_id"] for k in kids) == sorted(c.manifest_id for c in on_ray.cells)
    assert "contact_sheet.png" in {a.path for a in client.list_artifacts(tracker.parent_run_id)}


@pytest.mark.render
@pytest.mark.slow
def test_batch_of_stills_one_task_per_image_equals_local(tmp_path):
    doc = small_smoke(run__n_batches=3, saving__intermediate_saves=1)
    spec = validate_document(doc)
    local = render_on_backend(spec, tmp_path / "local", backend="local", progress=False)
    on_ray = render_on_backend(spec, tmp_path / "ray", backend="ray", progress=False)
    assert [o.item_index for o in on_ray.outputs if o.kind == "image"] == [0, 1, 2]
    assert on_ray.manifest["id"] == local.manifest["id"]
    assert_same_run(local.run_dir, on_ray.run_dir)
    assert not (on_ray.run_dir / ".parts").exists()
    # the merged folder is a normal run folder: verify and resume read it
    assert verify_run(on_ray.run_dir).ok
    state = json.loads((on_ray.run_dir / "run_state.json").read_text())
    assert state["items"] == [0, 1, 2]

    # files copied back to the driver (as from another node) give the same bytes too
    shipped = render_on_backend(spec, tmp_path / "shipped", backend="ray", progress=False, ship_files=True)
    assert shipped.manifest["id"] == local.manifest["id"]
    assert_same_run(local.run_dir, shipped.run_dir)
    assert manifest.load_manifest(shipped.run_dir)["volatile"]["run_dir"] == str(shipped.run_dir.resolve())


@pytest.mark.render
@pytest.mark.slow
def test_resume_continues_a_ray_run_locally(tmp_path):
    from disco_spec.run.renderer import render

    spec = validate_document(small_smoke(run__n_batches=2))
    on_ray = render_on_backend(spec, tmp_path / "ray", backend="ray", progress=False)
    before = tree(on_ray.run_dir)
    (on_ray.run_dir / "smoke_0001.png").unlink()
    (on_ray.run_dir / "manifest.json").unlink()
    resumed = render(spec, tmp_path / "ray", run_dir=on_ray.run_dir, resume=True, progress=False)
    assert resumed.manifest["id"] == on_ray.manifest["id"]
    after = tree(on_ray.run_dir)
    assert after.pop("frames.jsonl").startswith(before.pop("frames.jsonl"))  # the journal gains a line
    assert after == before


@pytest.mark.render
def test_animation_is_one_job_with_sequential_frames(tmp_path):
    doc = small_smoke(animation__animation_mode="2D", animation__max_frames=2)
    spec = validate_document(doc)
    local = render_on_backend(spec, tmp_path / "local", backend="local", progress=False)
    on_ray = render_on_backend(spec, tmp_path / "ray", backend="ray", progress=False)
    assert len([o for o in local.outputs if o.kind == "image"]) == 2
    assert on_ray.manifest["id"] == local.manifest["id"]
    assert_same_run(local.run_dir, on_ray.run_dir)


@pytest.mark.render
def test_separate_specs_as_jobs(tmp_path):
    docs = [validate_document(small_smoke(guidance__clip_guidance_scale=s)) for s in (1000, 2000)]
    from disco_spec.spec.load import spec_to_document

    jobs = [Job(spec_document=spec_to_document(d), run_dir=str(tmp_path / f"r{i}"), label=f"r{i}")
            for i, d in enumerate(docs)]
    seen = []
    results = run_jobs(jobs, "ray", on_result=lambda r: seen.append(r.job.label))
    assert sorted(seen) == ["r0", "r1"] and [r.job.label for r in results] == ["r0", "r1"]
    assert all(r.node_id == ray.get_runtime_context().get_node_id() for r in results)
    local = run_jobs([Job(spec_document=jobs[1].spec_document, run_dir=str(tmp_path / "l1"))], "local")
    assert local[0].manifest_id == results[1].manifest_id
    assert results[0].steps and {s.item for s in results[0].steps} == {0}


def test_task_errors_reach_the_driver_as_themselves(tmp_path):
    doc = small_smoke()
    doc["models"]["diffusion_model"] = "no-such-model"
    spec = validate_document(doc)
    with pytest.raises(errors.DiscoSpecError) as exc:
        render_on_backend(spec, tmp_path, backend="ray", progress=False)
    assert type(exc.value).__module__ == "disco_spec.errors" and "no-such-model" in str(exc.value)


def test_missing_ray_says_how_to_install_it(tmp_path):
    """With `ray` unimportable (as when the extra is not installed): exit 1 and the pip command."""
    import tomli_w

    spec = tmp_path / "s.toml"
    spec.write_text(tomli_w.dumps(small_smoke()))
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what an uninstalled package looks like to `import ray`
        "from disco_spec.cli import app as cli, scale as cli_scale\n"
        "if not any(c.name == 'sweep' for c in cli.app.registered_commands): cli_scale.register(cli.app)\n"
        f"sys.argv = ['disco-spec', 'sweep', {str(spec)!r}, '--set', 'steps=4,5', '--backend', 'ray', '--no-track',"
        f" '--out', {str(tmp_path / 'o')!r}]\n"
        "cli.main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "the Ray backend needs Ray: pip install 'disco-spec[ray]'" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.render
@pytest.mark.slow
def test_a_fresh_driver_gets_the_local_manifest(tmp_path):
    """`disco-spec render --backend ray` in a new process (nothing rendered there yet, so none of the
    settings a render leaves behind): the merged manifest still equals a local render's."""
    import tomli_w

    spec = tmp_path / "s.toml"
    spec.write_text(tomli_w.dumps(small_smoke(run__n_batches=2)))
    code = (
        "import os, sys, json, ray, torch\n"
        "os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)\n"
        "torch.set_num_threads(1)\n"
        f"ray.init(address={ray.get_runtime_context().gcs_address!r}, logging_level='ERROR', log_to_driver=False)\n"
        "from disco_spec.scale.backends import render_on_backend\n"
        f"r = render_on_backend({str(spec)!r}, {str(tmp_path / 'ray')!r}, backend='ray', progress=False)\n"
        "print(json.dumps({'id': r.manifest['id'], 'dir': str(r.run_dir)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    local = render_on_backend(spec, tmp_path / "local", backend="local", progress=False)
    assert got["id"] == local.manifest["id"]
    assert_same_run(local.run_dir, Path(got["dir"]))
