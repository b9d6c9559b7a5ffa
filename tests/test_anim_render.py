"""Animation renders with the tiny models (2D, 3D, 3D turbo + VR, Video Input): inits, turbo schedule,
VR eye files, the video files, and byte-identical repeats."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from disco_spec.run.records import BaseObserver
from disco_spec.run.renderer import render
from disco_spec.spec.load import validate_document

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SMOKE = tomllib.loads((SPECS / "smoke.toml").read_text())


def anim_spec(mode: str, **patch):
    """specs/smoke.toml with only animation_mode switched, plus the given section updates."""
    doc = copy.deepcopy(SMOKE)
    doc["animation"]["animation_mode"] = mode
    for section, values in patch.items():
        doc.setdefault(section, {}).update(values)
    return validate_document(doc)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def frame_shas(result) -> dict[str, str]:
    return {o.path: sha(result.run_dir / o.path) for o in result.outputs if o.kind in ("image", "vr_eye", "partial")}


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


class Recorder(BaseObserver):
    def __init__(self) -> None:
        self.stepped: list[int] = []  # item index of every step event
        self.outputs = []

    def on_step(self, event) -> None:
        self.stepped.append(event.item.index)

    def on_output(self, result, record) -> None:
        self.outputs.append(record)


def render_twice(spec, tmp: Path, **kw):
    recs = (Recorder(), Recorder())
    a = render(spec, tmp / "a", progress=False, spec_dir=str(SPECS), observers=[recs[0]], **kw)
    b = render(spec, tmp / "b", progress=False, spec_dir=str(SPECS), observers=[recs[1]], **kw)
    return a, b, recs


def make_video(path: Path, n: int = 5, size=(48, 40), fps: int = 8) -> Path:
    """A small deterministic mp4 (moving colour gradient) written with imageio-ffmpeg."""
    import imageio_ffmpeg

    w, h = size
    gen = imageio_ffmpeg.write_frames(str(path), size, fps=fps, macro_block_size=8, ffmpeg_log_level="error",
                                      output_params=["-fflags", "+bitexact"])
    gen.send(None)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        frame = np.stack([(xx * 5 + i * 40) % 256, (yy * 6) % 256, np.full_like(xx, 60 + i * 30)], -1).astype(np.uint8)
        gen.send(np.ascontiguousarray(frame))
    gen.close()
    return path


def decode(path: Path) -> tuple[int, float, tuple[int, int]]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    count = sum(1 for _ in reader)
    return count, float(meta["fps"]), tuple(meta["size"])


# ------------------------------------------------------------------------------------------------ 2D


@pytest.fixture(scope="module")
def two_d(tmp_path_factory, ) -> tuple:
    import disco_spec.animation.warp2d as w2

    seen: list[np.ndarray] = []
    orig = w2.warp_2d

    def spy(img, *a, **k):
        seen.append(np.array(img))
        return orig(img, *a, **k)

    spec = anim_spec("2D", animation={"max_frames": 4, "angle": "0: (2)", "translation_x": "0: (3)"},
                     prompts={"text_prompts": {"0": ["a lighthouse"], "2": ["a red barn at night"]}})
    w2.warp_2d = spy
    try:
        a, b, recs = render_twice(spec, tmp_path_factory.mktemp("anim2d"))
    finally:
        w2.warp_2d = orig
    return a, b, recs, seen


@pytest.mark.render
@pytest.mark.slow
def test_2d_frames_warp_the_previous_frame_and_follow_prompt_changes(two_d) -> None:
    a, b, recs, seen = two_d
    plan = a.plan
    assert plan.n_items == 4 and [it.frame for it in plan.items] == [0, 1, 2, 3]
    assert [it.init["kind"] for it in plan.items] == ["none", "previous_frame", "previous_frame", "previous_frame"]
    assert [t.source for t in plan.items[1].text_prompts] == ["a lighthouse"]
    assert [t.source for t in plan.items[2].text_prompts] == ["a red barn at night"]
    assert plan.items[2].seed == plan.base_seed + 2
    # frames >= 1 start from the previous frame's saved 8-bit image, warped (first render's 3 warps)
    for f in (1, 2, 3):
        assert np.array_equal(seen[f - 1], pixels(a.run_dir / f"smoke_{f - 1:04d}.png"))
    # every frame diffused, frames >= 1 with the skipped steps of frames_skip_steps
    assert sorted(set(recs[0].stepped)) == [0, 1, 2, 3]
    assert recs[0].stepped.count(1) == plan.items[1].start_index + 1 < recs[0].stepped.count(0)
    assert [o.path for o in a.outputs if o.kind == "image"] == [f"smoke_{f:04d}.png" for f in range(4)]
    assert (a.run_dir / "run_state.json").is_file() and (a.run_dir / "frames.jsonl").is_file()
    assert not (a.run_dir / "smoke.mp4").exists()  # skip_video_for_run_all defaults to true


@pytest.mark.render
@pytest.mark.slow
def test_2d_two_renders_are_byte_identical(two_d) -> None:
    from disco_spec.record.pngmeta import pixels_sha256

    a, b, *_ = two_d
    pixels_a, pixels_b = ({o.path: pixels_sha256(r.run_dir / o.path) for o in r.outputs if o.kind == "image"}
                          for r in (a, b))
    assert pixels_a == pixels_b, "the pixels differ: the render itself is not deterministic"
    assert frame_shas(a) == frame_shas(b), "same pixels, other file bytes: the id or a text chunk is not content-only"
    assert len(frame_shas(a)) == 4
    assert len(set(frame_shas(a).values())) == 4


# ------------------------------------------------------------------------------------------------ 3D


@pytest.mark.render
@pytest.mark.slow
def test_3d_frames_are_depth_warps_of_the_previous_frame_and_repeat_exactly(tmp_path: Path) -> None:
    import disco_spec.animation.warp3d as w3

    seen = []
    orig = w3.warp_3d

    def spy(img, depth, motion, *a, **k):
        seen.append((np.array(img), dict(motion)))
        return orig(img, depth, motion, *a, **k)

    spec = anim_spec("3D", animation={"max_frames": 3, "rotation_3d_y": "0: (1.5)"})
    w3.warp_3d = spy
    try:
        a, b, recs = render_twice(spec, tmp_path)
    finally:
        w3.warp_3d = orig
    assert len(seen) == 4  # frames 1 and 2, twice
    for f in (1, 2):
        img, motion = seen[f - 1]
        assert np.array_equal(img, pixels(a.run_dir / f"smoke_{f - 1:04d}.png"))
        assert motion == a.plan.items[f].motion and motion["rotation_3d_y"] == 1.5
    assert frame_shas(a) == frame_shas(b) and len(frame_shas(a)) == 3
    weights = {w.name for w in a.weights}
    assert {"tiny-midas", "tiny-adabins"} <= weights  # depth models loaded (once) and recorded
    state = json.loads((a.run_dir / "run_state.json").read_text())
    assert {w["name"] for w in state["weights"]} == weights


# ------------------------------------------------------------------------------------- 3D turbo + VR


@pytest.fixture(scope="module")
def turbo_vr(tmp_path_factory) -> tuple:
    spec = anim_spec(
        "3D",
        animation={"max_frames": 5},
        turbo={"turbo_mode": True, "turbo_steps": "3", "turbo_preroll": 1},
        vr={"vr_mode": True},
        video={"skip_video_for_run_all": False, "init_frame": 0, "fps": 10},
    )
    return render_twice(spec, tmp_path_factory.mktemp("turbo"))


@pytest.mark.render
@pytest.mark.slow
def test_turbo_diffuses_only_the_planned_frames(turbo_vr) -> None:
    a, b, recs = turbo_vr
    plan = a.plan
    # preroll 1, n = 3: frames 0, 1 and 3 diffused; 2 (b = 1) and 4 (b = 2/3) warped and blended
    assert [it.diffuse for it in plan.items] == [True, True, False, True, False]
    assert [it.turbo_blend for it in plan.items] == [None, 1 / 3, 1.0, 1 / 3, 2 / 3]
    for rec in recs:
        assert sorted(set(rec.stepped)) == [it.index for it in plan.items if it.diffuse]
    # a b = 1 skip is the pure new warp, which is also the next "previous frame" (kept as the output itself)
    entries = [json.loads(line) for line in (a.run_dir / "frames.jsonl").read_text().splitlines()]
    assert entries[2]["state"]["prev_frame"]["path"] == "smoke_0002.png"
    # diffused turbo frames are saved blended (Q21), so the unblended result is kept as state
    assert entries[1]["state"]["prev_frame"]["path"] == "state/prev_frame_0001.png"
    assert not np.array_equal(pixels(a.run_dir / "smoke_0001.png"), pixels(a.run_dir / "state/prev_frame_0001.png"))
    assert "old_warp" in entries[4]["state"] and "old_warp" not in entries[0]["state"]


@pytest.mark.slow
@pytest.mark.render
def test_turbo_blends_follow_dd(turbo_vr) -> None:
    """Frame 4 (skipped, b = 2/3) = addWeighted(warp(prev after 3), 2/3, warp(old chain), 1/3)."""
    from disco_spec.animation.turbo import turbo_blend, turbo_output
    from disco_spec.animation.warp3d import warp_3d
    from disco_spec.models.depth import estimate_depth, load_depth_models

    a = turbo_vr[0]
    spec, rd = a.spec, a.run_dir
    c = spec.camera_3d
    models = load_depth_models(c, "cpu", fetch=True)

    def warp(img, item):
        return warp_3d(img, estimate_depth(models, img, c.midas_weight, "cpu"), item.motion, c.fov, c.near_plane,
                       c.far_plane, c.padding_mode, c.sampling_mode)

    it4 = a.plan.items[4]
    prev3, old3 = pixels(rd / "state/prev_frame_0003.png"), pixels(rd / "state/old_warp_0003.png")
    assert np.array_equal(pixels(rd / "smoke_0004.png"), turbo_blend(warp(prev3, it4), warp(old3, it4), 2 / 3))
    # frame 3 (diffused) is saved as 1/3 diffused + 2/3 new warp of frame 2's new warp (= frame 2's output)
    new3 = warp(pixels(rd / "smoke_0002.png"), a.plan.items[3])
    assert np.array_equal(old3, new3)  # a diffused frame restarts the old chain from its new warp
    assert np.array_equal(pixels(rd / "smoke_0003.png"), turbo_output(prev3, new3, 3))


@pytest.mark.render
@pytest.mark.slow
def test_vr_eyes_for_every_frame_and_videos(turbo_vr) -> None:
    a, b, _ = turbo_vr
    eyes = [o.path for o in a.outputs if o.kind == "vr_eye"]
    assert eyes == [f"smoke_{f:04d}_{e}.png" for f in range(5) for e in ("l", "r")]
    assert frame_shas(a) == frame_shas(b) and len(frame_shas(a)) == 15
    videos = [o for o in a.outputs if o.kind == "video"]
    assert [v.path for v in videos] == ["smoke.mp4", "smoke_vr.mp4"]
    assert videos[0].sha256 == sha(a.run_dir / "smoke.mp4")
    assert decode(a.run_dir / "smoke.mp4") == (5, 10.0, (64, 64))  # init_frame 0: all five frames
    assert decode(a.run_dir / "smoke_vr.mp4") == (5, 10.0, (128, 64))  # side by side


# ---------------------------------------------------------------------------------------- Video Input


@pytest.mark.render
@pytest.mark.slow
def test_video_input_uses_the_extracted_frames(tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.mp4", n=5)
    spec = anim_spec("Video Input", video_input={"video_init_path": str(src), "extract_nth_frame": 1},
                     video={"skip_video_for_run_all": False, "fps": 6})
    assert spec.animation.max_frames == 3
    a, b, recs = render_twice(spec, tmp_path, allow_paths=[tmp_path])  # the video is outside the repository
    # max_frames = the number of extracted frames, recorded in spec.json and plan.json
    assert a.plan.n_items == 5 and a.spec.animation.max_frames == 5
    assert json.loads((a.run_dir / "spec.json").read_text())["animation"]["max_frames"] == 5
    assert json.loads((a.run_dir / "plan.json").read_text())["n_items"] == 5
    assert [it.init["video_frame"] for it in a.plan.items] == [1, 2, 3, 4, 5]
    assert sorted(set(recs[0].stepped)) == [0, 1, 2, 3, 4]
    inputs = json.loads((a.run_dir / "inputs.json").read_text())
    assert inputs["video_init_path"] == str(src) and inputs["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert [f["path"] for f in inputs["frames"]] == [f"video_frames/{i:04d}.jpg" for i in range(1, 6)]
    assert frame_shas(a) == frame_shas(b) and len(frame_shas(a)) == 5
    # the input video's bytes are part of what the manifest id covers
    manifest = json.loads((a.run_dir / "manifest.json").read_text())
    assert manifest["hashed"]["inputs"]["video_init_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert manifest["id"] == b.manifest["id"]
    # the default init_frame = 1 leaves frame 0 out (DD's Q16)
    assert decode(a.run_dir / "smoke.mp4") == (4, 6.0, (64, 64))


def test_smoke_spec_switches_to_every_animation_mode() -> None:
    """specs/smoke.toml with only animation_mode changed is a tiny animation (validated, small plan)."""
    from disco_spec.plan.resolve import resolve_plan

    for mode in ("2D", "3D", "Video Input"):
        spec = anim_spec(mode)
        plan = resolve_plan(spec)
        assert plan.animation_mode == mode and plan.n_items == 3 and plan.width == 64
    assert (SPECS / "assets" / "smoke.mp4").stat().st_size < 50_000


@pytest.mark.render
@pytest.mark.slow
def test_vr_per_eye_videos(tmp_path: Path) -> None:
    spec = anim_spec("3D", animation={"max_frames": 2}, vr={"vr_mode": True},
                     video={"skip_video_for_run_all": False, "init_frame": 0, "vr_layout": "per_eye", "fps": 5})
    a = render(spec, tmp_path, progress=False, spec_dir=str(SPECS))
    assert [o.path for o in a.outputs if o.kind == "video"] == ["smoke.mp4", "smoke_vr_l.mp4", "smoke_vr_r.mp4"]
    for name in ("smoke_vr_l.mp4", "smoke_vr_r.mp4"):
        assert decode(a.run_dir / name) == (2, 5.0, (64, 64))
    # eye views are the fisheye 3D warps of the saved frame (corners go black)
    left = pixels(a.run_dir / "smoke_0001_l.png")
    assert left.shape == (64, 64, 3) and left[0, 0].sum() == 0
