"""Video Input: the input video's frames extracted once into the run folder, checked by SHA-256 on resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RenderError, SpecError
from ..hashes import file_sha256
from .folders import write_text_atomic
from ..spec.access import InputPolicy
from ..spec.fields import MAX_FRAMES
from ..spec.models import JobSpec
from .records import sha256_or_none


VIDEO_FRAMES_DIR = "video_frames"


INPUTS_FILE = "inputs.json"


def video_module():
    from ..animation import video

    return video


def prepare_video_input(spec: JobSpec, run_dir: Path, access: InputPolicy, *, resume: bool = False,
                        write: bool = True) -> JobSpec:
    """Extract the input video's frames into run_dir/video_frames and return the spec with
    max_frames = the extracted count, to resolve the plan from (as DD sets max_frames from the frame count,
    disco.py:1977-1978 (AnimSettings cell)).

    Writes run_dir/inputs.json: {"video_init_path", "sha256", "extract_nth_frame", "frames": [{path, sha256}]}.
    On resume, the input video must have the recorded SHA-256 and the frames are re-extracted only if one
    is missing or damaged (they must come out identical). The video must lie inside the folders `access`
    allows (checked before the file is looked at).
    `write=False` (the checks of a resume or branch) writes nothing into the run folder: the frame count comes
    from inputs.json, or, where the run recorded none, from an extraction into a temporary folder elsewhere.
    """
    vi = spec.video_input
    if vi.video_init_path[:8].lower().startswith(("http://", "https://")):
        why = f"{vi.video_init_path!r}: the input video must be a local file"
        raise SpecError(f"video_input.video_init_path: {why}", [("video_input.video_init_path", why)])
    src = access.resolve(vi.video_init_path, "video_input.video_init_path")
    if not src.is_file():
        raise SpecError(
            f"video_input.video_init_path: no such file {vi.video_init_path!r}",
            [("video_input.video_init_path", f"no such file: {vi.video_init_path!r} (looked at {src})")],
        )
    video = video_module()
    sha = file_sha256(src)
    if vi.video_init_sha256 and vi.video_init_sha256.lower() != sha:
        raise SpecError(
            "video_input.video_init_sha256: the video's SHA-256 differs",
            [("video_input.video_init_sha256", f"expected {vi.video_init_sha256}, {src} has {sha}")],
        )
    run_dir = Path(run_dir)
    dest = run_dir / VIDEO_FRAMES_DIR
    recorded = None
    if resume:
        recorded = read_inputs_record(run_dir)
    if recorded is not None:
        if recorded.get("sha256") != sha:
            raise SpecError(
                "video_input.video_init_path: the input video changed",
                [("video_input.video_init_path", f"changed since {run_dir.name} started: input video sha256 "
                  f"{recorded.get('sha256')} → {sha} (resume refused; render a new run instead)")],
            )
        want = [(f["path"], f["sha256"]) for f in recorded.get("frames", [])]
        if len(want) > MAX_FRAMES:  # a forged inputs.json: extraction itself never keeps more (animation.video)
            why = f"{len(want)} frames recorded in {INPUTS_FILE}, more than {MAX_FRAMES} (MAX_FRAMES)"
            raise SpecError(f"video_input.video_init_path: {why}", [("video_input.video_init_path", why)])
        if write and (not want or any(sha256_or_none(run_dir / p) != s for p, s in want)):
            paths = _extract(video, src, dest, vi.extract_nth_frame)
            got = [(p.relative_to(run_dir).as_posix(), sha256_or_none(p)) for p in paths]
            if got != want:
                raise RenderError(
                    f"--resume: re-extracting {src} gave different frames than when {run_dir.name} started "
                    "(a different ffmpeg?); render a new run instead"
                )
        count = len(want)
    elif not write:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="disco-spec-video-count-") as tmp:
            count = len(_extract(video, src, Path(tmp) / VIDEO_FRAMES_DIR, vi.extract_nth_frame))
    else:
        paths = _extract(video, src, dest, vi.extract_nth_frame)
        count = len(paths)
        inputs = {
            "video_init_path": vi.video_init_path,
            "sha256": sha,
            "bytes": src.stat().st_size,
            "extract_nth_frame": vi.extract_nth_frame,
            "frames": [{"path": p.relative_to(run_dir).as_posix(), "sha256": sha256_or_none(p)} for p in paths],
        }
        write_text_atomic(run_dir / INPUTS_FILE, json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    if count == 0:
        raise SpecError(
            "video_input.video_init_path: no frames extracted",
            [("video_input.video_init_path", f"no frames could be extracted from {src}")],
        )
    animation = spec.animation.model_copy(update={"max_frames": count})
    return spec.model_copy(update={"animation": animation})


def read_inputs_record(run_dir: Path) -> dict[str, Any] | None:
    """inputs.json as the run wrote it, or None (absent). A forged one (wrong shape, a frame path outside the
    run folder) is refused naming the file; it is read through the one bounded reader."""
    from ..record.manifest_schema import inside_run_dir
    from ..spec.untrusted_json import read_file
    from .journal import RUN_JSON_BYTES

    path = Path(run_dir) / INPUTS_FILE
    if not path.exists():
        return None
    doc = read_file(path, max_bytes=RUN_JSON_BYTES)
    frames = doc.get("frames", []) if isinstance(doc, dict) else None
    if not isinstance(frames, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)
            and inside_run_dir(Path(run_dir), f["path"]) is not None for f in frames):
        why = "not the inputs record disco-spec writes (frames must be {path, sha256} inside the run folder)"
        raise SpecError(f"{path}: {why}", [(str(path), why)])
    return doc


def _extract(video: Any, src: Path, dest: Path, nth: int) -> list[Path]:
    paths = [Path(p) for p in video.extract_frames(src, dest, nth)]
    return sorted(paths)


def video_frame_path(run_dir: Path, number: int) -> Path:
    return Path(run_dir) / VIDEO_FRAMES_DIR / f"{number:04d}.jpg"
