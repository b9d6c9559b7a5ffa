"""2D (OpenCV) and 3D (depth + camera) animation warps, checked against OpenCV and hand-derived maths."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from disco_spec.animation.warp2d import transform_matrix_2d, warp_2d
from disco_spec.animation.warp3d import (
    camera_from_motion,
    camera_offsets,
    rotation_matrix_xyz,
    warp_3d,
)

H, W = 48, 64


def _random_img(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _motion(**kw: float) -> dict[str, float]:
    m = dict(angle=0.0, zoom=1.0, translation_x=0.0, translation_y=0.0, translation_z=0.0,
             rotation_3d_x=0.0, rotation_3d_y=0.0, rotation_3d_z=0.0)  # fmt: skip
    m.update(kw)
    return m


def _lifted_u8(img: np.ndarray) -> np.ndarray:
    """DD's lift and its float-tensor → PIL conversion: clamp(img/255 + 1/512 − 0.0001) · 255, truncated."""
    x = img.astype(np.float32) / np.float32(255) + np.float32(1 / 512 - 0.0001)
    return (np.clip(x, 0, 1) * np.float32(255)).astype(np.uint8)


# ------------------------------------------------------------------------------------------------- 2D


def _hand_matrix(w: int, h: int, angle: float, zoom: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle)
    cx, cy = w // 2, h // 2
    zc, zs = zoom * math.cos(a), zoom * math.sin(a)
    rz = np.array([[zc, zs, (1 - zc) * cx - zs * cy], [-zs, zc, zs * cx + (1 - zc) * cy], [0, 0, 1]])
    t = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
    return rz @ t


