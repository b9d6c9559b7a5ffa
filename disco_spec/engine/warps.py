"""Affine and perspective warps of an image stack whose gradient is deterministic on CUDA.

torchvision's ``affine``/``perspective`` (what DD's cutout augmentations use) are built on
``grid_sample``, whose CUDA backward torch cannot make deterministic: with
``torch.use_deterministic_algorithms(True)`` it throws (see ``engine/cuda_determinism.py``).
These functions compute the same pictures from the same parameters:

1. the sampling grid is computed as torchvision computes it (same float32 operations, same order),
   giving for each output pixel a source position in input pixels;
2. the taps (4 bilinear, or the nearest pixel) are looked up with ``index_select`` on the flattened
   image and blended with their weights; taps outside the image have weight 0 (zero fill).

``index_select``'s backward is ``index_add``, which torch documents as deterministic on CUDA in
deterministic mode (listed in ``torch.use_deterministic_algorithms``).  A dense interpolation
matrix would be deterministic too, but needs (H·W)² entries: 10 GB for one 224² cut.

torchvision with a fill colour (DD passes fill 0) also resamples a channel of ones and blends with
it: bilinear output = sample(img) · sample(1), which darkens pixels whose taps straddle the
border.  ``warp_bilinear`` reproduces that product; in nearest mode the blend changes nothing
(out-of-image pixels are 0 either way).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "affine_inverse_matrix",
    "perspective_coeffs",
    "affine_source_grid",
    "perspective_source_grid",
    "warp_bilinear",
    "warp_nearest",
    "warp",
    "affine",
    "perspective",
]


def affine_inverse_matrix(angle: float, translate: tuple[float, float]) -> list[float]:
    """The 2×3 matrix taking output to input coordinates (origin at the image centre) for a rotation
    by ``angle`` degrees (counter-clockwise on screen) then a shift by ``translate`` = (tx, ty) px;
    scale 1, no shear (all DD's RandomAffine uses).  Same convention as torchvision's inverse matrix."""
    rot = math.radians(angle)
    cos, sin = math.cos(rot), math.sin(rot)
    tx, ty = translate
    # inverse rotation [[cos, sin], [-sin, cos]] applied after undoing the shift
    m = [cos, sin, 0.0, -sin, cos, 0.0]
    m[2] += m[0] * (-tx) + m[1] * (-ty)
    m[5] += m[3] * (-tx) + m[4] * (-ty)
    return m


def perspective_coeffs(startpoints, endpoints) -> list[float]:
    """The 8 coefficients (a…h) mapping an output pixel (x, y) to the input position
    ((ax + by + c)/(gx + hy + 1), (dx + ey + f)/(gx + hy + 1)), so that each of the four
    ``endpoints`` maps to its ``startpoints`` corner: an 8×8 least-squares solve in float64,
    rounded to float32 as torchvision rounds it."""
    if len(startpoints) != 4 or len(endpoints) != 4:
        raise ValueError("perspective needs exactly four start and four end points")
    rows = []
    for (xe, ye), (xs, ys) in zip(endpoints, startpoints):
        rows.append([xe, ye, 1, 0, 0, 0, -xs * xe, -xs * ye])
        rows.append([0, 0, 0, xe, ye, 1, -ys * xe, -ys * ye])
    a = torch.tensor(rows, dtype=torch.float64)
    b = torch.tensor(startpoints, dtype=torch.float64).reshape(8, 1)
    sol = torch.linalg.lstsq(a, b, driver="gels").solution.reshape(8)
    return sol.to(torch.float32).tolist()


def _pixel_centres(n: int, start: float, device) -> torch.Tensor:
    return torch.linspace(start, start + n - 1, steps=n, device=device)


def _homogeneous_base(height: int, width: int, x0: float, y0: float, dtype, device) -> torch.Tensor:
    """[1, H·W, 3] rows (x, y, 1) of output pixel centres, x from x0 and y from y0 in steps of 1."""
    base = torch.empty(1, height, width, 3, dtype=dtype, device=device)
    base[..., 0].copy_(_pixel_centres(width, x0, device))
    base[..., 1].copy_(_pixel_centres(height, y0, device).unsqueeze(-1))
    base[..., 2].fill_(1)
    return base.view(1, height * width, 3)


def _normalised_to_pixels(grid: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample's align_corners=False convention: −1…1 spans the outer pixel edges."""
    gx, gy = grid[..., 0], grid[..., 1]
    return (gx + 1) * (width / 2) - 0.5, (gy + 1) * (height / 2) - 0.5


def affine_source_grid(matrix: list[float], height: int, width: int, *, dtype=torch.float32, device=None):
    """Input positions (ix, iy), each [H·W] in pixels, that the affine ``matrix`` samples."""
    theta = torch.tensor(matrix, dtype=dtype, device=device).reshape(1, 2, 3)
    base = _homogeneous_base(height, width, -width * 0.5 + 0.5, -height * 0.5 + 0.5, dtype, device)
    scale = torch.tensor([0.5 * width, 0.5 * height], dtype=dtype, device=device)
    grid = base.bmm(theta.transpose(1, 2) / scale)[0]
    return _normalised_to_pixels(grid, height, width)


def perspective_source_grid(coeffs: list[float], height: int, width: int, *, dtype=torch.float32, device=None):
    """Input positions (ix, iy), each [H·W] in pixels, that the perspective ``coeffs`` sample."""
    c = coeffs
    num = torch.tensor([[[c[0], c[1], c[2]], [c[3], c[4], c[5]]]], dtype=dtype, device=device)
    den = torch.tensor([[[c[6], c[7], 1.0], [c[6], c[7], 1.0]]], dtype=dtype, device=device)
    base = _homogeneous_base(height, width, 0.5, 0.5, dtype, device)
    scale = torch.tensor([0.5 * width, 0.5 * height], dtype=dtype, device=device)
    grid = (base.bmm(num.transpose(1, 2) / scale) / base.bmm(den.transpose(1, 2)) - 1.0)[0]
    return _normalised_to_pixels(grid, height, width)


def _taps(img_flat: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor, height: int, width: int):
    """Pixels at integer positions (xi, yi) [P] of img_flat [N, C, H·W] → ([N, C, P], inside mask [P])."""
    inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    index = torch.where(inside, yi * width + xi, torch.zeros_like(xi))
    return img_flat.index_select(-1, index), inside


def warp_bilinear(img: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of img [N, C, H, W] at (ix, iy) [H·W], zero outside, times the in-image
    weight (torchvision's fill-0 blend).  Differentiable in img, deterministic backward."""
    n, c, height, width = img.shape
    flat = img.reshape(n, c, height * width)
    x0, y0 = torch.floor(ix), torch.floor(iy)
    x1, y1 = x0 + 1, y0 + 1
    # weights as grid_sample's CPU kernel forms them: fractional parts and their complements
    fx, fy = ix - x0, iy - y0
    gx, gy = 1 - fx, 1 - fy
    corners = ((x0, y0, gx * gy), (x1, y0, fx * gy), (x0, y1, gx * fy), (x1, y1, fx * fy))
    out = None
    coverage = None
    for xc, yc, weight in corners:
        values, inside = _taps(flat, xc.long(), yc.long(), height, width)
        weight = torch.where(inside, weight, torch.zeros_like(weight)).to(img.dtype)
        term = values * weight
        out = term if out is None else out + term
        coverage = weight if coverage is None else coverage + weight
    return (out * coverage).reshape(n, c, height, width)


def warp_nearest(img: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
    """Nearest-pixel resampling (ties to even, as grid_sample) of img at (ix, iy), zero outside."""
    n, c, height, width = img.shape
    flat = img.reshape(n, c, height * width)
    values, inside = _taps(flat, torch.round(ix).long(), torch.round(iy).long(), height, width)
    return (values * inside.to(img.dtype)).reshape(n, c, height, width)


def warp(img: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor, interpolation: str) -> torch.Tensor:
    if interpolation == "bilinear":
        return warp_bilinear(img, ix, iy)
    if interpolation == "nearest":
        return warp_nearest(img, ix, iy)
    raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")


def affine(img: torch.Tensor, angle: float, translate: tuple[float, float], interpolation: str) -> torch.Tensor:
    """Rotate img [N, C, H, W] by ``angle`` degrees about its centre and shift it by ``translate``
    px, zero fill: torchvision's ``affine(img, angle, translate, scale=1, shear=0, fill=0)``."""
    height, width = img.shape[-2:]
    ix, iy = affine_source_grid(affine_inverse_matrix(angle, translate), height, width, device=img.device)
    return warp(img, ix, iy, interpolation)


def perspective(img: torch.Tensor, startpoints, endpoints, interpolation: str) -> torch.Tensor:
    """Map the corners ``startpoints`` to ``endpoints``, zero fill: torchvision's ``perspective``."""
    height, width = img.shape[-2:]
    ix, iy = perspective_source_grid(perspective_coeffs(startpoints, endpoints), height, width, device=img.device)
    return warp(img, ix, iy, interpolation)
