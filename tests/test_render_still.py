"""End-to-end still renders with the tiny models: outputs, determinism, seeds, steps, every code path."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from disco_spec.record.pngmeta import pixels_sha256
from disco_spec.run.records import BaseObserver
from disco_spec.run.renderer import render

from cli_helpers import smoke_spec

ROOT = Path(__file__).resolve().parent.parent
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_pixels_and_bytes(a: Path, b: Path) -> None:
    """Determinism is two claims: the pixels (the render) and the file bytes (the manifest id and text
    chunks, which must not depend on timing); a failure says which one broke."""
    assert pixels_sha256(a) == pixels_sha256(b), "the pixels differ: the render itself is not deterministic"
    assert _sha(a) == _sha(b), ("the pixels are equal but the file bytes differ: the manifest id or a text chunk "
                                "depends on something besides content")


class Recorder(BaseObserver):
    def __init__(self) -> None:
        self.steps = []
        self.outputs = []

    def on_step(self, event) -> None:
        self.steps.append((event.item.index, event.j, event.k, event.total, event.preview is not None, dict(event.stats)))

    def on_output(self, result, record) -> None:
        self.outputs.append(record)


@pytest.mark.render
@pytest.mark.slow
def test_smoke_render_writes_images_with_metadata_and_follows_the_plan(tmp_path: Path) -> None:
    rec = Recorder()
    result = render(ROOT / "specs" / "smoke.toml", tmp_path, observers=[rec], progress=False)
    assert result.run_dir == tmp_path / "smoke" / "run-0001"
    item = result.plan.items[0]
    png = result.run_dir / "smoke_0000.png"
    assert png.exists() and (result.run_dir / "progress.png").exists()
    assert (result.run_dir / "spec.json").exists() and (result.run_dir / "plan.json").exists()
    img = Image.open(png)
    assert img.size == (64, 64) and img.mode == "RGB"
    assert img.text["disco-spec:seed"] == "42" and img.text["disco-spec:frame"] == "0"
    # 12 steps, skip 2: the sampler runs k = 9 … 0, ten iterations
    ks = [k for _, _, k, _, _, _ in rec.steps]
    assert ks == list(range(item.start_index, -1, -1)) == list(range(9, -1, -1))
    # previews every display_rate (4) iterations and at the last one
    assert [j for _, j, _, _, p, _ in rec.steps if p] == [0, 4, 8, 9]
    stats = rec.steps[0][5]
    assert set(stats) >= {"clip_loss/tiny-clip", "tv_loss", "range_loss", "sat_loss", "grad_rms", "nan_guard"}
    assert stats["grad_rms"] > 0
    assert [o.path for o in rec.outputs] == ["smoke_0000.png"]
    # the manifest id is stamped into the PNG after it is written: the final record has the final bytes
    assert [o.sha256 for o in result.outputs] == [_sha(png)]
    assert img.text["disco-spec:manifest-id"] == result.manifest["id"]


@pytest.mark.render
@pytest.mark.slow
def test_two_processes_give_identical_bytes_and_a_new_seed_changes_the_image(tmp_path: Path) -> None:
    shas = []
    for name, seed in (("a", "42"), ("b", "42"), ("c", "43")):
        r = subprocess.run(
            [sys.executable, "-m", "disco_spec.cli", "render", str(ROOT / "specs" / "smoke.toml"), "--out",
             str(tmp_path / name), "--seed", seed, "-q", "--no-track"],
            capture_output=True, text=True,
        )
        assert r.returncode == 0, r.stderr
        shas.append(tmp_path / name / "smoke" / "run-0001" / "smoke_0000.png")
    assert_same_pixels_and_bytes(shas[0], shas[1])
    assert pixels_sha256(shas[2]) != pixels_sha256(shas[0])


@pytest.mark.render
@pytest.mark.slow
def test_any_image_of_a_batch_renders_alone_identically(tmp_path: Path) -> None:
    spec = smoke_spec(run={"n_batches": 3})
    full = render(spec, tmp_path / "full", progress=False)
    alone = render(spec, tmp_path / "alone", items=[2], progress=False)
    name = "smoke_0002.png"
    assert [o.path for o in alone.outputs] == [name]
    # same pixels (the files differ only in the manifest id they carry: the runs rendered different items)
    assert pixels_sha256(full.run_dir / name) == pixels_sha256(alone.run_dir / name)
    assert pixels_sha256(full.run_dir / name) != pixels_sha256(full.run_dir / "smoke_0001.png")


@pytest.mark.render
def test_run_folders_never_collide(tmp_path: Path) -> None:
    a = render(smoke_spec(diffusion={"steps": 4}, init={"skip_steps": 2}), tmp_path, progress=False)
    b = render(smoke_spec(diffusion={"steps": 4}, init={"skip_steps": 2}), tmp_path, progress=False)
    assert a.run_dir.name == "run-0001" and b.run_dir.name == "run-0002"


@pytest.mark.render
def test_intermediate_saves_are_written_as_partials(tmp_path: Path) -> None:
    result = render(smoke_spec(saving={"intermediate_saves": [1, 3]}), tmp_path, progress=False)
    partials = sorted(p.name for p in (result.run_dir / "partials").iterdir())
    assert partials == ["smoke_0000-001.png", "smoke_0000-003.png"]
    assert [o.kind for o in result.outputs] == ["partial", "partial", "image"]


@pytest.mark.render
@pytest.mark.slow
@pytest.mark.parametrize(
    "patch",
    [
        {"diffusion": {"diffusion_sampling_mode": "plms"}},
        {"models": {"use_secondary_model": False}},
        {"init": {"init_image": str(ROOT / "specs" / "assets" / "init-gradient.png"), "skip_steps": 4}},
        {"init": {"perlin_init": True, "perlin_mode": "gray"}},
        {"prompts": {"image_prompts": {"0": [str(ROOT / "specs" / "assets" / "init-gradient.png") + ":0.5"]}},
         "guidance": {"fuzzy_prompt": True}},
        {"models": {"extra_clip_models": [{"name": "tiny-clip"}, {"name": "tiny-clip-rn"}]}, "cuts": {"cutn_batches": 2}},
        {"cuts": {"skip_augs": True}, "guidance": {"tv_scale": 100, "sat_scale": 10, "clamp_grad": False}},
    ],
    ids=["plms", "no-secondary", "init-image", "perlin", "image-prompt+fuzzy", "two-clips", "skip-augs"],
)
def test_each_code_path_renders_deterministically(tmp_path: Path, patch: dict) -> None:
    spec = smoke_spec(**patch)
    rec = Recorder()
    a = render(spec, tmp_path / "a", observers=[rec], progress=False)
    b = render(spec, tmp_path / "b", progress=False)
    assert_same_pixels_and_bytes(a.run_dir / "smoke_0000.png", b.run_dir / "smoke_0000.png")
    if "init" in patch and "init_image" in patch["init"]:
        assert "init_loss" in rec.steps[0][5]
        assert [k for _, _, k, _, _, _ in rec.steps][0] == 12 - 1 - 4
