"""What a person sees of tracked renders in MLflow, against real stores: two `disco-spec render`s of the
smoke spec (the second with clip_guidance_scale = 1500) into a sqlite store, then `disco-spec ui` serving
that store on 127.0.0.1, read back over MLflow's REST API (runs, run names, params, tags, the
experiment's view, images, times, system metrics); an animation's per-frame metrics; and --no-track
never importing mlflow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from cli_helpers import run_cli, write_spec

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "specs" / "smoke.toml"


def _small_smoke(**guidance) -> dict:
    doc = tomllib.loads(SMOKE.read_text(encoding="utf-8"))
    doc["diffusion"]["steps"] = 4
    doc["init"]["skip_steps"] = 1
    doc["run"]["display_rate"] = 2
    doc["guidance"].update(guidance)
    return doc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two tracked `disco-spec render`s (smoke, then smoke with clip_guidance_scale = 1500) in one sqlite store."""
    base = tmp_path_factory.mktemp("tracked")
    old_cwd = os.getcwd()
    os.chdir(base)  # MLflow puts new experiments' artifacts under ./mlruns
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    uri = f"sqlite:///{base / 'mlflow.db'}"
    runs = []
    try:
        for name, doc in (("smoke.toml", _small_smoke()), ("smoke-1500.toml", _small_smoke(clip_guidance_scale=1500))):
            spec = write_spec(base / name, doc)
            code, out, err = run_cli("render", str(spec), "--out", str(base / "out"), "--tracking-uri", uri, "--quiet")
            assert code == 0, err
            runs.append({"spec": spec, "out": out, "err": err})
    finally:
        os.chdir(old_cwd)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return {"base": base, "uri": uri, "runs": runs}


def _run_id(err: str) -> str:
    m = re.search(r"MLflow run ([0-9a-f]{32}) in ", err)
    assert m, err
    return m.group(1)


@pytest.mark.render
@pytest.mark.slow
def test_render_prints_the_run_url_and_the_command_that_serves_it(rendered):
    err = rendered["runs"][0]["err"]
    rid = _run_id(err)
    assert f"MLflow run: http://127.0.0.1:5000/#/experiments/1/runs/{rid}" in err
    assert "MLflow runs: http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning" in err
    assert f"(serve them with: disco-spec ui --tracking-uri '{rendered['uri']}')" in err


@pytest.fixture(scope="module")
def ui_server(rendered):
    """`disco-spec ui --port P --tracking-uri URI` in a subprocess; its printed lines once it is up."""
    port = _free_port()
    log = open(rendered["base"] / "ui.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "disco_spec.cli", "ui", "--port", str(port), "--tracking-uri", rendered["uri"]],
        cwd=rendered["base"], stdout=subprocess.PIPE, stderr=log, env=env, text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        assert lines and lines[-1].startswith("Press Ctrl-C"), (lines, (rendered["base"] / "ui.log").read_text()[-3000:])
        yield {"base": f"http://127.0.0.1:{port}", "lines": lines, "proc": proc}
    finally:
        proc.send_signal(signal.SIGTERM)  # disco-spec ui stops the MLflow server it started, then exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _get(base: str, endpoint: str, **query) -> dict:
    url = f"{base}{endpoint}?{urllib.parse.urlencode(query)}" if query else f"{base}{endpoint}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


@pytest.mark.render
@pytest.mark.slow
def test_ui_serves_the_runs_in_the_model_training_view(rendered, ui_server):
    base = ui_server["base"]
    assert f"MLflow UI for {rendered['uri']} at {base}" in ui_server["lines"]
    assert f"  smoke: {base}/#/experiments/1/runs?workflowType=machine_learning" in ui_server["lines"]
    exp = _get(base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="smoke")["experiment"]
    assert {t["key"]: t["value"] for t in exp["tags"]}["mlflow.experimentKind"] == "custom_model_development"

    runs = _post(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                       "order_by": ["attributes.start_time ASC"]})["runs"]
    assert [r["info"]["run_id"] for r in runs] == [_run_id(r["err"]) for r in rendered["runs"]]
    # run names: each file rendered as it is: the batch and the run folder
    assert [r["info"]["run_name"] for r in runs] == ["smoke run-0001", "smoke run-0002"]
    first, second = ({p["key"]: p["value"] for p in r["data"]["params"]} for r in runs)
    assert second["guidance.clip_guidance_scale"] == "1500" and first["guidance.clip_guidance_scale"] == "5000"
    # searchable as written
    found = _post(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                        "filter": "params.`guidance.clip_guidance_scale` = '5000'"})
    assert [r["info"]["run_id"] for r in found["runs"]] == [runs[0]["info"]["run_id"]]
    for run, made in zip(runs, rendered["runs"]):
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["mlflow.source.name"] == str(made["spec"].resolve())
        assert tags["mlflow.user"] and tags["seed"] == "42" and len(tags["manifest"]) == 12
        assert tags["mlflow.note.content"].startswith("Tiny models")
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert "system/cpu_utilization_percentage" in metrics  # system metrics on by default
        assert metrics["render_seconds"] > 0 and "frame/clip_loss" in metrics
        info = run["info"]
        assert info["status"] == "FINISHED" and int(info["end_time"]) > int(info["start_time"])
        # the final image under `image`, and the artifacts served from where the render wrote them
        images = _get(base, "/api/2.0/mlflow/artifacts/list", run_id=info["run_id"], path="images")["files"]
        assert any(f["path"].startswith("images/image+step+0+") for f in images)
        with urllib.request.urlopen(f"{base}/get-artifact?" + urllib.parse.urlencode(
                {"path": "spec.json", "run_uuid": info["run_id"]}), timeout=30) as r:
            assert json.load(r)["guidance"]["clip_guidance_scale"] in (5000, 1500)


