"""ResizeRight's cubic antialiased resize as two matrix products, with each size pair's matrix made once.

DD resizes every cutout with ``resize_right.resize(x, out_shape=...)`` (cubic, antialiased, zero
padding).  Along one axis that resize is linear: output pixel i is a weighted sum of input pixels, the
weights depending only on (input size, output size).  ResizeRight recomputes those weights on every
call, on the tensor's device, and reads its padding size back to the host (two device syncs per axis);
here the [out, in] matrix is computed once per size pair on the CPU in float64 (the formulas of
Shocher et al., "From Discrete to Continuous Convolutions", as ResizeRight implements them), kept, and
applied with ``matmul`` -- deterministic on CUDA, forward and backward, and no index gather.

Matrix of one axis (scale s = out/in; cubic kernel k, support 4; when s < 1 the kernel is stretched,
k_s(d) = s·k(s·d), support 4/s):
    p_i  = i/s + (in − 1)/2 − (out − 1)/(2s)           the output pixel's centre in input coordinates
    taps j = ceil(p_i − support/2 − eps) + 0 .. ceil(support − eps) − 1
    w_ij = k_s(p_i − j) / Σ_j k_s(p_i − j)               normalised over every tap, in range or not
    taps outside 0..in−1 read ResizeRight's zero padding: they are dropped after the normalisation.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = ["cubic", "resize_matrix", "resize_cubic_aa_matmul"]

_EPS = float(torch.finfo(torch.float32).eps)  # ResizeRight's boundary epsilon
_SUPPORT = 4.0  # the cubic kernel's support


def cubic(d: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = −0.5), the one ResizeRight and MATLAB use."""
    a = d.abs()
    a2, a3 = a * a, a * a * a
    inner = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1)
    outer = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))
    return inner + outer


@lru_cache(maxsize=4096)  # sizes are bounded by the image (≤ 4096 per side): at most a few thousand pairs
def resize_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """The [out_size, in_size] float32 matrix of ResizeRight's cubic antialiased resize along one axis."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    scale = out_size / in_size
    support = _SUPPORT / scale if scale < 1 else _SUPPORT
    kernel_scale = scale if scale < 1 else 1.0
    # the centres in float32 as ResizeRight computes them (its weights follow from these), then float64
    centres = (torch.arange(out_size) / scale + (in_size - 1) / 2 - (out_size - 1) / (2 * scale)).to(torch.float64)
    left = torch.ceil(centres - support / 2 - _EPS)
    taps = left[:, None] + torch.arange(math.ceil(support - _EPS), dtype=torch.float64)  # [out, T]
    weights = kernel_scale * cubic(kernel_scale * (centres[:, None] - taps))
    total = weights.sum(1, keepdim=True)
    weights = weights / torch.where(total == 0, torch.ones_like(total), total)
    inside = (taps >= 0) & (taps <= in_size - 1)
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)[:, None].expand_as(taps)
    matrix.index_put_((rows[inside], taps[inside].long()), weights[inside], accumulate=True)
    return matrix.to(torch.float32)


def _on(matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The cached CPU matrix on ``like``'s device and dtype; a CUDA copy goes through pinned memory,
    asynchronously, so the host never waits for the device here."""
    if like.device.type == "cpu":
        return matrix.to(like.dtype)
    return matrix.pin_memory().to(like.device, dtype=like.dtype, non_blocking=True)


def resize_cubic_aa_matmul(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Resize [..., h, w] to [..., out_h, out_w]: rows, then columns (an axis of equal size is left as is)."""
    h, w = x.shape[-2:]
    if out_h != h:
        x = torch.matmul(_on(resize_matrix(h, out_h), x), x)
    if out_w != w:
        x = torch.matmul(x, _on(resize_matrix(w, out_w), x).transpose(0, 1))
    return x
