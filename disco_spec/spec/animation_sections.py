"""The animation half of the job spec: frames and key-frame motion, the 3D camera and depth models, Video
Input, turbo, VR and the video made of the frames (DD 5.2: disco.py:1932 (AnimSettings cell))."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from . import schedules
from .fields import MAX_FRAMES, MAX_SCHEDULE_KEYS, Finite, Section


KeyFrames = Union[str, Finite, dict[str, Finite]]


def keyframe_values(v: KeyFrames) -> dict[int, float]:
    if isinstance(v, (int, float)):
        return {0: float(v)}
    if isinstance(v, dict) and len(v) > MAX_SCHEDULE_KEYS:
        raise ValueError(f"has {len(v)} key frames; at most {MAX_SCHEDULE_KEYS} are allowed")
    keys = schedules.parse_keyframes(v) if isinstance(v, str) else schedules.keyframes_from_table(
        {int(k): float(x) for k, x in v.items()}
    )
    if len(keys) > MAX_SCHEDULE_KEYS:
        raise ValueError(f"has {len(keys)} key frames; at most {MAX_SCHEDULE_KEYS} are allowed")
    return keys


class AnimationSection(Section):
    """Animation mode, frame count, coherency and the key-frame motion schedules (2D and 3D)."""

    animation_mode: Literal["None", "2D", "3D", "Video Input"] = Field(
        default="None", description="'None' (still images), '2D', '3D' or 'Video Input'."
    )
    max_frames: int = Field(default=10000, ge=1, le=MAX_FRAMES, description=f"Frames rendered in 2D/3D (Video Input: the video's); at most {MAX_FRAMES}.")
    key_frames: bool = Field(default=True, description="Motion settings are key-frame strings; false: plain numbers.")
    interp_spline: Literal["Linear", "Quadratic", "Cubic"] = Field(
        default="Linear",
        description="Key-frame interpolation, as DD's pandas interpolate(): Cubic needs > 3 keys (else Quadratic), "
        "Quadratic > 2 (else Linear).",
    )
    frames_scale: Finite = Field(default=1500, description="LPIPS weight toward the previous (or video) frame.")
    frames_skip_steps: str | int = Field(default="60%", description="Percent of steps skipped for frames >= 1 ('60%').")
    angle: KeyFrames = Field(default="0:(0)", description="2D: degrees of rotation per frame (counter-clockwise).")
    zoom: KeyFrames = Field(default="0: (1), 10: (1.05)", description="2D: scale factor per frame (> 1 zooms in).")
    translation_x: KeyFrames = Field(default="0: (0)", description="2D: pixels per frame to the right; 3D: camera moves right.")
    translation_y: KeyFrames = Field(default="0: (0)", description="2D: pixels per frame down; 3D: camera moves up.")
    translation_z: KeyFrames = Field(default="0: (10.0)", description="3D: camera moves forward per frame.")
    rotation_3d_x: KeyFrames = Field(default="0: (0)", description="3D: camera rotation about x, degrees per frame.")
    rotation_3d_y: KeyFrames = Field(default="0: (0)", description="3D: camera rotation about y, degrees per frame.")
    rotation_3d_z: KeyFrames = Field(default="0: (0)", description="3D: camera rotation about z, degrees per frame.")

    @field_validator("frames_skip_steps")
    @classmethod
    def _pct(cls, v: str | int) -> str | int:
        schedules.parse_percent(v)
        return v

    @field_validator(
        "angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z"
    )
    @classmethod
    def _kf(cls, v: KeyFrames) -> KeyFrames:
        keyframe_values(v)
        return v

    @model_validator(mode="after")
    def _plain_numbers(self) -> "AnimationSection":
        # DD 5.2 crashes with key_frames=False (quirk Q4); we honour the intent: plain numbers only.
        if not self.key_frames:
            for name in MOTION_FIELDS:
                v = getattr(self, name)
                if not isinstance(v, (int, float)):
                    try:
                        float(v)  # type: ignore[arg-type]
                    except (TypeError, ValueError):
                        raise ValueError(f"with key_frames = false, `{name}` must be a plain number (got {v!r})")
        return self


MOTION_FIELDS = (
    "angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z",
)


class Camera3DSection(Section):
    """Depth models and the 3D camera (3D mode only)."""

    midas_depth_model: Literal["dpt_large", "dpt_hybrid", "dpt_hybrid_nyu", "midas_v21", "midas_v21_small"] | str = Field(
        default="dpt_large", description="MiDaS depth model (registry entry)."
    )
    midas_weight: Finite = Field(
        default=0.3, gt=0, description="MiDaS share of the depth mix; >= 1 uses MiDaS alone (as DD). <= 0 crashes DD; refused here."
    )
    adabins_model: str = Field(default="adabins_nyu", description="AdaBins registry entry (used when midas_weight < 1).")
    near_plane: Finite = Field(default=200, gt=0, description="Near clip distance of the 3D camera.")
    far_plane: Finite = Field(default=10000, gt=0, description="Far clip distance of the 3D camera.")
    fov: Finite = Field(default=40, gt=0, lt=180, description="Field of view in degrees (smaller: stronger parallax).")
    padding_mode: Literal["border", "zeros", "reflection"] = Field(default="border", description="How the warp fills edges.")
    sampling_mode: Literal["bicubic", "bilinear", "nearest"] = Field(default="bicubic", description="Warp resampling.")

    @model_validator(mode="after")
    def _planes(self) -> "Camera3DSection":
        if self.far_plane <= self.near_plane:
            raise ValueError("far_plane must be greater than near_plane")
        return self


class VideoInputSection(Section):
    """Video Input mode: frames extracted from a video file."""

    video_init_path: str = Field(default="training.mp4", description="The input video (relative to the spec's folder).")
    video_init_sha256: str | None = Field(default=None, description="Optional pin of the input video's SHA-256.")
    extract_nth_frame: int = Field(default=2, ge=1, description="Keep every n-th frame of the video.")
    video_init_seed_continuity: bool = Field(default=True, description="Same seed for every video frame; false: seed + 1 per frame.")


class TurboSection(Section):
    """Turbo mode (3D only): diffuse every n-th frame, warp and blend the others."""

    turbo_mode: bool = Field(default=False, description="Diffuse only every turbo_steps-th frame, warp the others.")
    # DD's form offers "2".."6", and its code takes int() of any value: every positive whole number works.
    turbo_steps: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,5}$")] | Annotated[int, Field(ge=1, le=999999)] = Field(
        default="3", description="Diffuse frames whose number is a multiple of this (DD's form offers 2..6)."
    )
    turbo_preroll: int = Field(default=10, ge=0, description="Frames always diffused before turbo starts (hard-coded 10 in DD).")


class VRSection(Section):
    """VR mode (3D only): left/right eye views for every frame."""

    vr_mode: bool = Field(default=False, description="Also write left and right eye views of every frame.")
    vr_eye_angle: Finite = Field(default=0.5, description="Inward yaw of each eye in degrees (negative: outward).")
    vr_ipd: Finite = Field(default=5.0, description="Inter-pupillary distance (negative swaps the eyes, as in DD).")


class VideoSection(Section):
    """The final video (DD cell 5)."""

    skip_video_for_run_all: bool = Field(default=True, description="True (DD's default): no video is written.")
    init_frame: int = Field(default=1, ge=0, description="First frame number encoded (DD default 1 skips frame 0).")
    last_frame: int | Literal["final_frame"] = Field(default="final_frame", description="Caps the frames encoded ('final_frame': all).")
    fps: Finite = Field(default=12, gt=0, le=240, description="Frames per second of the video.")
    crf: int = Field(default=17, ge=0, le=51, description="x264 quality (lower: better, larger).")
    vr_layout: Literal["side_by_side", "per_eye"] = Field(default="side_by_side", description="VR video: eyes side by side, or one video per eye.")
