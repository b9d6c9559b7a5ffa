"""DD 5.3+ mirror symmetry, as DD 5.7 renders it (pure functions over tensors).

DD 5.7 ``disco.py`` passes ``transformation_fn=symmetry_transformation_fn`` and ``transformation_percent`` to
its guided-diffusion fork's ``ddim_sample_loop_progressive`` (DDIM only), which computes
``transformation_steps = [int(len(indices) * (1 - p)) for p in transformation_percent]`` over the loop's
timestep indices ``len(indices) - 1 … 0`` and, before the step whose index is in that list, replaces x_t by
its mirrored form (no gradient, nothing drawn).
"""

from __future__ import annotations

from typing import Sequence

import torch


def symmetry_step_indices(iterations: int, transformation_percent: Sequence[float]) -> frozenset[int]:
    """The sampler indices k (counting down from ``iterations - 1``) before which x_t is mirrored.

    ``iterations`` is the item's number of sampler steps (steps − skip_steps). Python's own float
    arithmetic, as DD's: p = 0 gives ``iterations`` (never reached), p = 1 gives 0 (the last step)."""
    return frozenset(int(iterations * (1 - p)) for p in transformation_percent)


def mirror_halves(x: torch.Tensor, *, horizontal: bool, vertical: bool) -> torch.Tensor:
    """DD 5.7's ``symmetry_transformation_fn`` on an [N, C, H, W] tensor: horizontal copies the left half,
    flipped, over the right half; then vertical copies the top half, flipped, over the bottom half.

    DD builds ``cat(half, flip(half))``, which drops a column (row) of an odd side; disco-spec's sides are
    multiples of 64, so an odd side is refused rather than shrunk."""
    h, w = x.shape[-2:]
    if (horizontal and w % 2) or (vertical and h % 2):
        raise ValueError(f"mirror symmetry needs even sides, got {w}x{h}")
    if horizontal:
        left = x[..., : w // 2]
        x = torch.cat((left, torch.flip(left, [-1])), -1)
    if vertical:
        top = x[..., : h // 2, :]
        x = torch.cat((top, torch.flip(top, [-2])), -2)
    return x
