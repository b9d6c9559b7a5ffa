"""DD 5.2's 2D animation warp (disco.py:1062-1085 (do_run), quirk Q24).

For frame f > 0 DD reads ``prevFrame.png`` with OpenCV and warps it with one perspective matrix::

    c  = (W // 2, H // 2)
    T  = [[1, 0, tx], [0, 1, ty], [0, 0, 1]]          (tx, ty rounded to float32 first, as DD's np.float32)
    Rz = getRotationMatrix2D(c, angle, zoom) as 3×3    (angle in degrees, positive = counter-clockwise)
    M  = Rz · T                                        (translate first, then rotate/zoom about c)
    out = warpPerspective(img, M, (W, H), INTER_LINEAR, borderMode=BORDER_WRAP)

``BORDER_WRAP`` tiles the image: what leaves one edge re-enters at the opposite one (Q24).

DD works on OpenCV's BGR arrays; the warp treats every channel alike, so applying it to RGB gives the
same pixels in RGB order.  Input and output are uint8 RGB [H, W, 3].
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["transform_matrix_2d", "warp_2d"]


def _check_rgb_u8(img: np.ndarray, name: str = "img") -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must be a uint8 RGB array [H, W, 3], got {img.dtype} {img.shape}")
    return img


def transform_matrix_2d(width: int, height: int, angle: float, zoom: float, tx: float, ty: float) -> np.ndarray:
    """The 3×3 float64 matrix M = Rz·T that DD passes to ``cv2.warpPerspective`` (built as DD builds it)."""
    center = (int(width) // 2, int(height) // 2)
    trans = np.float32([[1, 0, tx], [0, 1, ty]])  # DD: np.float32 — the translation is rounded to float32
    rot = cv2.getRotationMatrix2D(center, float(angle), float(zoom))  # float64 2×3
    trans = np.vstack([trans, [0, 0, 1]])  # float32 with an int row → float64
    rot = np.vstack([rot, [0, 0, 1]])
    return np.matmul(rot, trans)


def warp_2d(img_rgb_u8: np.ndarray, angle: float, zoom: float, tx: float, ty: float) -> np.ndarray:
    """Warp one frame as DD's 2D mode does; uint8 RGB in, uint8 RGB out (same size)."""
    img = _check_rgb_u8(img_rgb_u8, "img_rgb_u8")
    h, w = img.shape[:2]
    m = transform_matrix_2d(w, h, angle, zoom, tx, ty)
    out = cv2.warpPerspective(
        np.ascontiguousarray(img), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
    )
    return np.ascontiguousarray(out)
