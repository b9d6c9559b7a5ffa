"""DD 5.2's 3D animation warp: move a perspective camera through a depth map and resample
(disco_xform_utils.py:87-122 (transform_image_3d)).

The maths, as DD 5.2 computes it (``transform_image_3d`` with pytorch3d-lite cameras), all in float32:

* Rotation: ``R = Rx(rx)·Ry(ry)·Rz(rz)`` — standard right-handed axis matrices in column-vector form,
  multiplied in X-Y-Z order (pytorch3d's ``euler_angles_to_matrix(angles, "XYZ")``); the per-frame
  ``rotation_3d_*`` values are degrees, converted with ``math.radians``.
* Translation: ``T = (−tx·S, +ty·S, −tz·S)`` with ``S = 1/200`` (``TRANSLATION_SCALE``).
* Cameras: FoV perspective cameras in pytorch3d's convention.  Points are row vectors;
  ``view = world·R + T``; the projection (pixel aspect 1) maps a view point to
  ``NDC = (K00·v_x / v_z, K11·v_y / v_z)`` with ``K00 = K11 = 2n / (2·n·tan(fov/2)) = 1/tan(fov/2)``.
  Near/far only enter the (discarded) depth coordinate.  The "old" camera has R = I, T = 0.
* Every pixel (row r, col c) is the world point ``P = (X_c, Y_r, depth[r, c])`` with
  ``X = linspace(−1, 1, W)``, ``Y = linspace(−1, 1, H)`` (note: align-corners style, unlike the grid);
  its offset is ``project_new(P) − project_old(P)``.
* The sampling grid is the identity grid of ``affine_grid(align_corners=False)`` minus the offsets;
  ``out = grid_sample(img/255 + (1/512 − 0.0001), grid, sampling_mode, padding_mode,
  align_corners=False)``.  The constant is DD's deliberate brightness lift against long-run darkening.
* ``spherical=True`` (VR eyes, disco_xform_utils.py:111-114 (transform_image_3d)): the same grid (still built with
``align_corners=False``) is sampled
  with ``align_corners=True`` — DD's own mix, which shrinks the image by (W−1)/W about its centre even
  without motion — and the result is resampled through a fisheye grid ``g·(1 + 0.4·‖g‖)``
  (bilinear, zero padding, ``align_corners=True``), which blackens the far corners.
* The float result is clamped to [0, 1] and converted as torchvision's ``ToPILImage`` converts a float
  tensor: ``mul(255).byte()`` (truncation, not rounding).

Sign conventions that follow (and match the user guide): positive ``translation_z`` moves the camera
forward (zoom in), positive ``translation_x`` moves it right (content slides left), positive
``translation_y`` moves it up (content slides down).

Depth estimation (MiDaS/AdaBins, models/depth.py) is not here: callers pass the depth map [H, W] that their
depth model produced for the same uint8 image.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "TRANSLATION_SCALE",
    "BRIGHTNESS_LIFT",
    "FISHEYE_MAGNITUDE",
    "MOTION_3D_KEYS",
    "rotation_matrix_xyz",
    "camera_from_motion",
    "projection_matrix",
    "camera_offsets",
    "fisheye_grid",
    "warp_3d_camera",
    "warp_3d",
]

TRANSLATION_SCALE = 1.0 / 200.0
BRIGHTNESS_LIFT = 1 / 512 - 0.0001
FISHEYE_MAGNITUDE = -0.4  # DD's get_spherical_projection(..., magnitude=-0.4): g + (0 − g)·‖g‖·(−0.4)
MOTION_3D_KEYS = ("translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z")
PADDING_MODES = ("border", "zeros", "reflection")
SAMPLING_MODES = ("bicubic", "bilinear", "nearest")


# --------------------------------------------------------------------------------------------- camera maths


def _axis_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    """Right-handed rotation about one axis, column-vector form (R @ v rotates v counter-clockwise)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "X":
        rows = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == "Y":
        rows = (c, zero, s, zero, one, zero, -s, zero, c)
    else:  # "Z"
        rows = (c, -s, zero, s, c, zero, zero, zero, one)
    return torch.stack(rows, -1).reshape(3, 3)


def _rotation_xyz_tensor(rx: float, ry: float, rz: float, degrees: bool) -> torch.Tensor:
    angles = [math.radians(a) for a in (rx, ry, rz)] if degrees else [float(a) for a in (rx, ry, rz)]
    a = torch.tensor(angles, dtype=torch.float32)  # DD: torch.tensor(list of Python floats) → float32
    return _axis_rotation("X", a[0]) @ _axis_rotation("Y", a[1]) @ _axis_rotation("Z", a[2])


