"""`disco-spec render IMAGE.png [--set ...]`: a new render from the spec, seed and item a PNG carries, with
overrides, in rebuild's trust model (files only inside the PNG's folder and --allow-path, URLs only with
--allow-network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli, small_smoke_doc, write_spec
from disco_spec.record import pngmeta

pytestmark = pytest.mark.render


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A 2-image still batch (seed 42: images use seeds 42 and 43) and a 3-frame 2D animation."""
    base = tmp_path_factory.mktemp("remix")
    still = write_spec(base / "still.toml", small_smoke_doc(run={"display_rate": 100, "n_batches": 2}))
    anim = write_spec(base / "anim.toml", small_smoke_doc(run={"display_rate": 100},
                                                          animation={"animation_mode": "2D", "max_frames": 3}))
    for spec in (still, anim):
        code, _, err = run_cli("render", str(spec), "--out", str(base / "out"), "--no-track", "--quiet")
        assert code == 0, err
    return {"base": base, "still": base / "out/smoke/run-0001", "anim": base / "out/smoke/run-0002"}


def _remix(png: Path, out: Path, *args: str) -> tuple[int, str, str]:
    return run_cli("render", str(png), "--out", str(out), "--no-track", "--quiet", *args)


def _only_run(out: Path) -> Path:
    runs = sorted(out.glob("smoke/run-*"))
    assert len(runs) == 1, runs
    return runs[0]


def test_a_png_renders_its_own_item_again(originals, tmp_path):
    png = originals["still"] / "smoke_0001.png"  # image 1 of the batch: seed 43
    code, out, err = _remix(png, tmp_path / "o")
    assert code == 0, err
    run = _only_run(tmp_path / "o")
    assert [p.name for p in run.glob("smoke_*.png")] == ["smoke_0001.png"]  # the PNG's item only
    assert pngmeta.png_info(run / "smoke_0001.png")["seed"] == 43
    # nothing overridden: the same pixels (the spec and seed the PNG carries are the whole recipe)
    assert pngmeta.pixels_sha256(run / "smoke_0001.png") == pngmeta.pixels_sha256(png)


def test_set_overrides_the_pngs_spec(originals, tmp_path):
    png = originals["still"] / "smoke_0000.png"
    code, out, err = _remix(png, tmp_path / "o", "--set", "steps=8", "--set", "clip_guidance_scale=1500")
    assert code == 0, err
    run = _only_run(tmp_path / "o")
    doc = json.loads((run / "spec.json").read_text())
    assert doc["diffusion"]["steps"] == 8 and doc["guidance"]["clip_guidance_scale"] == 1500
    assert doc["run"]["set_seed"] == 42 and doc["run"]["n_batches"] == 2  # the rest as the PNG carries it
    info = pngmeta.png_info(run / "smoke_0000.png")
    assert info["seed"] == 42 and info["spec"]["diffusion"]["steps"] == 8
    assert info["pixels_sha256"] != pngmeta.pixels_sha256(png)


def test_an_animation_frame_renders_that_frame(originals, tmp_path):
    png = originals["anim"] / "smoke_0002.png"
    code, out, err = _remix(png, tmp_path / "o")
    assert code == 0, err
    run = _only_run(tmp_path / "o")
    assert "smoke_0002.png" in {p.name for p in run.glob("smoke_*.png")}
    assert pngmeta.png_info(run / "smoke_0002.png")["frame"] == 2
    assert pngmeta.pixels_sha256(run / "smoke_0002.png") == pngmeta.pixels_sha256(png)


def _with_spec(png: Path, dest: Path, **init) -> Path:
    info = pngmeta.png_info(png)
    spec = info["spec"]
    spec["init"].update(init)
    return pngmeta.set_text(png, {pngmeta.KEY_SPEC: json.dumps(spec)}, dest)


def test_files_outside_the_pngs_folder_are_refused(originals, tmp_path):
    """A PNG from a stranger names a file elsewhere: refused before anything renders (exit 2, the field named)."""
    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir()
    pngmeta.set_text(originals["still"] / "smoke_0000.png", {}, secret)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    png = _with_spec(originals["still"] / "smoke_0000.png", inbox / "remix-me.png", init_image=str(secret))
    code, _, err = _remix(png, tmp_path / "o")
    assert code == 2 and "init.init_image" in err, err
    assert not list((tmp_path / "o").glob("smoke/run-*/smoke_*.png"))
    # allowed explicitly, the same PNG renders
    code, _, err = _remix(png, tmp_path / "o2", "--allow-path", str(secret.parent))
    assert code == 0, err
    # a URL needs --allow-network
    png = _with_spec(originals["still"] / "smoke_0000.png", inbox / "url.png", init_image="https://example.com/x.png")
    code, _, err = _remix(png, tmp_path / "o3")
    assert code == 2 and "--allow-network" in err, err


def test_a_png_without_a_spec_is_bad_input(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    code, _, err = _remix(tmp_path / "plain.png", tmp_path / "o")
    assert code == 2 and "no disco-spec metadata" in err
    code, _, err = run_cli("render", str(tmp_path / "plain.png"), "--resume", "--no-track")
    assert code == 2
