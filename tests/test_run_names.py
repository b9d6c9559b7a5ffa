"""What tells runs apart in MLflow, read back over MlflowClient from a real sqlite store: two `render --set`s,
a plain render, a 2x2 sweep and a 2D animation of one spec file, and a remix of a PNG (`render IMAGE.png --set`). Run names lead with what differs from the
file as committed, then the batch and the run folder (renders `run-NNNN`, sweep cells `sweep-NNNN/cell-NN`);
params are the settings that apply, each read one way; every run's Source is the spec file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_helpers import run_cli, small_smoke_doc, write_spec

pytestmark = pytest.mark.render

ANIMATION_ONLY = ("animation.", "camera_3d.", "video_input.", "turbo.", "vr.", "video.")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Renders of one spec file into one sqlite store: --set clip_guidance_scale=1500, --set
    clip_guidance_scale=10000 --set steps=5, the file as it is, a 2x2 sweep, and --set animation_mode=2D."""
    base = tmp_path_factory.mktemp("names")
    doc = small_smoke_doc(run={"display_rate": 100}, animation={"max_frames": 2})
    spec = write_spec(base / "smoke.toml", doc)
    uri = f"sqlite:///{base / 'mlflow.db'}"
    old_cwd = os.getcwd()
    os.chdir(base)  # MLflow puts new experiments' artifacts under ./mlruns
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    common = ["--out", str(base / "out"), "--tracking-uri", uri, "--quiet"]
    try:
        for sets in (["clip_guidance_scale=1500"], ["clip_guidance_scale=10000", "steps=5"], []):
            code, _, err = run_cli("render", str(spec), *[a for s in sets for a in ("--set", s)], *common)
            assert code == 0, err
        code, _, err = run_cli("sweep", str(spec), "--set", "clip_guidance_scale=1500,10000", "--set", "steps=4,5",
                               *common)
        assert code == 0, err
        code, _, err = run_cli("render", str(spec), "--set", "animation_mode=2D", *common)
        assert code == 0, err
        png = base / "out" / "smoke" / "run-0003" / "smoke_0000.png"  # a remix of the plain render's image
        code, _, err = run_cli("render", str(png), "--set", "steps=5", *common)
        assert code == 0, err
    finally:
        os.chdir(old_cwd)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    return {"spec": spec, "png": png, "runs": {r.info.run_name: r for r in runs}, "client": client}


@pytest.mark.slow
def test_names_lead_with_what_differs_from_the_spec_file(tracked):
    assert sorted(tracked["runs"]) == sorted([
        "clip_guidance_scale=1500 · smoke run-0001",
        "steps=5 clip_guidance_scale=10000 · smoke run-0002",
        "smoke run-0003",  # the file as it is: nothing to lead with
        "clip_guidance_scale × steps · smoke sweep-0001",
        "clip_guidance_scale=1500 steps=4 · smoke sweep-0001/cell-00",
        "clip_guidance_scale=1500 steps=5 · smoke sweep-0001/cell-01",
        "clip_guidance_scale=10000 steps=4 · smoke sweep-0001/cell-02",
        "clip_guidance_scale=10000 steps=5 · smoke sweep-0001/cell-03",
        "animation_mode=2D · smoke run-0004",
        "steps=5 · smoke run-0005",  # the remix: what differs from the spec the PNG carries
    ])
    # a sweep cell and a render never share a number form
    renders = [n for n in tracked["runs"] if " run-" in n]
    cells = [n for n in tracked["runs"] if "/cell-" in n]
    assert len(renders) == 5 and len(cells) == 4 and not set(renders) & set(cells)


@pytest.mark.slow
def test_the_sweep_parent_carries_its_comparison_page(tracked):
    client = tracked["client"]
    parent = tracked["runs"]["clip_guidance_scale × steps · smoke sweep-0001"]
    assert "comparison.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    page = Path(client.download_artifacts(parent.info.run_id, "comparison.html")).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 4  # the four cells