def rotation_matrix_xyz(rx: float, ry: float, rz: float, *, degrees: bool = True) -> np.ndarray:
    """``Rx(rx)·Ry(ry)·Rz(rz)`` as a float32 3×3 array (degrees by default, as the ``rotation_3d_*`` series)."""
    return _rotation_xyz_tensor(rx, ry, rz, degrees).numpy()


def camera_from_motion(motion: Mapping[str, float]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(R, T) of the new camera for one frame's motion values (PlanItem.motion; angle/zoom are ignored)."""
    missing = [k for k in MOTION_3D_KEYS if k not in motion]
    if missing:
        raise ValueError(f"motion lacks {', '.join(missing)}")
    s = TRANSLATION_SCALE
    t = (-float(motion["translation_x"]) * s, float(motion["translation_y"]) * s, -float(motion["translation_z"]) * s)
    r = rotation_matrix_xyz(*(float(motion[k]) for k in ("rotation_3d_x", "rotation_3d_y", "rotation_3d_z")))
    return r, t


def projection_matrix(fov_deg: float, near: float, far: float) -> np.ndarray:
    """The FoV perspective camera's 4×4 calibration matrix K (column-vector form, pixel aspect 1), float32."""
    return _projection_tensor(fov_deg, near, far).numpy()


def _projection_tensor(fov_deg: float, near: float, far: float) -> torch.Tensor:
    f32 = torch.float32
    znear, zfar = torch.tensor(float(near), dtype=f32), torch.tensor(float(far), dtype=f32)
    fov = (np.pi / 180) * torch.tensor(float(fov_deg), dtype=f32)
    tan_half = torch.tan(fov / 2)
    max_y = tan_half * znear
    min_y = -max_y
    max_x = max_y * 1.0  # pixel aspect ratio 1
    min_x = -max_x
    k = torch.zeros(4, 4, dtype=f32)
    k[0, 0] = 2.0 * znear / (max_x - min_x)
    k[1, 1] = 2.0 * znear / (max_y - min_y)
    k[0, 2] = (max_x + min_x) / (max_x - min_x)
    k[1, 2] = (max_y + min_y) / (max_y - min_y)
    k[3, 2] = 1.0
    k[2, 2] = zfar / (zfar - znear)
    k[2, 3] = -(zfar * znear) / (zfar - znear)
    return k


def _full_transform(r: torch.Tensor, t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Row-vector world→NDC matrix: rotate, then translate, then project (R4 · T4 · Kᵀ)."""
    r4 = torch.eye(4, dtype=torch.float32)
    r4[:3, :3] = r
    t4 = torch.eye(4, dtype=torch.float32)
    t4[3, :3] = t
    return (r4 @ t4) @ k.transpose(0, 1)


def _project(points_h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    out = points_h @ m
    return out[:, :2] / out[:, 3:]


def _offsets_tensor(
    depth: torch.Tensor, r: torch.Tensor, t: torch.Tensor, fov_deg: float, near: float, far: float
) -> torch.Tensor:
    h, w = depth.shape
    dev = depth.device
    y, x = torch.meshgrid(
        torch.linspace(-1.0, 1.0, h, dtype=torch.float32, device=dev),
        torch.linspace(-1.0, 1.0, w, dtype=torch.float32, device=dev),
        indexing="ij",
    )
    ones = torch.ones(h * w, dtype=torch.float32, device=dev)
    pts = torch.stack((x.flatten(), y.flatten(), depth.flatten(), ones), 1)  # homogeneous row vectors
    k = _projection_tensor(fov_deg, near, far)
    old = _full_transform(torch.eye(3, dtype=torch.float32), torch.zeros(3, dtype=torch.float32), k).to(dev)
    new = _full_transform(r, t, k).to(dev)
    return (_project(pts, new) - _project(pts, old)).reshape(h, w, 2)


def _as_r_t(r: np.ndarray | torch.Tensor | Sequence, t: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    rt = torch.as_tensor(np.asarray(r, dtype=np.float32)).reshape(3, 3)
    tt = torch.tensor([float(v) for v in t], dtype=torch.float32)  # DD: torch.tensor([translate]) → float32
    if tt.shape != (3,):
        raise ValueError(f"T must have 3 components, got {tuple(tt.shape)}")
    return rt, tt


def _depth_tensor(depth: np.ndarray | torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:
    d = torch.as_tensor(np.asarray(depth) if not torch.is_tensor(depth) else depth).to(torch.float32)
    d = d.squeeze()
    if d.ndim != 2:
        raise ValueError(f"depth must be [H, W], got {tuple(d.shape)}")
    if hw is not None and tuple(d.shape) != hw:
        raise ValueError(f"depth is {tuple(d.shape)} but the image is {hw}")
    return d.cpu()


def camera_offsets(
    depth: np.ndarray, r: np.ndarray | Sequence, t: Sequence[float], fov_deg: float, near: float, far: float
) -> np.ndarray:
    """NDC offsets [H, W, 2] (x, y) of every pixel's world point between the new camera (R, T) and the
    old one (R = I, T = 0): ``project_new(P) − project_old(P)`` (float32)."""
    rt, tt = _as_r_t(r, t)
    return _offsets_tensor(_depth_tensor(depth), rt, tt, fov_deg, near, far).numpy()


def fisheye_grid(height: int, width: int) -> np.ndarray:
    """DD's VR "spherical projection" grid [H, W, 2]: g + (0 − g)·‖g‖·(−0.4) = g·(1 + 0.4·‖g‖),
    g ∈ [−1, 1]² (x, y)."""
    return _fisheye_tensor(height, width, torch.device("cpu")).numpy()


def _fisheye_tensor(h: int, w: int, dev: torch.device) -> torch.Tensor:
    yy = torch.linspace(-1, 1, h, dtype=torch.float32, device=dev)
    xx = torch.linspace(-1, 1, w, dtype=torch.float32, device=dev)
    gy, gx = torch.meshgrid(yy, xx, indexing="ij")
    g = torch.stack([gx, gy], dim=-1)
    d = 0 - g
    r = torch.sqrt((d**2).sum(dim=-1))
    return g + d * r.unsqueeze(-1) * FISHEYE_MAGNITUDE


# --------------------------------------------------------------------------------------------- the warp


def _to_u8(x: torch.Tensor) -> np.ndarray:
    """[1,3,H,W] float → uint8 HWC as ToPILImage converts: clamp(0,1) · 255, truncated by ``.byte()``."""
    return x[0].clamp(0, 1.0).mul(255).byte().permute(1, 2, 0).contiguous().cpu().numpy()


def warp_3d_camera(
    img_rgb_u8: np.ndarray,
    depth: np.ndarray,
    r: np.ndarray | Sequence,
    t: Sequence[float],
    fov: float,
    near: float,
    far: float,
    padding_mode: str,
    sampling_mode: str,
    *,
    spherical: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Warp an image to the view of a camera (R, T) given its depth map; uint8 RGB in and out.

    ``device`` only chooses where the arithmetic runs (default CPU, bit-reproducible there)."""
    img = np.asarray(img_rgb_u8)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"img_rgb_u8 must be a uint8 RGB array [H, W, 3], got {img.dtype} {img.shape}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if sampling_mode not in SAMPLING_MODES:
        raise ValueError(f"sampling_mode must be one of {SAMPLING_MODES}, got {sampling_mode!r}")
    h, w = img.shape[:2]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    d = _depth_tensor(depth, (h, w)).to(dev)
    rt, tt = _as_r_t(r, t)
    with torch.no_grad():
        offsets = _offsets_tensor(d, rt, tt, fov, near, far)
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float32, device=dev).unsqueeze(0)
        base = F.affine_grid(identity, [1, 1, h, w], align_corners=False)
        grid = base - offsets.unsqueeze(0)
        x = torch.from_numpy(np.ascontiguousarray(img)).to(dev).permute(2, 0, 1).to(torch.float32).div(255)
        x = x.add(BRIGHTNESS_LIFT).unsqueeze(0)
        if spherical:
            stage = F.grid_sample(x, grid, mode=sampling_mode, padding_mode=padding_mode, align_corners=True)
            out = F.grid_sample(stage, _fisheye_tensor(h, w, dev).unsqueeze(0), align_corners=True)
        else:
            out = F.grid_sample(x, grid, mode=sampling_mode, padding_mode=padding_mode, align_corners=False)
        return _to_u8(out)


def warp_3d(
    img_rgb_u8: np.ndarray,
    depth: np.ndarray,
    motion: Mapping[str, float],
    fov: float,
    near: float,
    far: float,
    padding_mode: str,
    sampling_mode: str,
    *,
    spherical: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """DD's per-frame 3D warp for one frame's motion values (translation_x/y/z, rotation_3d_x/y/z in degrees)."""
    r, t = camera_from_motion(motion)
    return warp_3d_camera(
        img_rgb_u8, depth, r, t, fov, near, far, padding_mode, sampling_mode, spherical=spherical, device=device
    )
