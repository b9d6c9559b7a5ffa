"""Video in and out with ffmpeg, as DD 5.2 runs it (disco.py:1963-1964 (AnimSettings cell),
disco.py:2623-2647 (CreateVid cell), quirk Q16).

ffmpeg is imageio-ffmpeg's bundled binary when that package is installed, else ``ffmpeg`` on PATH; it is
always run with an argument list (no shell).  For a given binary, extraction and encoding are
deterministic (mjpeg and single-pass libx264 produce the same bytes for the same input).

Video Input extraction (DD's animation-settings cell)::

    ffmpeg -i {video} -vf "select=not(mod(n\\,N))" -vsync vfr -q:v 2 -loglevel error -stats {dir}/%04d.jpg

keeps source frames whose index n is a multiple of N (``extract_nth_frame``); frame f of the animation
(0-based) uses ``{f+1:04}.jpg`` and ``max_frames`` becomes the number of files.  ffmpeg ≥ 5.1 spells
``-vsync vfr`` as ``-fps_mode vfr`` (and 9.x dropped ``-vsync``); the new spelling is used and the old one
only for binaries that do not know it — same frames either way.

Final video (DD's cell 5)::

    ffmpeg -y -vcodec png -r {fps} -start_number {init_frame} -i {batch}({run})_%04d.png
           -frames:v {last_frame+1} -c:v libx264 -vf fps={fps} -pix_fmt yuv420p -crf 17 -preset veryslow out.mp4

``last_frame = 'final_frame'`` counts the frame files; ``-frames:v`` is a frame *count* cap, so with
``init_frame`` i and ``last_frame`` L the video holds frames i … i+L (at most L+1 frames, fewer if the
sequence ends first) — DD's quirk Q16 (and with the default i = 1, frame 0 is left out).  ``crf`` comes
from the spec (DD hard-codes 17).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..atomic import make_dirs, move, remove
from ..errors import RenderError, SpecError
from ..spec.fields import MAX_FRAMES

__all__ = [
    "ffmpeg_exe",
    "VideoProbe",
    "probe_video",
    "check_video_bounds",
    "extract_frames",
    "video_frame_path",
    "encode_mp4",
    "count_frame_files",
    "side_by_side",
]

VIDEO_FIELD = "video_input.video_init_path"
_STDERR_TAIL = 4000

# Bounds on Video Input, checked from the container before a frame is extracted (docs/security.md).
# One frame: the spec's largest side squared (width_height sides are at most 8192).
MAX_VIDEO_FRAME_PIXELS = 8192 * 8192
# All kept frames together: about 8,000 frames of 1920x1080 or 18,600 of 1280x720. ffmpeg's JPEGs at -q:v 2
# measured 0.05 (test pattern) to 0.73 (noise) bytes per pixel plus ~4 KiB per frame, so at most ~13 GiB.
MAX_VIDEO_INPUT_PIXELS = 2**34
# Counting the frames reads the container only (no decoding): 101,000 frames took 0.45 s; a file that
# takes longer than this to demux is refused rather than waited for.
PROBE_TIMEOUT_S = 60.0
_PROBE_HEAD_BYTES = 1 << 16


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: imageio-ffmpeg's bundled one, else ``ffmpeg`` on PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - not installed, or its binary missing: fall back to PATH
        found = shutil.which("ffmpeg")
        if found:
            return found
    raise RenderError("ffmpeg not found: install imageio-ffmpeg (bundles a binary) or put ffmpeg on PATH")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")


def _tail(text: str) -> str:
    text = (text or "").strip()
    return text if len(text) <= _STDERR_TAIL else "…" + text[-_STDERR_TAIL:]


def _fmt_number(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def _frame_number(p: Path) -> int:
    return int(p.stem)


# ----------------------------------------------------------------------------------------------- input


def video_frame_path(frames_dir: str | os.PathLike, frame: int) -> Path:
    """The extracted file that animation frame ``frame`` (0-based) uses as its init: ``{frame+1:04}.jpg``."""
    return Path(frames_dir) / f"{frame + 1:04d}.jpg"


def _refuse(msg: str) -> SpecError:
    return SpecError(f"{VIDEO_FIELD}: {msg}", [(VIDEO_FIELD, msg)])


@dataclass(frozen=True)
class VideoProbe:
    """What the container says about its first video stream, read without decoding a frame."""

    frames: int  # packets of the stream (one per frame)
    width: int
    height: int


# ffmpeg prints a stream's size as ", WxH" after the pixel format (codec tags like "/ 0x31637661" never
# follow a comma).
_STREAM_LINE = re.compile(r"^\s*Stream #0:\d+\S*: Video: (.*)$", re.MULTILINE)
_STREAM_SIZE = re.compile(r", (\d{1,9})x(\d{1,9})(?=[ ,]|$)")
_PROGRESS_FRAME = re.compile(r"^frame=(\d{1,12})\s*$", re.MULTILINE)


def probe_video(video_path: str | os.PathLike, *, ffmpeg: str | None = None,
                timeout_s: float = PROBE_TIMEOUT_S) -> VideoProbe:
    """Count the frames of a video's first video stream and read its frame size from the container, in
    bounded time: ``ffmpeg -i V -map 0:v:0 -c copy -f null -`` copies packets without decoding them (the
    count imageio-ffmpeg's ``count_frames_and_secs`` reads), with a deadline and its output kept in files
    (a hostile file cannot fill memory with warnings).  SpecError naming ``video_input.video_init_path``
    when it is not a readable video, has no size, or takes longer than ``timeout_s``."""
    exe = ffmpeg or ffmpeg_exe()
    src = os.path.abspath(video_path)
    args = [exe, "-hide_banner", "-nostdin", "-i", src, "-map", "0:v:0", "-c", "copy", "-f", "null",
            "-progress", "pipe:1", "-nostats", "-"]  # fmt: skip
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise _refuse(f"counting the frames of {os.fspath(video_path)!r} took longer than {timeout_s:g} s "
                          "(PROBE_TIMEOUT_S); not a video disco-spec will extract") from None
        err.seek(0)
        head = err.read(_PROBE_HEAD_BYTES).decode("utf-8", "replace")
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - 4096))
        progress = out.read().decode("utf-8", "replace")
    stream = _STREAM_LINE.search(head)
    counts = _PROGRESS_FRAME.findall(progress)
    if proc.returncode != 0 or stream is None or not counts:
        why = _tail(head) or "no video stream"
        raise _refuse(f"cannot read {os.fspath(video_path)!r} as a video: {why}")
    dims = _STREAM_SIZE.search(stream.group(1))
    if dims is None or int(dims.group(1)) < 1 or int(dims.group(2)) < 1:
        raise _refuse(f"{os.fspath(video_path)!r}: the video stream has no frame size ({stream.group(0).strip()})")
    return VideoProbe(frames=int(counts[-1]), width=int(dims.group(1)), height=int(dims.group(2)))


def check_video_bounds(probe: VideoProbe, extract_nth_frame: int, video_path: str | os.PathLike) -> int:
    """The number of frames extraction will keep (every ``extract_nth_frame``-th, starting with the first),
    checked against MAX_FRAMES, the frame size against MAX_VIDEO_FRAME_PIXELS and all kept pixels against
    MAX_VIDEO_INPUT_PIXELS; SpecError naming ``video_input.video_init_path`` otherwise."""
    name = os.fspath(video_path)
    kept = -(-probe.frames // int(extract_nth_frame))
    frame_pixels = probe.width * probe.height
    if kept > MAX_FRAMES:
        raise _refuse(f"{name!r} has {probe.frames} frames; extract_nth_frame = {extract_nth_frame} keeps "
                      f"{kept}, more than {MAX_FRAMES} (MAX_FRAMES): raise video_input.extract_nth_frame or shorten the video")
    if frame_pixels > MAX_VIDEO_FRAME_PIXELS:
        raise _refuse(f"{name!r} has frames of {probe.width}x{probe.height}, more than {MAX_VIDEO_FRAME_PIXELS} "
                      "pixels (MAX_VIDEO_FRAME_PIXELS)")
    if kept * frame_pixels > MAX_VIDEO_INPUT_PIXELS:
        raise _refuse(f"{name!r}: {kept} frames of {probe.width}x{probe.height} are {kept * frame_pixels} pixels, "
                      f"more than {MAX_VIDEO_INPUT_PIXELS} (MAX_VIDEO_INPUT_PIXELS): raise "
                      "video_input.extract_nth_frame, or shorten or downscale the video")
    return kept


def extract_frames(
    video_path: str | os.PathLike, dest_dir: str | os.PathLike, extract_nth_frame: int, *, ffmpeg: str | None = None
) -> list[Path]:
    """Extract every ``extract_nth_frame``-th frame of a video into ``dest_dir/%04d.jpg`` as DD does; return
    the frame files in order.  Frames go to a temporary folder first; old numbered ``.jpg`` files in
    ``dest_dir`` are removed (DD empties its videoFrames folder the same way) before the new ones move in.

    Before anything is written, the container's frame count and frame size are checked
    (`probe_video`, `check_video_bounds`); ffmpeg is also told to stop one frame past the bound, so a
    container that under-reports its frames still cannot extract more than the bound allows.

    Raises SpecError (field ``video_input.video_init_path``) when the file is missing, holds no video or
    is over a bound."""
    src = Path(video_path)
    if not src.is_file():
        raise _refuse(f"video file not found: {os.fspath(video_path)!r}")
    n = int(extract_nth_frame)
    if n < 1:
        msg = f"must be >= 1, got {extract_nth_frame!r}"
        raise SpecError(f"video_input.extract_nth_frame: {msg}", [("video_input.extract_nth_frame", msg)])
    exe = ffmpeg or ffmpeg_exe()
    probe = probe_video(src, ffmpeg=exe)
    check_video_bounds(probe, n, video_path)
    most = min(MAX_FRAMES, MAX_VIDEO_INPUT_PIXELS // (probe.width * probe.height))
    dest = Path(dest_dir)
    make_dirs(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        def command(sync: list[str]) -> list[str]:
            return [exe, "-i", os.path.abspath(src), "-vf", f"select=not(mod(n\\,{n}))", *sync,
                    "-frames:v", str(most + 1), "-q:v", "2", "-loglevel", "error", "-stats", str(tmp / "%04d.jpg")]

        proc = _run(command(["-fps_mode", "vfr"]))
        if proc.returncode != 0 and "fps_mode" in (proc.stderr or ""):
            proc = _run(command(["-vsync", "vfr"]))  # ffmpeg older than 5.1
        made = sorted(tmp.glob("*.jpg"), key=_frame_number)
        if proc.returncode != 0 or not made:
            why = _tail(proc.stderr) or "no frames decoded"
            msg = f"cannot extract frames from {os.fspath(video_path)!r} (not a readable video?): {why}"
            raise SpecError(f"{VIDEO_FIELD}: {msg}", [(VIDEO_FIELD, msg)])
        if len(made) > most:
            raise _refuse(f"{os.fspath(video_path)!r} holds more frames than its container said "
                          f"({probe.frames}); more than {most} would be kept (MAX_FRAMES / MAX_VIDEO_INPUT_PIXELS)")
        # Moves and removals through disco_spec.atomic: inside a run folder, a link at `dest` is refused.
        if not os.path.lexists(dest):
            move(tmp, dest)
        else:
            make_dirs(dest)
            for old in dest.glob("*.jpg"):
                if old.stem.isdigit():
                    remove(old)
            for f in made:
                move(f, dest / f.name)
        return sorted((dest / f.name for f in made), key=_frame_number)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- output


def _pattern_regex(pattern_name: str) -> re.Pattern:
    """``name_%04d.png`` → a regex matching the file names ffmpeg's image2 demuxer reads for it."""
    parts = re.split(r"%0?(\d*)d", pattern_name, maxsplit=1)
    if len(parts) != 3:
        raise ValueError(f"frame pattern must contain one %d / %0Nd field, got {pattern_name!r}")
    head, width, tail = parts
    digits = rf"\d{{{int(width)},}}" if width else r"\d+"
    return re.compile(re.escape(head) + digits + re.escape(tail) + r"\Z")


def count_frame_files(pattern: str | os.PathLike) -> int:
    """How many files match a ``%04d`` frame pattern (DD's ``last_frame = 'final_frame'`` count; DD globs
    ``{batch}({run})_*.png``, which here would also count eye images — the cap it feeds is never reached
    either way, see `encode_mp4`)."""
    p = Path(pattern)
    rx = _pattern_regex(p.name)
    folder = p.parent
    return sum(1 for f in folder.iterdir() if rx.match(f.name)) if folder.is_dir() else 0


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        try:
            os.symlink(os.path.abspath(src), dst)
        except OSError:
            shutil.copyfile(src, dst)


def encode_mp4(
    frames: str | os.PathLike | Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    fps: float,
    crf: int = 17,
    *,
    init_frame: int = 1,
    last_frame: int | Literal["final_frame"] = "final_frame",
    preset: str = "veryslow",
    ffmpeg: str | None = None,
) -> Path:
    """Encode PNG frames to an H.264 (libx264, yuv420p) mp4 with DD's command; return ``out_path``.

    ``frames`` is an image2 pattern (``…/name_%04d.png``; the number is the frame index) or a list of PNG
    files, where list position i is frame i.  The range is DD's: start at ``init_frame``, encode at most
    ``last_frame + 1`` frames (Q16), stop early at the first missing number.  The video is written under a
    temporary name in the destination folder and renamed into place; RenderError (with ffmpeg's stderr)
    when ffmpeg fails."""
    out = Path(out_path)
    make_dirs(out.parent)
    init = int(init_frame)
    if init < 0:
        raise ValueError(f"init_frame must be >= 0, got {init_frame!r}")
    exe = ffmpeg or ffmpeg_exe()
    linkdir: Path | None = None
    tmp_out = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if isinstance(frames, (str, os.PathLike)):
            pattern = os.fspath(frames)
            count = count_frame_files(pattern)
        else:
            paths = [Path(f) for f in frames]
            linkdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.frames.", dir=out.parent))
            for i, f in enumerate(paths):
                if not f.is_file():
                    raise RenderError(f"video frame {i} not found: {f}")
                _link_or_copy(f, linkdir / f"{i:04d}.png")
            pattern = str(linkdir / "%04d.png")
            count = len(paths)
        first = _pattern_first(pattern, init)
        if not first.is_file():
            raise RenderError(f"cannot make video: no frame {init} ({first}) to start from (init_frame = {init})")
        last = count if last_frame == "final_frame" else int(last_frame)
        if last < 0:
            raise ValueError(f"last_frame must be >= 0 or 'final_frame', got {last_frame!r}")
        rate = _fmt_number(fps)
        args = [
            exe, "-y", "-hide_banner",
            "-vcodec", "png", "-r", rate, "-start_number", str(init), "-i", pattern,
            "-frames:v", str(last + 1), "-c:v", "libx264", "-vf", f"fps={rate}", "-pix_fmt", "yuv420p",
            "-crf", str(int(crf)), "-preset", preset, "-f", "mp4", str(tmp_out),
        ]  # fmt: skip
        proc = _run(args)
        if proc.returncode != 0 or not tmp_out.is_file():
            raise RenderError(f"ffmpeg failed to encode {out} (exit {proc.returncode}):\n{_tail(proc.stderr)}")
        move(tmp_out, out)  # disco_spec.atomic: inside a run folder, a link at `out` is refused
        return out
    finally:
        if tmp_out.exists():
            tmp_out.unlink()
        if linkdir is not None:
            shutil.rmtree(linkdir, ignore_errors=True)


def _pattern_first(pattern: str, number: int) -> Path:
    p = Path(pattern)
    return p.with_name(re.sub(r"%0?(\d*)d", lambda m: str(number).zfill(int(m.group(1) or 0)), p.name, count=1))


def side_by_side(left_u8: np.ndarray, right_u8: np.ndarray) -> np.ndarray:
    """A stereo frame for VR videos: left eye | right eye, side by side (uint8 RGB [H, 2W, 3])."""
    left, right = np.asarray(left_u8), np.asarray(right_u8)
    for name, x in (("left", left), ("right", right)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name} must be a uint8 RGB array [H, W, 3], got {x.dtype} {x.shape}")
    if left.shape != right.shape:
        raise ValueError(f"eye images differ in size: {left.shape} vs {right.shape}")
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))
