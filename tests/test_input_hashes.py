"""Input hashes are checked and recorded (issue 14, item 4): a wrong `init_image_sha256` refuses the render
(exit 2, before any model loads, without telling the user to delete their file); the manifest's `inputs`
lists the init image, the image prompts and the input video with their SHA-256."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from folder_snapshot import unchanged
from cli_helpers import run_cli, write_spec
from disco_spec.record.manifest import input_files

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    init, prompt = tmp_path / "init.png", tmp_path / "prompt.png"
    Image.new("RGB", (40, 40), (250, 120, 0)).save(init)
    Image.new("RGB", (40, 40), (0, 90, 250)).save(prompt)
    return init, prompt


def doc(**init: object) -> dict:
    d = copy.deepcopy(SMOKE)
    d["diffusion"]["steps"] = 6
    d["init"].update({"init_image": "init.png", "skip_steps": 2, **init})
    d["prompts"]["image_prompts"] = {"0": ["prompt.png:0.5"]}
    return d


def test_a_wrong_init_image_sha256_refuses_before_models_load(tmp_path: Path, images, monkeypatch) -> None:
    from disco_spec.run import loop

    monkeypatch.setattr(loop, "load_models", lambda *a, **k: pytest.fail("models loaded before the pin was checked"))
    spec = write_spec(tmp_path / "s.toml", doc(init_image_sha256="0" * 64))
    code, out, err = run_cli("render", str(spec), "--out", str(tmp_path / "out"), "-q", "--no-track")
    assert code == 2, err
    assert "init.init_image_sha256" in err and sha(images[0]) in err and "0" * 64 in err
    assert "delete" not in err.lower()
    assert not list((tmp_path / "out").rglob("*.png"))


@pytest.mark.render
@pytest.mark.slow
def test_the_manifest_lists_every_input_with_its_sha256(tmp_path: Path, images) -> None:
    init, prompt = images
    spec = write_spec(tmp_path / "s.toml", doc(init_image_sha256=sha(init).upper()))  # a pin in any case
    code, out, err = run_cli("render", str(spec), "--out", str(tmp_path / "out"), "-q", "--no-track")
    assert code == 0, err
    (run,) = (tmp_path / "out" / "smoke").glob("run-*")
    files = json.loads((run / "manifest.json").read_text())["hashed"]["inputs"]["files"]
    assert files == [
        {"field": "init.init_image", "source": "init.png", "sha256": sha(init), "bytes": init.stat().st_size},
        {"field": "prompts.image_prompts", "source": "prompt.png", "sha256": sha(prompt), "bytes": prompt.stat().st_size},
    ]
    code, out, err = run_cli("verify", str(run))
    assert code == 0, out + err
    # a resume must not mix outputs made from another image prompt
    Image.new("RGB", (40, 40), (1, 2, 3)).save(prompt)
    with unchanged(tmp_path / "out"):
        code, out, err = run_cli("render", str(spec), "--out", str(tmp_path / "out"), "--resume", "-q", "--no-track")
    assert code == 2 and "prompts.image_prompts" in err and "changed since run-0001 started" in err, err


def test_the_input_video_is_listed_with_its_sha256(tmp_path: Path) -> None:
    (tmp_path / "inputs.json").write_text(json.dumps({
        "video_init_path": "clip.mp4", "sha256": "ab" * 32, "bytes": 1234, "extract_nth_frame": 2,
        "frames": [{"path": "video_frames/0001.jpg", "sha256": "cd" * 32}],
    }))
    rec = {"field": "init.init_image", "source": "a.png", "sha256": "ef" * 32, "bytes": 5}
    got = input_files(tmp_path, [rec])
    assert got["files"] == [rec, {"field": "video_input.video_init_path", "source": "clip.mp4",
                                  "sha256": "ab" * 32, "bytes": 1234}]
    assert got["video_init_sha256"] == "ab" * 32 and got["video_frames"] == ["cd" * 32]
    assert input_files(tmp_path / "nothing") == {}