@pytest.mark.slow
def test_every_run_has_the_spec_file_as_its_source(tracked):
    for name, run in tracked["runs"].items():
        source = tracked["png"] if name == "steps=5 · smoke run-0005" else tracked["spec"]  # a remix: the PNG
        assert run.data.tags.get("mlflow.source.name") == str(source.resolve()), name
        assert run.data.tags.get("mlflow.source.type") == "LOCAL", name


@pytest.mark.slow
def test_params_are_the_settings_that_apply(tracked):
    runs = tracked["runs"]
    for name in ("clip_guidance_scale=1500 · smoke run-0001", "smoke run-0003",
                 "clip_guidance_scale=1500 steps=4 · smoke sweep-0001/cell-00"):
        params = runs[name].data.params
        # a still: nothing of the animation, the 3D camera, Video Input, turbo, VR or the video
        assert params["animation.animation_mode"] == "None", name
        assert not [k for k in params if k.startswith(ANIMATION_ONLY) and k != "animation.animation_mode"], name
        assert params["run.n_batches"] == "1"
        assert "null" not in params.values() and not any("null" in v for v in params.values()), name
        assert params["models.extra_clip_models"] == '[{"name": "tiny-clip"}]'
        assert params["cuts.cut_overview"] == "[4]*400+[2]*600"
    assert runs["clip_guidance_scale=1500 · smoke run-0001"].data.params["guidance.clip_guidance_scale"] == "1500"
    second = runs["steps=5 clip_guidance_scale=10000 · smoke run-0002"].data.params
    assert second["guidance.clip_guidance_scale"] == "10000" and second["diffusion.steps"] == "5"
    assert runs["smoke run-0003"].data.params["guidance.clip_guidance_scale"] == "5000"

    anim = runs["animation_mode=2D · smoke run-0004"].data.params
    assert anim["animation.animation_mode"] == "2D" and anim["animation.max_frames"] == "2"
    assert anim["animation.zoom"] == "0: (1), 10: (1.05)" and anim["animation.translation_x"] == "0: (0)"
    assert "run.n_batches" not in anim  # an animation renders one batch
    # 2D moves by angle, zoom and translation_x/y: no 3D motion, camera, turbo or VR; no Video Input
    assert not [k for k in anim if k.startswith(("camera_3d.", "turbo.", "vr.", "video_input."))]
    assert not {"animation.translation_z", "animation.rotation_3d_x"} & set(anim)
    assert not any("null" in v for v in anim.values())


def test_keyframe_tables_and_cut_schedules_read_as_dd_writes_them():
    """Unit check, no store: the structured forms log like the string forms their siblings use."""
    from disco_spec.spec.load import spec_to_document, validate_document
    from disco_spec.tracking.params import spec_params

    doc = small_smoke_doc(animation={"animation_mode": "3D", "translation_y": {"0": 1.0, "10": 2.5}},
                          cuts={"cut_innercut": [{"value": 2, "units": 400}, {"value": 4, "units": 600}]})
    doc["models"]["extra_clip_models"].append({"arch": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"})
    params = spec_params(spec_to_document(validate_document(doc)))
    assert params["animation.translation_y"] == "0: (1), 10: (2.5)"
    assert not [k for k in params if k.startswith("animation.translation_y.")]
    assert params["cuts.cut_innercut"] == "[2]*400+[4]*600"
    assert params["models.clip"] == "tiny-clip, ViT-B-32/laion2b_s34b_b79k"
    assert '"arch": "ViT-B-32"' in params["models.extra_clip_models"] and "null" not in params["models.extra_clip_models"]
    # 3D: its own motion and camera; 2D's angle and zoom do not apply
    assert "animation.translation_z" in params and "camera_3d.midas_depth_model" in params
    assert "animation.zoom" not in params and "animation.angle" not in params
