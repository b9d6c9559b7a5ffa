"""Turbo blending/bookkeeping (disco.py:1102-1127 (do_run)) and VR eye views (disco.py:1415 (generate_eye_views))."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from disco_spec.animation.turbo import (
    TurboState,
    is_turbo_skipped,
    skip_blend_factor,
    turbo_blend,
    turbo_finish,
    turbo_output,
    turbo_prepare,
    turbo_start,
)
from disco_spec.animation.vr import eye_cameras, eye_file_names, eye_views
from disco_spec.animation.warp3d import rotation_matrix_xyz

H, W = 48, 64


def _img(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------- turbo


@pytest.mark.parametrize("b", [1 / 3, 2 / 3, 1.0, 0.5, 0.25])
def test_turbo_blend_is_addweighted(b: float) -> None:
    new, old = _img(1), _img(2)
    out = turbo_blend(new, old, b)
    assert np.array_equal(out, cv2.addWeighted(new, b, old, 1 - b, 0.0))
    # and what that means numerically: rounded b·new + (1−b)·old
    ref = b * new.astype(np.float64) + (1 - b) * old.astype(np.float64)
    assert np.abs(out - np.round(ref)).max() <= 1


def test_turbo_blend_full_weight_is_new_warp() -> None:
    new, old = _img(3), _img(4)
    assert np.array_equal(turbo_blend(new, old, 1.0), new)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_turbo_output_weights(n: int) -> None:
    diffused, warp = _img(5), _img(6)
    out = turbo_output(diffused, warp, n)
    assert np.array_equal(out, cv2.addWeighted(diffused, 1 / n, warp, 1 - 1 / n, 0.0))
    flat = turbo_output(np.full((4, 4, 3), 90, np.uint8), np.full((4, 4, 3), 30, np.uint8), n)
    assert np.all(flat == round(90 / n + 30 * (1 - 1 / n)))


def test_turbo_schedule_matches_reference_example() -> None:
    # DD's turbo (disco.py:1104-1118 (do_run)), n = 3, P = 10: frames 0–10 diffused; 11 skipped (b = 1); 12
    # diffused; 13 (b = 2/3), 14 (b = 1)
    # skipped; 15 diffused
    skipped = [f for f in range(0, 17) if is_turbo_skipped(f, 10, 3)]
    assert skipped == [11, 13, 14, 16]
    assert skip_blend_factor(11, 3) == 1.0 and skip_blend_factor(13, 3) == pytest.approx(2 / 3)
    assert skip_blend_factor(14, 3) == 1.0


def _shift(img: np.ndarray) -> np.ndarray:
    """A stand-in 3D warp: deterministic, and visibly different each time it is applied."""
    return np.roll(img, 1, axis=1)


def test_turbo_bookkeeping_over_a_sequence() -> None:
    n, p = 3, 2
    frames = {0: _img(10)}
    state = turbo_start(frames[0], preroll=p)
    assert state.old_warp is None
    calls: list[int] = []

    def warp(img: np.ndarray) -> np.ndarray:
        calls.append(1)
        return _shift(img)

    outputs: dict[int, np.ndarray] = {}
    for f in range(1, 9):
        prev = state.prev_frame
        old_before = state.old_warp
        calls.clear()
        prep = turbo_prepare(f, state, warp, preroll=p, steps=n)
        assert np.array_equal(prep.init, _shift(prev))  # new warp always from the previous frame
        if prep.diffuse:
            assert len(calls) == 1
            diffused = _img(100 + f)
            out, state = turbo_finish(prep, diffused, steps=n)
            assert np.array_equal(out, cv2.addWeighted(diffused, 1 / n, prep.init, 1 - 1 / n, 0.0))  # Q21
            assert state.prev_frame is diffused  # the next warp starts from the pure diffusion result
            if f >= p:
                assert np.array_equal(state.old_warp, prep.init)  # old chain restarts at the new warp
            else:
                assert state.old_warp is None
        else:
            assert len(calls) == 2  # two warps on a skipped frame, as DD (two depth estimates)
            assert f in (4, 5, 7, 8)
            b = ((f % n) + 1) / n
            assert prep.blend == pytest.approx(b)
            old = _shift(old_before)
            assert np.array_equal(prep.output, cv2.addWeighted(prep.init, b, old, 1 - b, 0.0))
            out, state = prep.output, prep.state
            assert np.array_equal(state.prev_frame, prep.init)  # the warp becomes the previous frame
            assert np.array_equal(state.old_warp, old)
        outputs[f] = out
    assert sorted(outputs) == list(range(1, 9))


def test_turbo_missing_old_chain_is_refused() -> None:
    state = TurboState(prev_frame=_img(1), old_warp=None)
    with pytest.raises(ValueError, match="old warp chain"):
        turbo_prepare(11, state, _shift, preroll=10, steps=3)
    prep = turbo_prepare(12, state, _shift, preroll=10, steps=3)  # a diffused frame needs no old chain
    assert prep.diffuse
    with pytest.raises(ValueError):
        turbo_finish(turbo_prepare(11, TurboState(_img(1), _img(2)), _shift, preroll=10, steps=3), _img(3), steps=3)


# ------------------------------------------------------------------------------------------------- VR


def _symmetric_img() -> np.ndarray:
    half = np.random.default_rng(20).integers(0, 256, (H, W // 2, 3), dtype=np.uint8)
    return np.concatenate([half, half[:, ::-1]], axis=1)


def test_eye_cameras_as_documented() -> None:
    angle, ipd = 0.5, 5.0
    (rl, tl), (rr, tr) = eye_cameras(angle, ipd)
    th = math.radians(angle)
    assert tl == pytest.approx((math.cos(th) * ipd / 2 / 200, 0, 0))  # left: origin −cosθ·ipd/2, T = −origin/200
    assert tr == pytest.approx((-math.cos(th) * ipd / 2 / 200, 0, 0))
    np.testing.assert_allclose(rl, rotation_matrix_xyz(0, angle, 0), atol=1e-7)  # Ry(+θ)
    np.testing.assert_allclose(rr, rotation_matrix_xyz(0, -angle, 0), atol=1e-7)  # Ry(−θ)


def test_eye_views_differ_and_mirror_for_symmetric_input() -> None:
    img = _symmetric_img()
    calls = []

    def depth_fn(x: np.ndarray) -> np.ndarray:
        calls.append(x)
        return np.full(x.shape[:2], 2.0, np.float32)

    left, right = eye_views(img, depth_fn, 2.0, 20.0, 40, 200, 10000, "border", "bilinear")
    assert left.shape == right.shape == img.shape and left.dtype == np.uint8
    assert len(calls) == 1 and calls[0] is img
    assert not np.array_equal(left, right)
    assert np.abs(left.astype(int) - right[:, ::-1].astype(int)).max() <= 1


def test_fisheye_blackens_far_corners() -> None:
    img = np.full((H, W, 3), 200, np.uint8)
    left, right = eye_views(img, np.full((H, W), 3.0), 0.5, 5.0, 40, 200, 10000, "border", "bicubic")
    for eye in (left, right):
        for y, x in ((0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1)):
            assert eye[y, x].max() == 0
        assert np.all(eye[H // 2 - 2 : H // 2 + 2, W // 2 - 2 : W // 2 + 2] == 200)


def test_eye_file_names_are_unique_per_batch_and_run() -> None:
    assert eye_file_names("Disco", 7) == ("Disco_0007_l.png", "Disco_0007_r.png")
    assert eye_file_names("Disco", 7, run=3) == ("Disco(3)_0007_l.png", "Disco(3)_0007_r.png")
    assert set(eye_file_names("A", 1)).isdisjoint(eye_file_names("B", 1))
    assert set(eye_file_names("A", 1, run=1)).isdisjoint(eye_file_names("A", 1, run=2))
