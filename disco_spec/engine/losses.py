"""Guidance losses and gradient clamping (disco.py:972 (spherical_dist_loss), disco.py:977 (tv_loss),
disco.py:985 (range_loss), disco.py:1266-1291 (cond_fn)).

Pure tensor functions, no state.  Per-image losses return a [B] tensor; ``sat_loss`` and
``clip_loss`` return scalars, as DD computes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "spherical_dist",
    "tv_loss",
    "range_loss",
    "sat_loss",
    "clip_loss",
    "clamp_grad_rms",
    "normalize_target_weights",
    "WEIGHTS_SUM_ZERO_MESSAGE",
]

WEIGHTS_SUM_ZERO_MESSAGE = "The weights must not sum to 0."


def spherical_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """2·arcsin(‖â − b̂‖/2)² over the last dim, â and b̂ unit-normalised (broadcasting)."""
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    return (a - b).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Total variation per image [B]: replicate-pad right/bottom by 1, mean over C,H,W of Δx²+Δy²."""
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx**2 + dy**2).mean([1, 2, 3])


def range_loss(x: torch.Tensor) -> torch.Tensor:
    """Out-of-range penalty per image [B]: mean over C,H,W of (x − clamp(x, −1, 1))²."""
    return (x - x.clamp(-1, 1)).pow(2).mean([1, 2, 3])


def sat_loss(x: torch.Tensor) -> torch.Tensor:
    """Saturation penalty (scalar): mean over all elements of |x − clamp(x, −1, 1)|."""
    return torch.abs(x - x.clamp(min=-1, max=1)).mean()


def clip_loss(image_embeds: torch.Tensor, target_embeds: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """CLIP guidance loss (scalar) for one image: mean over cuts of Σ_T spherical_dist · weight.

    image_embeds [C, D] (one row per cutout), target_embeds [T, D], weights [T].
    """
    if image_embeds.ndim != 2 or target_embeds.ndim != 2:
        raise ValueError("image_embeds and target_embeds must be 2-D ([C,D] and [T,D])")
    if weights.shape != (target_embeds.shape[0],):
        raise ValueError(f"weights must have shape [{target_embeds.shape[0]}], got {tuple(weights.shape)}")
    d = spherical_dist(image_embeds[:, None, :], target_embeds[None, :, :])  # [C, T]
    return d.mul(weights).sum(1).mean(0)


def clamp_grad_rms(grad: torch.Tensor, clamp_max: float) -> torch.Tensor:
    """Scale ``grad`` so that its RMS over all elements is at most ``clamp_max``; direction kept.

    grad · min(rms, clamp_max) / rms.  An all-zero gradient is returned unchanged (DD would divide
    0 by 0 and produce NaN).  No host sync.
    """
    rms = grad.square().mean().sqrt()
    factor = torch.where(rms > 0, rms.clamp(max=clamp_max) / rms, torch.ones_like(rms))
    return grad * factor


def normalize_target_weights(weights: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """w / |Σw| (signs preserved); ValueError "The weights must not sum to 0." when |Σw| < 1e-3."""
    if not isinstance(weights, torch.Tensor):
        weights = torch.tensor(list(weights), dtype=torch.float32)
    total = weights.sum().abs()
    if bool(total < 1e-3):
        raise ValueError(WEIGHTS_SUM_ZERO_MESSAGE)
    return weights / total
