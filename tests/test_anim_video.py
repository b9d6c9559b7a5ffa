"""Video Input extraction and final-video encoding with the bundled ffmpeg (disco.py:1963-1964 (AnimSettings cell),
disco.py:2623-2647 (CreateVid cell), Q16)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

from disco_spec.animation.video import (  # noqa: E402
    count_frame_files,
    encode_mp4,
    extract_frames,
    side_by_side,
    video_frame_path,
)
from disco_spec.errors import RenderError, SpecError  # noqa: E402

FW, FH = 64, 48
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20), (20, 230, 230),
           (230, 20, 230), (128, 128, 128), (250, 250, 250), (10, 10, 10), (200, 120, 40)]  # fmt: skip


@pytest.fixture(scope="module")
def source_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames, 64×48, 12 fps, of ffmpeg's testsrc (every frame differs)."""
    out = tmp_path_factory.mktemp("src") / "in.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
         "-f", "lavfi", "-i", f"testsrc=size={FW}x{FH}:rate=12",
         "-frames:v", "12", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
        check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def png_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames b_0000.png … b_0009.png, each one flat known colour; returns the %04d pattern."""
    d = tmp_path_factory.mktemp("frames")
    for i, c in enumerate(COLOURS):
        Image.fromarray(np.full((FH, FW, 3), c, np.uint8)).save(d / f"b_{i:04d}.png")
    Image.fromarray(np.zeros((FH, FW, 3), np.uint8)).save(d / "b_0003_l.png")  # an eye image: not a frame
    return d / "b_%04d.png"


def _decode(path: Path) -> tuple[dict, list[np.ndarray]]:
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in gen]
    return meta, frames


def _colour_index(frame: np.ndarray) -> int:
    mean = frame.reshape(-1, 3).mean(0)
    return int(np.argmin([np.abs(mean - np.array(c)).sum() for c in COLOURS]))


# ------------------------------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("nth,count", [(1, 12), (2, 6), (5, 3)])
def test_extract_every_nth_frame(source_video: Path, tmp_path: Path, nth: int, count: int) -> None:
    frames = extract_frames(source_video, tmp_path / "videoFrames", nth)
    assert [f.name for f in frames] == [f"{i:04d}.jpg" for i in range(1, count + 1)]
    for f in frames:
        with Image.open(f) as im:
            assert im.size == (FW, FH) and im.format == "JPEG"
    assert video_frame_path(tmp_path / "videoFrames", 0) == frames[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_extract_keeps_frames_whose_index_is_a_multiple_of_n(source_video: Path, tmp_path: Path) -> None:
    every = extract_frames(source_video, tmp_path / "all", 1)
    second = extract_frames(source_video, tmp_path / "half", 2)
    for k, f in enumerate(second):  # kept source frames 0, 2, 4, …: the same pictures as all[0], all[2], …
        a = np.asarray(Image.open(f), np.int16)
        b = np.asarray(Image.open(every[2 * k]), np.int16)
        assert np.abs(a - b).max() <= 2
    # deterministic: the same binary gives the same bytes
    again = extract_frames(source_video, tmp_path / "again", 2)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in second]


def test_extract_replaces_stale_frames(source_video: Path, tmp_path: Path) -> None:
    dest = tmp_path / "videoFrames"
    assert len(extract_frames(source_video, dest, 1)) == 12
    (dest / "notes.txt").write_text("kept")
    frames = extract_frames(source_video, dest, 3)
    assert len(frames) == 4 and sorted(p.name for p in dest.glob("*.jpg")) == [f.name for f in frames]
    assert (dest / "notes.txt").exists()


def test_extract_missing_or_invalid_video_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as missing:
        extract_frames(tmp_path / "nope.mp4", tmp_path / "out", 1)
    assert missing.value.problems[0][0] == "video_input.video_init_path"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(SpecError) as invalid:
        extract_frames(bad, tmp_path / "out", 1)
    assert invalid.value.problems[0][0] == "video_input.video_init_path"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------- encoding


def test_encode_defaults_skip_frame_zero(png_frames: Path, tmp_path: Path) -> None:
    assert count_frame_files(png_frames) == 10  # the eye image does not count
    out = encode_mp4(png_frames, tmp_path / "b.mp4", 12, 17)  # init_frame 1, last_frame 'final_frame'
    meta, frames = _decode(out)
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == pytest.approx(12)
    assert meta["size"] == (FW, FH)
    assert [_colour_index(f) for f in frames] == list(range(1, 10))  # frame 0000 left out (Q16)
    assert [p.name for p in tmp_path.iterdir()] == ["b.mp4"]  # no temp file left
    again = encode_mp4(png_frames, tmp_path / "b2.mp4", 12, 17)
    assert again.read_bytes() == out.read_bytes()  # deterministic for the same binary


def test_encode_range_is_start_plus_count_cap(png_frames: Path, tmp_path: Path) -> None:
    out = encode_mp4(png_frames, tmp_path / "a.mp4", 10, 23, init_frame=0, last_frame=3)
    meta, frames = _decode(out)
    assert meta["fps"] == pytest.approx(10)
    assert [_colour_index(f) for f in frames] == [0, 1, 2, 3]
    # the cap is a COUNT of last_frame + 1 frames from init_frame, not an end index (Q16)
    _, frames = _decode(encode_mp4(png_frames, tmp_path / "b.mp4", 10, 23, init_frame=2, last_frame=3))
    assert [_colour_index(f) for f in frames] == [2, 3, 4, 5]
    _, frames = _decode(encode_mp4(png_frames, tmp_path / "c.mp4", 10, 23, init_frame=7, last_frame=8))
    assert [_colour_index(f) for f in frames] == [7, 8, 9]  # the sequence ends first


def test_encode_from_a_list_of_paths(png_frames: Path, tmp_path: Path) -> None:
    folder = png_frames.parent
    paths = [folder / f"b_{i:04d}.png" for i in (5, 4, 9)]  # list position = frame number
    _, frames = _decode(encode_mp4(paths, tmp_path / "l.mp4", 12, 17, init_frame=0))
    assert [_colour_index(f) for f in frames] == [5, 4, 9]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.mp4"]


def test_encode_failures_raise_render_error(png_frames: Path, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="no frame 42"):
        encode_mp4(png_frames, tmp_path / "x.mp4", 12, 17, init_frame=42)
    junk = tmp_path / "junk_0001.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(RenderError, match="ffmpeg failed"):
        encode_mp4(tmp_path / "junk_%04d.png", tmp_path / "x.mp4", 12, 17)
    assert not (tmp_path / "x.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_side_by_side() -> None:
    left = np.full((4, 6, 3), 10, np.uint8)
    right = np.full((4, 6, 3), 200, np.uint8)
    sbs = side_by_side(left, right)
    assert sbs.shape == (4, 12, 3) and np.all(sbs[:, :6] == 10) and np.all(sbs[:, 6:] == 200)
    with pytest.raises(ValueError):
        side_by_side(left, right[:, :5])
