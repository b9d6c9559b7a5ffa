"""Video Input is bounded before extraction (issue 21, item 4): the frames extract_nth_frame would keep and
their size are read from the container (no frame decoded), and a video over MAX_FRAMES, a frame over
MAX_VIDEO_FRAME_PIXELS or all frames over MAX_VIDEO_INPUT_PIXELS is refused (exit 2, naming
video_input.video_init_path) before any frame file is written."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import pytest

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

from cli_helpers import run_cli, smoke_doc, write_spec  # noqa: E402
from disco_spec.animation import video  # noqa: E402
from disco_spec.errors import SpecError  # noqa: E402

FIELD = "video_input.video_init_path"


def tiny_video(path: Path, frames: int, size: str = "16x16", rate: int = 1000) -> Path:
    """`frames` frames of one colour, `size`, H.264 in mp4 (ffmpeg's color source: no Python loop)."""
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
         "-i", f"color=c=gray:size={size}:rate={rate}", "-frames:v", str(frames),
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def clip120(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_video(tmp_path_factory.mktemp("clip") / "clip120.mp4", 120)


@pytest.fixture()
def no_extraction(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every ffmpeg run of the extraction (`video._run`) recorded and failed: a refusal must come first."""
    calls: list = []

    def spy(args):
        calls.append(args)
        raise AssertionError("frames were extracted before the bounds were checked")

    monkeypatch.setattr(video, "_run", spy)
    return calls


def jpgs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jpg"))


def test_the_probe_reads_count_and_size_from_the_container(clip120: Path, tmp_path: Path) -> None:
    probe = video.probe_video(clip120)
    assert (probe.frames, probe.width, probe.height) == (120, 16, 16)
    # the kept count the bound checks is the count extraction gives (every n-th frame from the first)
    for nth in (1, 7, 120, 200):
        kept = video.check_video_bounds(probe, nth, clip120)
        assert kept == len(video.extract_frames(clip120, tmp_path / f"n{nth}", nth)), nth


def test_too_many_frames_are_refused_before_any_is_extracted(clip120: Path, tmp_path: Path, monkeypatch,
                                                              no_extraction: list) -> None:
    monkeypatch.setattr(video, "MAX_FRAMES", 50)
    start = time.perf_counter()
    with pytest.raises(SpecError) as exc:
        video.extract_frames(clip120, tmp_path / "run" / "video_frames", 2)  # 60 kept > 50
    took = time.perf_counter() - start
    assert exc.value.problems[0][0] == FIELD
    text = str(exc.value.problems)
    assert "120 frames" in text and "keeps 60" in text and "50 (MAX_FRAMES)" in text, text
    assert no_extraction == [] and not (tmp_path / "run").exists() and jpgs(tmp_path) == []
    assert took < 5, took
    monkeypatch.undo()  # every 3rd frame keeps 40 <= 50: extracted
    monkeypatch.setattr(video, "MAX_FRAMES", 50)
    assert len(video.extract_frames(clip120, tmp_path / "ok", 3)) == 40


def test_frame_size_and_total_pixels_are_bounded(clip120: Path, tmp_path: Path, monkeypatch,
                                                 no_extraction: list) -> None:
    monkeypatch.setattr(video, "MAX_VIDEO_FRAME_PIXELS", 16 * 16 - 1)
    with pytest.raises(SpecError) as exc:
        video.extract_frames(clip120, tmp_path / "a", 1)
    assert exc.value.problems[0][0] == FIELD and "16x16" in exc.value.problems[0][1]
    assert "MAX_VIDEO_FRAME_PIXELS" in exc.value.problems[0][1]
    monkeypatch.setattr(video, "MAX_VIDEO_FRAME_PIXELS", 16 * 16)
    monkeypatch.setattr(video, "MAX_VIDEO_INPUT_PIXELS", 16 * 16 * 119)
    with pytest.raises(SpecError) as exc:
        video.extract_frames(clip120, tmp_path / "b", 1)
    assert exc.value.problems[0][0] == FIELD and "MAX_VIDEO_INPUT_PIXELS" in exc.value.problems[0][1]
    assert "extract_nth_frame" in exc.value.problems[0][1]
    assert no_extraction == [] and jpgs(tmp_path) == []


def test_a_container_that_under_reports_its_frames_still_extracts_at_most_the_bound(
        clip120: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(video, "probe_video", lambda *a, **k: video.VideoProbe(10, 16, 16))  # it has 120
    monkeypatch.setattr(video, "MAX_FRAMES", 50)
    with pytest.raises(SpecError) as exc:
        video.extract_frames(clip120, tmp_path / "run" / "video_frames", 1)
    assert exc.value.problems[0][0] == FIELD and "more frames than its container said" in str(exc.value)
    assert jpgs(tmp_path / "run") == []  # ffmpeg stopped at 51 frames in the temporary folder, removed


def test_a_video_that_demuxes_forever_is_refused_at_the_deadline(tmp_path: Path) -> None:
    slow = tmp_path / "ffmpeg"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 64)
    start = time.perf_counter()
    with pytest.raises(SpecError) as exc:
        video.probe_video(clip, ffmpeg=str(slow), timeout_s=0.5)
    assert time.perf_counter() - start < 5
    assert exc.value.problems[0][0] == FIELD and "PROBE_TIMEOUT_S" in exc.value.problems[0][1]


def test_not_a_video_is_refused_by_the_probe(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SpecError) as exc:
        video.probe_video(bad)
    assert exc.value.problems[0][0] == FIELD


@pytest.mark.slow  # 100,001 frame paths checked inside the run folder: ~4 s
def test_a_forged_inputs_record_cannot_plan_past_max_frames(clip120: Path, tmp_path: Path,
                                                             no_extraction: list) -> None:
    import json

    from disco_spec.hashes import file_sha256
    from disco_spec.run import video_input
    from disco_spec.spec.access import InputPolicy
    from cli_helpers import smoke_spec

    run = tmp_path / "run"
    run.mkdir()
    frames = [{"path": f"video_frames/{i + 1:04d}.jpg", "sha256": "0" * 64} for i in range(100_001)]
    (run / "inputs.json").write_text(json.dumps({"sha256": file_sha256(clip120), "frames": frames}))
    spec = smoke_spec(animation={"animation_mode": "Video Input"}, video_input={"video_init_path": str(clip120)})
    with pytest.raises(SpecError) as exc:
        video_input.prepare_video_input(spec, run, InputPolicy.for_spec(clip120.parent), resume=True)
    assert exc.value.problems[0][0] == FIELD and "100001 frames recorded in inputs.json" in exc.value.problems[0][1]
    assert no_extraction == [] and jpgs(run) == []


@pytest.mark.slow
def test_render_refuses_a_101000_frame_video_at_once_without_extracting(tmp_path: Path, monkeypatch) -> None:
    """The red team's file: 101,000 tiny frames in ~2.6 MB of mp4 extracted 398 MB of JPEGs and planned
    101,000 frames past MAX_FRAMES. Now `render` exits 2 naming the field before a frame is written."""
    clip = tiny_video(tmp_path / "many.mp4", 101_000)
    assert clip.stat().st_size < 4 << 20
    calls: list = []
    monkeypatch.setattr(video, "_run", lambda args: calls.append(args) or pytest.fail("extraction started"))
    doc = smoke_doc(animation={"animation_mode": "Video Input"},
                    video_input={"video_init_path": str(clip), "extract_nth_frame": 1})
    spec = write_spec(tmp_path / "spec.toml", doc)
    out = tmp_path / "out"
    start = time.perf_counter()
    code, stdout, err = run_cli("render", str(spec), "--out", str(out), "-q", "--no-track")
    took = time.perf_counter() - start
    assert code == 2, (stdout, err)
    assert FIELD in err and "101000 frames" in err and "MAX_FRAMES" in err, err
    assert calls == [] and jpgs(tmp_path) == []
    assert took < 10, took
    print(f"refused in {took:.2f} s")