def test_2d_warp_equals_opencv_with_hand_built_matrix() -> None:
    img = _random_img(1)
    angle, zoom, tx, ty = 7.5, 1.1, 10.0, -6.5
    m = _hand_matrix(W, H, angle, zoom, tx, ty)
    np.testing.assert_allclose(transform_matrix_2d(W, H, angle, zoom, tx, ty), m, rtol=0, atol=1e-9)
    expected = cv2.warpPerspective(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    out = warp_2d(img, angle, zoom, tx, ty)
    assert out.dtype == np.uint8 and out.shape == img.shape
    diff = np.abs(out.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_2d_zero_motion_is_identity() -> None:
    img = _random_img(2)
    assert np.array_equal(warp_2d(img, 0.0, 1.0, 0.0, 0.0), img)


@pytest.mark.parametrize("tx,ty", [(10, 0), (0, 7), (-13, 5)])
def test_2d_integer_translation_wraps_like_roll(tx: int, ty: int) -> None:
    img = _random_img(3)
    expected = np.roll(np.roll(img, tx, axis=1), ty, axis=0)  # positive x moves right, positive y down
    assert np.array_equal(warp_2d(img, 0.0, 1.0, tx, ty), expected)


def test_2d_positive_angle_rotates_counter_clockwise_and_keeps_channels() -> None:
    img = np.zeros((H, W, 3), np.uint8)
    cx, cy = W // 2, H // 2
    img[cy, cx + 10, 0] = 255  # a red dot right of the centre
    out = warp_2d(img, 90.0, 1.0, 0.0, 0.0)
    assert out[..., 1:].max() == 0  # only the red channel: colour order unchanged
    y, x = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    assert (y, x) == (cy - 10, cx)  # right of centre → above it: counter-clockwise on screen


# ------------------------------------------------------------------------------------------------- 3D rotation


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@pytest.mark.parametrize("angles", [(0, 0, 0), (10, -20, 30), (-3, 0.5, 179), (90, 45, -60)])
def test_rotation_matrices_orthonormal_and_xyz_order(angles: tuple[float, float, float]) -> None:
    r = rotation_matrix_xyz(*angles).astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
    assert abs(np.linalg.det(r) - 1) < 1e-6
    ax, ay, az = (math.radians(a) for a in angles)
    np.testing.assert_allclose(r, _rx(ax) @ _ry(ay) @ _rz(az), atol=1e-6)


def test_rz_90_maps_x_to_y_right_handed() -> None:
    r = rotation_matrix_xyz(0, 0, 90).astype(np.float64)
    np.testing.assert_allclose(r @ np.array([1.0, 0, 0]), [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(r @ np.array([0, 1.0, 0]), [-1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(rotation_matrix_xyz(90, 0, 0) @ np.array([0, 1.0, 0]), [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(rotation_matrix_xyz(0, 90, 0) @ np.array([0, 0, 1.0]), [1, 0, 0], atol=1e-6)


def test_camera_from_motion_translation_signs_and_scale() -> None:
    _, t = camera_from_motion(_motion(translation_x=4, translation_y=6, translation_z=10))
    assert t == pytest.approx((-4 / 200, 6 / 200, -10 / 200))


def test_camera_offsets_follow_row_vector_fov_projection() -> None:
    rng = np.random.default_rng(4)
    depth = rng.uniform(1.0, 6.0, (H, W)).astype(np.float32)
    fov, near, far = 55.0, 200.0, 10000.0
    r, t = camera_from_motion(_motion(translation_x=3, translation_y=-2, translation_z=8,
                                      rotation_3d_x=1.5, rotation_3d_y=-2.0, rotation_3d_z=4.0))  # fmt: skip
    got = camera_offsets(depth, r, t, fov, near, far)
    # reference, float64: world points (X_c, Y_r, depth), view = P·R + T, NDC = (x, y) / (z·tan(fov/2))
    y, x = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    p = np.stack([x, y, depth.astype(np.float64)], -1)
    v = p @ r.astype(np.float64) + np.asarray(t)
    f = 1 / math.tan(math.radians(fov) / 2)
    new = f * v[..., :2] / v[..., 2:]
    old = f * p[..., :2] / p[..., 2:]
    assert got.shape == (H, W, 2)
    np.testing.assert_allclose(got, new - old, atol=2e-5)


# ------------------------------------------------------------------------------------------------- 3D warp


@pytest.mark.parametrize("sampling_mode", ["bicubic", "bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["border", "zeros", "reflection"])
def test_3d_zero_motion_is_identity_up_to_brightness_lift(sampling_mode: str, padding_mode: str) -> None:
    img = _random_img(5)
    img[0, 0] = 255  # saturated values clamp at 1.0
    depth = np.random.default_rng(6).uniform(0.5, 8, (H, W))
    out = warp_3d(img, depth, _motion(), 40, 200, 10000, padding_mode, sampling_mode)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out, _lifted_u8(img))


def _ramp() -> np.ndarray:
    r, c = np.mgrid[0:H, 0:W]
    return np.stack([3 * c + 20, 4 * r + 10, np.full_like(r, 128)], -1).astype(np.uint8)


def test_3d_forward_move_zooms_in_about_centre() -> None:
    img = _ramp()
    d, tz, fov = 2.0, 10.0, 40.0
    out = warp_3d(img, np.full((H, W), d), _motion(translation_z=tz), fov, 200, 10000, "border", "bilinear")
    # by hand: constant depth d, camera forward by δ = tz/200: NDC offset = K·X·(1/(d−δ) − 1/d) with
    # K = 1/tan(fov/2) and X = linspace(−1, 1) per axis; the grid is affine_grid(align_corners=False) minus
    # that, so the source pixel is centre + (c − centre)·s with s = 1 − K·k·N/(N−1) on an axis of N pixels.
    k = 1 / (d - tz / 200) - 1 / d
    kk = 1 / math.tan(math.radians(fov) / 2)
    sx, sy = 1 - kk * k * W / (W - 1), 1 - kk * k * H / (H - 1)
    assert sx < 1 and sy < 1  # zoom in
    r, c = np.mgrid[0:H, 0:W]
    src_c = (W - 1) / 2 + (c - (W - 1) / 2) * sx
    src_r = (H - 1) / 2 + (r - (H - 1) / 2) * sy
    lift = 255 * (1 / 512 - 0.0001)
    exp_r, exp_g = np.floor(3 * src_c + 20 + lift), np.floor(4 * src_r + 10 + lift)
    inner = (slice(4, H - 4), slice(4, W - 4))
    assert np.abs(out[..., 0][inner] - exp_r[inner]).max() <= 1
    assert np.abs(out[..., 1][inner] - exp_g[inner]).max() <= 1
    assert not np.array_equal(out, _lifted_u8(img))


def test_3d_translation_signs_match_the_guide() -> None:
    img = _ramp()
    d, fov = 2.0, 40.0
    kk = 1 / math.tan(math.radians(fov) / 2)
    inner = (slice(6, H - 6), slice(6, W - 6))
    lift = 255 * (1 / 512 - 0.0001)
    r, c = np.mgrid[0:H, 0:W]
    # camera right (tx > 0): content slides left, i.e. each pixel shows what was to its right
    out = warp_3d(img, np.full((H, W), d), _motion(translation_x=20), fov, 200, 10000, "border", "bilinear")
    shift = kk * (20 / 200) / d * W / 2
    assert np.abs(out[..., 0][inner] - np.floor(3 * (c + shift) + 20 + lift)[inner]).max() <= 1
    # camera up (ty > 0): content slides down, each pixel shows what was above it
    out = warp_3d(img, np.full((H, W), d), _motion(translation_y=20), fov, 200, 10000, "border", "bilinear")
    shift = kk * (20 / 200) / d * H / 2
    assert np.abs(out[..., 1][inner] - np.floor(4 * (r - shift) + 10 + lift)[inner]).max() <= 1


def test_3d_rejects_bad_inputs() -> None:
    img = _random_img(7)
    with pytest.raises(ValueError):
        warp_3d(img, np.ones((H, W + 1)), _motion(), 40, 200, 10000, "border", "bilinear")
    with pytest.raises(ValueError):
        warp_3d(img, np.ones((H, W)), _motion(), 40, 200, 10000, "wrap", "bilinear")
    with pytest.raises(ValueError):
        warp_3d(img, np.ones((H, W)), {"translation_x": 1.0}, 40, 200, 10000, "border", "bilinear")