@pytest.mark.render
@pytest.mark.slow
def test_ui_for_a_server_store_only_points_at_it(rendered):
    with socket.socket() as s:  # a server URI: nothing to start; an unreachable one fails with exit 1
        s.bind(("127.0.0.1", 0))
        code, out, err = run_cli("ui", "--tracking-uri", f"http://127.0.0.1:{s.getsockname()[1]}")
    assert code != 0 and "is an MLflow server" in out


@pytest.mark.render
@pytest.mark.slow
def test_animation_frames_scrub_under_one_name(tmp_path, monkeypatch):
    """A 3-frame 2D animation: frame/ metrics at step = frame, one image key, per-step curves under one
    name each, the mp4 as an artifact."""
    from mlflow import MlflowClient
    from PIL import Image

    from disco_spec.run.prepare import prepare
    from disco_spec.run.records import RenderResult, StepEvent, record_output
    from disco_spec.spec.load import validate_document
    from disco_spec.tracking.tracker import MlflowTracker

    monkeypatch.chdir(tmp_path)
    doc = _small_smoke()
    doc["animation"]["animation_mode"] = "2D"
    doc["video"] = {"skip_video_for_run_all": False}
    ready = prepare(validate_document(doc))
    spec, sdoc, plan, drawn = ready.spec, ready.document, ready.plan, ready.seed_drawn
    assert plan.n_items == 3
    rd = tmp_path / "run"
    rd.mkdir()
    result = RenderResult(run_dir=rd, spec=spec, spec_document=sdoc, plan=plan, seed_drawn=drawn, started_at=time.time())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(tracking_uri=uri, metric_flush_s=0)
    tracker.on_start(result)
    for item in plan.items:
        for j in range(3):
            tracker.on_step(StepEvent(item=item, j=j, k=2 - j, total=3,
                                      stats={"clip_loss/tiny-clip": 10 * item.frame + j, "tv_loss": float(j)}))
        Image.new("RGB", (64, 64), (10 * item.frame, 0, 0)).save(rd / item.output)
        record_output(result, [tracker], item.output, "image", item)
    (rd / "smoke.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    record_output(result, [tracker], "smoke.mp4", "video", plan.items[-1])
    result.seconds, result.ended_at = 0.5, time.time()
    tracker.on_end(result)
    assert tracker.failure is None, tracker.failure

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.data.params["animation.animation_mode"] == "2D" and "animation.zoom" in run.data.params
    frames = [it.frame for it in plan.items]
    assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "frame/clip_loss")] == [
        (f, 10 * f + 2) for f in frames]
    assert [m.step for m in client.get_metric_history(tracker.run_id, "frame/seconds")] == frames
    assert [m.step for m in client.get_metric_history(tracker.run_id, "tv_loss")] == list(range(9))
    assert not any(k.startswith("item") for k in run.data.metrics)  # no names per frame
    steps = sorted(int(m.group(1)) for f in client.list_artifacts(tracker.run_id, "images")
                   if (m := re.match(r"images/image\+step\+(\d+)\+.*\.png$", f.path)))
    assert steps == frames
    assert "smoke.mp4" in {f.path for f in client.list_artifacts(tracker.run_id)}


def test_no_track_never_imports_mlflow(tmp_path):
    """--no-track makes no tracker: the CLI and the render path do not import mlflow."""
    code = (
        "import sys\n"
        "from disco_spec.cli import app\n"
        "from disco_spec.run import renderer\n"
        "from disco_spec.tracking.tracker import make_tracker\n"
        "assert make_tracker(enabled=False, tracking_uri=None, experiment=None) is None\n"
        "print('mlflow' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.render
@pytest.mark.slow
def test_run_names_say_what_differs(tmp_path):
    from disco_spec.tracking.names import compose_name, differences

    a = _small_smoke()
    b = _small_smoke(clip_guidance_scale=1500)
    b["diffusion"]["steps"] = 6
    assert compose_name("smoke run-0002", differences(b, a)) == "steps=6 clip_guidance_scale=1500 · smoke run-0002"
    assert compose_name("smoke run-0001", differences(a, None)) == "smoke run-0001"
    many = [(f"k{i}", i) for i in range(7)]
    assert compose_name("b run-0003", many) == "k0=0 k1=1 k2=2 k3=3 +3 more · b run-0003"
