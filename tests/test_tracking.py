"""MLflow tracking with real stores: a sqlite file, a real `mlflow server` on 127.0.0.1, and a dead port.

No mocks. Creating an MLflow sqlite database runs all of MLflow's migrations (10+ s on a small CPU),
so one template database is created per module and copied for every test; the server is started once
per module, in the background, while the other tests run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from disco_spec.tracking import names as tracking_names
from disco_spec.tracking import tracker as tracking
from disco_spec.errors import SpecError
from disco_spec.run.records import BaseObserver, RenderResult, StepEvent
from disco_spec.run.prepare import prepare
from disco_spec.spec.load import load_spec
from disco_spec.tracking.params import applies, dd_default_document, setting_values
from disco_spec.tracking.tracker import TRUNCATED_MARKER, MlflowTracker, TrackingError, make_tracker, resolve_run_source, sanitize_key, spec_params

SMOKE = Path(__file__).resolve().parent.parent / "specs" / "smoke.toml"
WARNING = "warning: MLflow tracking disabled"
HTTP_VARS = tuple(tracking.ENV_DEFAULTS)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server_proc(tmp_path_factory):
    """Start `mlflow server` now (it boots while other tests run); stopped when the module ends."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(root / "server.log", "wb")
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--workers", "1",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner / huey workers: boots faster
    proc = subprocess.Popen(
        cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        yield {"proc": proc, "uri": f"http://127.0.0.1:{port}", "log": root / "server.log", "root": root}
    finally:
        # The server runs uvicorn in a child process: stop the whole process group we created.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module", autouse=True)
def _boot_server_early(request):
    """Start the server with the module's first test so that its boot overlaps the other tests, when a
    selected test needs it (the inner loop deselects those: then no server starts)."""
    here = request.node.path
    if any(item.path == here and "mlflow_server" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("mlflow_server_proc")
    yield


@pytest.fixture(scope="module")
def mlflow_server(mlflow_server_proc):
    """The running server's URI, once /health answers."""
    uri, proc = mlflow_server_proc["uri"], mlflow_server_proc["proc"]
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited ({proc.returncode}):\n{mlflow_server_proc['log'].read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    return uri
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not answer /health:\n{mlflow_server_proc['log'].read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """An empty, fully migrated MLflow sqlite database (made once; tests copy it)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def sqlite_uri(template_db, tmp_path, monkeypatch) -> str:
    """A fresh sqlite store in tmp_path; the cwd is tmp_path so new experiments' ./mlruns land there."""
    db = tmp_path / "mlflow.db"
    shutil.copyfile(template_db, db)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{db}"


class Recorder(BaseObserver):
    """Keeps what the tracker was shown, to compare with what MLflow returns."""

    def __init__(self) -> None:
        self.stats: list[tuple[int, dict[str, float]]] = []  # (item index, stats) per step, in order
        self.preview_steps: list[int] = []

    def on_step(self, event: StepEvent) -> None:
        if event.preview is not None:
            self.preview_steps.append(len(self.stats))
        self.stats.append((event.item.index, dict(event.stats)))


class EnsureManifest(BaseObserver):
    """Before the tracker's on_end: make sure the run folder has a manifest.json.

    render() calls disco_spec.record.manifest.finalize_run before observers' on_end once that module is
    wired in; until then this writes it (with finalize_run when the module exists, else a stub).
    """

    def on_end(self, result: RenderResult) -> None:
        if (result.run_dir / "manifest.json").exists() or getattr(result, "manifest", None):
            return
        try:
            from disco_spec.record.manifest import finalize_run  # type: ignore[import-not-found]
        except ImportError:
            doc = {"id": "stub-" + hashlib.sha256(str(result.run_dir).encode()).hexdigest()[:16]}
            (result.run_dir / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")
        else:
            finalize_run(result)


def _manifest(result: RenderResult) -> dict:
    m = getattr(result, "manifest", None)
    if isinstance(m, dict):
        return m
    return json.loads((result.run_dir / "manifest.json").read_text(encoding="utf-8"))




def _fast_smoke(partials: bool = False, **run_updates):
    """smoke.toml with fewer steps (the render is the slow part of these tests), optionally a partial."""
    spec = load_spec(SMOKE)
    run = spec.run.model_copy(update={"display_rate": 2, **run_updates})
    diffusion = spec.diffusion.model_copy(update={"steps": 4})  # 3 sampler steps: previews at 0 and 2
    init = spec.init.model_copy(update={"skip_steps": 1})
    saving = spec.saving.model_copy(update={"intermediate_saves": [1] if partials else 0})
    return spec.model_copy(update={"run": run, "diffusion": diffusion, "init": init, "saving": saving})


def _image_steps(client, run_id: str, key: str = "preview") -> list[int]:
    """Steps of the images logged with log_image(key=..., step=...) (MLflow stores them under images/)."""
    sanitized = re.escape(key.replace("/", "~"))
    pattern = re.compile(rf"^images/{sanitized}[+%]step[+%](\d+)[+%].*\.png$")
    steps = []
    for f in client.list_artifacts(run_id, "images"):
        m = pattern.match(f.path)
        if m:
            steps.append(int(m.group(1)))
    return sorted(steps)


def _check_tracked_render(
    client, tracker: MlflowTracker, result: RenderResult, rec: Recorder, tmp_path: Path, experiment: str | None = None
):
    """Everything test (a) and (b) expect of a tracked single-item render."""
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == (experiment or result.spec.name or result.plan.batch_name)

    # params: the settings a person reads, values as written (5000, not 5000.0)
    params = run.data.params
    doc = result.spec_document
    assert params["guidance.clip_guidance_scale"] == "5000" == tracking.param_value(doc["guidance"]["clip_guidance_scale"])
    assert not {"_schema", "schema_version", "imported_from", "description", "name"} & set(params)
    assert params["run.batch_name"] == doc["run"]["batch_name"]
    assert params["run.set_seed"] == str(result.plan.base_seed)
    assert params["diffusion.steps"] == str(doc["diffusion"]["steps"])
    assert params["diffusion.width_height"] == json.dumps(doc["diffusion"]["width_height"])
    assert params["models.use_secondary_model"] == "true"
    assert params == spec_params(doc)

    # the whole spec and the plan as dict artifacts
    spec_local = client.download_artifacts(tracker.run_id, "spec.json", str(tmp_path / "dl"))
    assert json.loads(Path(spec_local).read_text()) == doc
    plan_local = client.download_artifacts(tracker.run_id, "plan.json", str(tmp_path / "dl"))
    assert json.loads(Path(plan_local).read_text()) == json.loads(result.plan.to_json())

    # metrics: one history per stats entry, at the global step counter
    assert rec.stats, "the render emitted no steps"
    keys = set(rec.stats[0][1])
    assert {"tv_loss", "range_loss", "sat_loss", "grad_rms"} <= keys
    assert any(k.startswith("clip_loss/") for k in keys)
    for key in keys:
        history = client.get_metric_history(tracker.run_id, sanitize_key(key))
        steps = [m.step for m in history]
        assert steps == list(range(len(rec.stats))), key
        assert [m.value for m in history] == pytest.approx([s[key] for _, s in rec.stats], nan_ok=True), key
    assert run.data.metrics["n_images"] == 1
    # per frame (per item for a still), at step = the item: the last step's stats, the frame's time
    last = rec.stats[-1][1]
    clip_sum = sum(v for k, v in last.items() if k.startswith("clip_loss/"))
    assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "frame/clip_loss")] == [(0, pytest.approx(clip_sum))]
    assert [m.step for m in client.get_metric_history(tracker.run_id, "frame/seconds")] == [0]
    assert 0 < run.data.metrics["frame/seconds"] <= result.seconds
    # honest times: the run spans the render; render_seconds leaves the tracker's own time out
    assert run.info.start_time == int(result.started_at * 1000)
    assert run.info.end_time == int(result.ended_at * 1000)
    assert run.info.end_time - run.info.start_time >= 1000 * result.seconds - 2
    m = run.data.metrics
    assert m["render_seconds"] + m["tracking_seconds"] == pytest.approx(result.seconds, abs=1e-6)
    assert 0 < m["render_seconds"] < result.seconds
    # the final image under one key, step = item
    assert _image_steps(client, tracker.run_id, "image") == [0]

    # preview images by step
    assert rec.preview_steps
    assert _image_steps(client, tracker.run_id) == rec.preview_steps

    # outputs and manifest
    root = {f.path for f in client.list_artifacts(tracker.run_id)}
    image = next(o for o in result.outputs if o.kind == "image")
    assert {image.path, "manifest.json", "spec.json", "plan.json"} <= root
    got = Path(client.download_artifacts(tracker.run_id, image.path, str(tmp_path / "dl")))
    assert hashlib.sha256(got.read_bytes()).hexdigest() == image.sha256
    logged = json.loads(Path(client.download_artifacts(tracker.run_id, "manifest.json", str(tmp_path / "dl"))).read_text())
    assert logged == _manifest(result)
    for o in result.outputs:  # partials too, in their sub-folder; the bytes the manifest lists
        got = Path(client.download_artifacts(tracker.run_id, o.path, str(tmp_path / "dl-all")))
        assert hashlib.sha256(got.read_bytes()).hexdigest() == o.sha256

    # tags
    tags = run.data.tags
    manifest = _manifest(result)
    assert tags["disco_spec.spec_sha256"] == tracking.spec_sha256(result.spec_document)
    if "hashed" in manifest:  # disco_spec.record.manifest's layout: the same hash, and the git commit
        assert tags["disco_spec.spec_sha256"] == manifest["hashed"]["spec_sha256"]
        commit = (manifest["volatile"].get("code_checkout") or {}).get("git_commit")
        if commit:
            assert tags["disco_spec.git_commit"] == tags["mlflow.source.git.commit"] == commit
    assert tags["disco_spec.manifest_id"] == str(manifest["id"])
    assert tags["disco_spec.plan_sha256"] == result.plan.sha256()
    assert tags["disco_spec.base_seed"] == str(result.plan.base_seed)
    assert tags["disco_spec.device"] == result.device
    assert tags["disco_spec.version"] == tracking.__version__
    # short tags for the UI's chips; MLflow's user tag
    assert tags["seed"] == str(result.plan.base_seed)
    assert tags["manifest"] == str(manifest["id"])[:12] and tags["spec"] == tags["disco_spec.spec_sha256"][:12]
    assert tags["plan"] == result.plan.sha256()[:12]
    assert tags["mlflow.user"] == tracking_names.os_user() != ""
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def _render(spec, out: Path, tracker: MlflowTracker, rec: Recorder | None = None) -> RenderResult:
    from disco_spec.run.renderer import render

    observers = [o for o in (rec, EnsureManifest(), tracker) if o is not None]
    return render(spec, out=out, progress=False, observers=observers)


def _synthetic_result(spec, run_dir: Path) -> RenderResult:
    """A RenderResult from the real spec→plan path, for driving a tracker without the engine (and without
    render's prompt-length check, so a tracker can be shown values longer than any prompt CLIP takes)."""
    from disco_spec.plan.resolve import resolve_plan, with_concrete_seed
    from disco_spec.spec.load import spec_to_document

    spec, drawn = with_concrete_seed(spec)
    doc, plan = spec_to_document(spec), resolve_plan(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    return RenderResult(run_dir=run_dir, spec=spec, spec_document=doc, plan=plan, seed_drawn=drawn)


def _preview():
    from PIL import Image

    return Image.new("RGB", (64, 64), (200, 120, 40))


# ---------------------------------------------------------------------------------------------
# Names and values (no store)
# ---------------------------------------------------------------------------------------------


def test_spec_params_are_the_settings_a_person_reads(smoke_doc):
    spec = load_spec(SMOKE)
    doc = prepare(spec).document
    params = spec_params(doc)
    assert params["guidance.clip_guidance_scale"] == "5000"  # as written, not 5000.0
    assert params["guidance.tv_scale"] == "0" and params["diffusion.eta"] == "0.8"
    assert params["run.batch_name"] == "smoke"  # differs from DD's TimeToDisco
    assert params["run.set_seed"] == "42"
    assert params["diffusion.width_height"] == "[64, 64]"
    assert params["diffusion.steps"] == "12" and params["init.skip_steps"] == "2"
    assert params["cuts.cut_overview"] == "[4]*400+[2]*600"
    assert params["animation.animation_mode"] == "None"
    assert "animation.zoom" not in params  # motion only for animations
    assert "prompts.image_prompts" not in params and "engine.device" not in params  # at DD's default
    assert json.loads(params["prompts.text_prompts.0"]) == smoke_doc["prompts"]["text_prompts"]["0"]
    assert json.loads(params["models.extra_clip_models"]) == [{"name": "tiny-clip"}]  # no nulls
    assert params["models.clip"] == "tiny-clip"
    assert params["models.ViTB32"] == "false"  # DD's default is true
    # not settings: no $schema, version, provenance, name or description
    assert not {"_schema", "$schema", "schema_version", "imported_from", "description", "name"} & set(params)
    assert len(params) < 45  # not the 99 leaves of the whole spec (that is spec.json)
    # every setting that applies to a still and differs from DD's default is a param
    defaults = setting_values(dd_default_document())
    for key, value in setting_values(doc).items():
        if applies(key, "None") and value is not None and defaults.get(key) != value:
            assert sanitize_key(key) in params, key
    anim = json.loads(json.dumps(doc))
    anim["animation"]["animation_mode"] = "2D"
    anim_params = spec_params(anim)
    assert anim_params["animation.zoom"] == "0: (1), 10: (1.05)" and anim_params["animation.max_frames"] == "3"


def test_long_values_are_truncated_with_a_marker():
    params = spec_params({"long": "x" * 10_000, "short": "y"}, limit=6000)
    assert len(params["long"]) == 6000
    assert params["long"].endswith(TRUNCATED_MARKER)
    assert params["long"].startswith("x" * 100)
    assert params["short"] == "y"


def test_sanitized_names_pass_mlflow_validation():
    from mlflow.utils.validation import _validate_metric_name, _validate_param_name

    names = [
        "clip_loss/ViT-B/32@openai", "clip_loss/hf-hub:laion/CLIP", "a//b", "/lead", "trail/", "../up",
        "x/./y", "$schema", "ünïcode:ok", "sp ace", "k" * 400, "",
    ]
    seen = set()
    for name in names:
        key = sanitize_key(name)
        _validate_metric_name(key)
        _validate_param_name(key)
        assert len(key) <= 250
        seen.add(key)
    assert sanitize_key("clip_loss/tiny-clip") == "clip_loss/tiny-clip"
    assert sanitize_key("tv_loss") == "tv_loss"
    assert sanitize_key("a//b") == "a/_/b"
    assert sanitize_key("clip_loss/ViT-B/32@openai") == "clip_loss/ViT-B/32_openai"
    assert len(seen) == len(names)
    # two keys that sanitise alike stay distinct params
    assert set(spec_params({"a$b": 1, "a#b": 2})) == {"a_b", "a_b_2"}


def test_make_tracker():
    assert make_tracker(enabled=False, tracking_uri="http://127.0.0.1:1", experiment="x") is None
    t = make_tracker(enabled=True, tracking_uri="http://127.0.0.1:1", experiment="exp")
    assert isinstance(t, MlflowTracker)
    assert (t.tracking_uri, t.experiment) == ("http://127.0.0.1:1", "exp")
    t = make_tracker(enabled=True, tracking_uri=None, experiment=None)
    assert t is not None and t.tracking_uri is None and t.experiment is None


def test_looks_like_run_id(tmp_path):
    assert tracking.looks_like_run_id("0123456789abcdef0123456789abcdef")
    assert tracking.looks_like_run_id("runs:/0123456789abcdef0123456789abcdef")
    assert not tracking.looks_like_run_id("specs/smoke.toml")
    assert not tracking.looks_like_run_id("0123456789abcdef")


# ---------------------------------------------------------------------------------------------
# A real sqlite store
# ---------------------------------------------------------------------------------------------


@pytest.mark.render
@pytest.mark.slow
def test_render_tracked_to_sqlite(sqlite_uri, tmp_path, capfd, monkeypatch):
    """(a) a real render into a real sqlite store, read back through MlflowClient; then rebuilt from the run id."""
    from mlflow import MlflowClient

    tracker = MlflowTracker(tracking_uri=sqlite_uri)
    rec = Recorder()
    result = _render(_fast_smoke(), tmp_path / "out", tracker, rec)
    assert tracker.failure is None, tracker.failure
    assert tracker.run_id is not None
    assert tracker.tracking_uri == sqlite_uri
    client = MlflowClient(tracking_uri=sqlite_uri)
    _check_tracked_render(client, tracker, result, rec, tmp_path)
    run = client.get_run(tracker.run_id)
    assert run.info.run_name == f"smoke {result.run_dir.name}"  # the spec file as it is: nothing differs
    assert run.data.tags["mlflow.note.content"] == result.spec.description
    assert WARNING not in capfd.readouterr().err
    import mlflow

    assert mlflow.active_run() is None  # explicit run ids only: no global active-run state

    # rebuild's source: the run comes back as a run folder (manifest, spec, plan, outputs)
    dest = tmp_path / "rebuild"
    got = resolve_run_source(tracker.run_id, sqlite_uri, dest)
    assert got == dest / "manifest.json"
    assert json.loads(got.read_text()) == _manifest(result)
    assert json.loads((dest / "spec.json").read_text()) == result.spec_document
    assert (dest / "plan.json").is_file()
    for o in result.outputs:
        assert hashlib.sha256((dest / o.path).read_bytes()).hexdigest() == o.sha256
    # runs:/ID with the env variable instead of the argument; outputs=False fetches only the JSON files
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri)
    got2 = resolve_run_source(f"runs:/{tracker.run_id}", None, tmp_path / "rebuild2", outputs=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert got2.name == "manifest.json"
    assert sorted(p.name for p in got2.parent.iterdir()) == ["manifest.json", "plan.json", "spec.json"]

    # `disco-spec rebuild RUN_ID` / `diff RUN_ID ...`: the registered resolver maps the run id to the
    # downloaded run folder, which load_source reads like the original (rebuild's own tests re-render)
    from disco_spec.repro import sources as manifest_mod  # load_source moved to repro.sources in the re-layout

    resolver = tracking.register_run_resolver(sqlite_uri)
    try:
        src = manifest_mod.load_source(tracker.run_id)
        assert src.kind == "manifest" and src.manifest == _manifest(result)
        files = src.output_files()
        assert sorted(files) == sorted(o.path for o in result.outputs)
        assert manifest_mod.load_source(str(result.run_dir)).spec_document == src.spec_document
        assert manifest_mod.load_source(str(SMOKE)).kind == "spec"  # paths still win over run ids
    finally:
        manifest_mod.unregister_source_resolver(resolver)


@pytest.mark.render
def test_multi_item_names_steps_and_truncation(sqlite_uri, tmp_path):
    """Several items: one name per stat, one global step counter, frame/ metrics and images at step =
    item, truncated params, full spec.json."""
    from mlflow import MlflowClient

    from disco_spec.run.records import record_output

    spec = _fast_smoke(n_batches=2)
    spec = spec.model_copy(update={"prompts": spec.prompts.model_copy(update={"text_prompts": {"0": ["long " * 2000]}})})
    result = _synthetic_result(spec, tmp_path / "run")
    tracker = MlflowTracker(tracking_uri=sqlite_uri, experiment="multi", metric_flush_s=0)
    tracker.on_start(result)
    step = 0
    for item in result.plan.items:
        for j in range(3):
            stats = {"clip_loss/ViT-B/32@openai": 1.0 + step, "tv_loss": 0.5 * step, "grad_rms": float("nan")}
            tracker.on_step(StepEvent(item=item, j=j, k=2 - j, total=3, stats=stats, preview=_preview() if j != 1 else None))
            step += 1
        _preview().save(result.run_dir / item.output)
        record_output(result, [tracker], item.output, "image", item)
    result.seconds = 1.5
    tracker.on_end(result)
    assert tracker.failure is None, tracker.failure

    client = MlflowClient(tracking_uri=sqlite_uri)
    run = client.get_run(tracker.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "multi"
    assert run.info.status == "FINISHED"
    prompt = run.data.params["prompts.text_prompts.0"]
    assert len(prompt) <= 6000 and prompt.endswith(TRUNCATED_MARKER)
    assert run.data.params["run.n_batches"] == "2"
    full = json.loads(Path(client.download_artifacts(tracker.run_id, "spec.json", str(tmp_path / "dl"))).read_text())
    assert full["prompts"]["text_prompts"]["0"] == ["long " * 2000]

    # one metric name per stat over every item (no item0/, item1/ names), at the global step
    h = client.get_metric_history(tracker.run_id, "tv_loss")
    assert [m.step for m in h] == [0, 1, 2, 3, 4, 5]
    assert [m.value for m in h] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [m.step for m in client.get_metric_history(tracker.run_id, "clip_loss/ViT-B/32_openai")] == [0, 1, 2, 3, 4, 5]
    assert all(m.value != m.value for m in client.get_metric_history(tracker.run_id, "grad_rms"))  # NaN kept
    assert not any(k.startswith("item") for k in run.data.metrics)
    # per item, at step = item: the item's last step
    assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "frame/tv_loss")] == [(0, 1.0), (1, 2.5)]
    assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "frame/clip_loss")] == [(0, 3.0), (1, 6.0)]
    assert [m.step for m in client.get_metric_history(tracker.run_id, "frame/seconds")] == [0, 1]
    # render_seconds: the render's clock less the tracker's own time in its callbacks
    assert run.data.metrics["render_seconds"] == pytest.approx(max(0.0, 1.5 - run.data.metrics["tracking_seconds"]))
    assert _image_steps(client, tracker.run_id, "preview") == [0, 2, 3, 5]
    assert _image_steps(client, tracker.run_id, "image") == [0, 1]
    # no manifest in this synthetic run folder: no manifest tag, and nothing failed
    assert "disco_spec.manifest_id" not in run.data.tags


def test_on_error_and_one_run_per_render(sqlite_uri, tmp_path):
    """on_error closes the run as FAILED (KILLED for Ctrl-C); a tracker reused for a second render opens a new run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=sqlite_uri)
    result = _synthetic_result(_fast_smoke(), tmp_path / "run")
    tracker = MlflowTracker(tracking_uri=sqlite_uri)
    tracker.on_start(result)
    first = tracker.run_id
    tracker.on_error(result, RuntimeError("boom"))
    tracker.on_end(result)  # ignored: the run is closed
    assert client.get_run(first).info.status == "FAILED"
    tracker.on_start(result)
    assert tracker.run_id != first
    tracker.on_error(result, KeyboardInterrupt())
    assert client.get_run(tracker.run_id).info.status == "KILLED"
    assert tracker.failure is None


def test_default_store_is_mlflows_default(template_db, tmp_path, monkeypatch):
    """No URI anywhere: MLflow's own default for the installed version (sqlite:///mlflow.db in the cwd)."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copyfile(template_db, tmp_path / "mlflow.db")  # already migrated: the test stays fast
    default = mlflow.get_tracking_uri()
    tracker = MlflowTracker()
    result = _synthetic_result(_fast_smoke(), tmp_path / "run")
    tracker.on_start(result)
    tracker.on_end(result)
    assert tracker.failure is None, tracker.failure
    assert tracker.tracking_uri == default
    if int(mlflow.__version__.split(".")[0]) >= 3:  # sqlite:///mlflow.db, resolved against the cwd
        assert default in ("sqlite:///mlflow.db", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(tracker.run_id).info.status == "FINISHED"

    # MLFLOW_TRACKING_URI wins over the default
    other = tmp_path / "other.db"
    shutil.copyfile(template_db, other)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    tracker = MlflowTracker()
    tracker.on_start(result)
    tracker.on_end(result)
    assert tracker.tracking_uri == f"sqlite:///{other}"
    assert MlflowClient(tracking_uri=f"sqlite:///{other}").get_run(tracker.run_id).info.status == "FINISHED"


def test_failure_later_in_the_render_warns_once(sqlite_uri, tmp_path, capfd):
    """The store refuses a write mid-render (the run was deleted): one warning, then silence."""
    from mlflow import MlflowClient

    result = _synthetic_result(_fast_smoke(), tmp_path / "run")
    tracker = MlflowTracker(tracking_uri=sqlite_uri, metric_flush_s=0)
    tracker.on_start(result)
    item = result.plan.items[0]
    tracker.on_step(StepEvent(item=item, j=0, k=4, total=5, stats={"tv_loss": 1.0}, preview=_preview()))
    assert tracker.failure is None
    MlflowClient(tracking_uri=sqlite_uri).delete_run(tracker.run_id)
    for j in range(1, 5):
        tracker.on_step(StepEvent(item=item, j=j, k=4 - j, total=5, stats={"tv_loss": 1.0}, preview=_preview()))
    tracker.on_end(result)
    err = capfd.readouterr().err
    assert err.count(WARNING) == 1, err
    assert sqlite_uri in err and "manifest" in err and str(result.run_dir) in err
    assert tracker.failure is not None and "log step metrics" in tracker.failure


def test_http_env_is_restored(sqlite_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    for k in HTTP_VARS:
        if k != "MLFLOW_HTTP_REQUEST_TIMEOUT":
            monkeypatch.delenv(k, raising=False)
    with tracking.http_env():
        seen = {k: os.environ.get(k) for k in HTTP_VARS}
    assert seen["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"  # the user's setting is kept
    assert seen["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == tracking.ENV_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    result = _synthetic_result(_fast_smoke(), tmp_path / "run")
    tracker = MlflowTracker(tracking_uri=sqlite_uri)
    tracker.on_start(result)
    tracker.on_end(result)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_resolve_run_source_errors(sqlite_uri, tmp_path):
    with pytest.raises(SpecError):
        resolve_run_source("not-a-run", sqlite_uri, tmp_path / "a")
    with pytest.raises(SpecError, match="not found"):
        resolve_run_source("0" * 32, sqlite_uri, tmp_path / "b")
    with socket.socket() as s:  # bound, not listening: connections are refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(TrackingError, match="127.0.0.1"):
            resolve_run_source("0" * 32, dead, tmp_path / "c")
        assert time.monotonic() - start < 20


# ---------------------------------------------------------------------------------------------
# An unreachable server, and a real one
# ---------------------------------------------------------------------------------------------


@pytest.mark.render
def test_unreachable_server_does_not_fail_the_render(tmp_path, capfd, monkeypatch):
    """(c) the tracking server is down: the render completes, files and manifest exist, one warning."""
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:  # bound, not listening: connections are refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        tracker = MlflowTracker(tracking_uri=dead)
        result = _render(_fast_smoke(), tmp_path / "out", tracker)
        err = capfd.readouterr().err
        # the time a dead server costs: short time-outs, one quick retry
        start = time.monotonic()
        MlflowTracker(tracking_uri=dead, stream=sys.stdout).on_start(result)
        assert time.monotonic() - start < 15
    images = [o for o in result.outputs if o.kind == "image"]
    assert images and all((result.run_dir / o.path).is_file() for o in images)
    assert (result.run_dir / "manifest.json").is_file()
    assert (result.run_dir / "spec.json").is_file()
    assert tracker.run_id is None
    # one line on stderr about tracking (Python warnings from torch may show too with -p no:warnings)
    warnings = [line for line in err.splitlines() if "mlflow" in line.lower() or "warning:" in line]
    assert warnings == [tracker.failure], err
    assert err.count(WARNING) == 1
    assert dead in warnings[0] and "manifest" in warnings[0] and "Connection" in warnings[0]
    assert "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()  # no silent fallback to a local store


@pytest.mark.mlflow_server
@pytest.mark.render
@pytest.mark.slow
def test_render_tracked_to_server(mlflow_server, tmp_path, monkeypatch, capfd):
    """(b) a real `mlflow server` on 127.0.0.1: track a render over HTTP and read it back over HTTP."""
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = MlflowTracker(tracking_uri=mlflow_server, experiment="served")
    rec = Recorder()
    result = _render(_fast_smoke(partials=True), tmp_path / "out", tracker, rec)
    assert tracker.failure is None, tracker.failure
    assert any(o.kind == "partial" and "/" in o.path for o in result.outputs)
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(tracker.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "served"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert tracker.run_url == f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{tracker.run_id}"
    # the experiment opens in the UI's "Model training" view: its kind, read over MLflow's REST API
    with urllib.request.urlopen(f"{mlflow_server}/api/2.0/mlflow/experiments/get?experiment_id={run.info.experiment_id}") as r:
        exp_tags = {t["key"]: t["value"] for t in json.load(r)["experiment"]["tags"]}
    assert exp_tags["mlflow.experimentKind"] == "custom_model_development"
    out, err = capfd.readouterr()
    assert "View run" not in out and WARNING not in err  # stdout is the CLI's: MLflow prints no links there
    _check_tracked_render(client, tracker, result, rec, tmp_path, experiment="served")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()

    dest = tmp_path / "rebuild"
    got = resolve_run_source(tracker.run_id, mlflow_server, dest)
    assert json.loads(got.read_text()) == _manifest(result)
    assert json.loads((dest / "spec.json").read_text()) == result.spec_document
    for o in result.outputs:  # a run folder again: partials in their sub-folder
        assert hashlib.sha256((dest / o.path).read_bytes()).hexdigest() == o.sha256
