"""DD 5.2's VR eye views (disco.py:1415 (generate_eye_views); 3D mode only).

After every saved 3D output frame (diffused or turbo-skipped, frame 0 included), DD renders two eye
views from the saved file::

    θ = vr_eye_angle · π/180
    left  (s = −1): R = Ry(+θ);  right (s = +1): R = Ry(−θ)
    origin = s · cos θ · vr_ipd / 2;  T = (−origin · 1/200, 0, 0)
    eye = warp3d(saved frame, depth(saved frame), R, T, spherical=True)     # fisheye, align_corners=True

Departures from DD, both deliberate:

* DD re-estimates the depth of the same file for each eye; here ``depth_fn`` is called once and its map
  used for both eyes (identical for a deterministic depth model, and half the cost).
* DD names the eyes ``frame_{f:04}_l.png`` / ``_r.png`` in the batch folder, without batch name or run
  number, so consecutive runs overwrite each other's eye frames.  `eye_file_names` includes the batch
  name (and the run number when given): ``{batch}_{f:04}_l.png`` or ``{batch}({run})_{f:04}_l.png``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .warp3d import TRANSLATION_SCALE, rotation_matrix_xyz, warp_3d_camera

__all__ = ["eye_cameras", "eye_views", "eye_file_names", "EYES"]

EYES = ("l", "r")


def eye_cameras(vr_eye_angle: float, vr_ipd: float) -> list[tuple[np.ndarray, tuple[float, float, float]]]:
    """[(R, T) of the left eye, (R, T) of the right eye], computed as DD computes them."""
    cams = []
    for i in range(2):
        theta = vr_eye_angle * (math.pi / 180)
        origin = math.cos(theta) * vr_ipd / 2 * (-1.0 if i == 0 else 1.0)
        rotation = theta if i == 0 else -theta
        t = (-origin * TRANSLATION_SCALE, 0.0, 0.0)
        r = rotation_matrix_xyz(0.0, rotation, 0.0, degrees=False)
        cams.append((r, t))
    return cams


def eye_views(
    frame_u8: np.ndarray,
    depth_fn: Callable[[np.ndarray], np.ndarray] | np.ndarray,
    vr_eye_angle: float,
    vr_ipd: float,
    fov: float,
    near: float,
    far: float,
    padding_mode: str,
    sampling_mode: str,
    *,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) eye images (uint8 RGB) of a saved frame.  ``depth_fn`` maps the frame to its depth
    map [H, W] (or is that map already)."""
    depth = depth_fn(frame_u8) if callable(depth_fn) else depth_fn
    left, right = (
        warp_3d_camera(
            frame_u8, depth, r, t, fov, near, far, padding_mode, sampling_mode, spherical=True, device=device
        )
        for r, t in eye_cameras(vr_eye_angle, vr_ipd)
    )
    return left, right


def eye_file_names(batch_name: str, frame: int, run: int | None = None) -> tuple[str, str]:
    """File names of a frame's (left, right) eye images, unique per batch (and run, when given)."""
    stem = batch_name if run is None else f"{batch_name}({run})"
    return tuple(f"{stem}_{frame:04d}_{eye}.png" for eye in EYES)  # type: ignore[return-value]
