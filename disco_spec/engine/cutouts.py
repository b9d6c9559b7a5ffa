"""Cutouts for CLIP guidance and for image prompts (disco.py:874 (MakeCutoutsDango),
disco.py:830 (MakeCutouts)), generator-driven.

``dango_cutouts``        DD's ``MakeCutoutsDango``: overview cuts of the zero-padded image plus random
                         square inner crops, resized with ResizeRight, then one shared augmentation.
``image_prompt_cutouts`` DD's ``MakeCutouts``: 16 random crops of an image prompt, each augmented on
                         its own, then resized by a Lanczos-2 low-pass + bicubic interpolation.

All randomness comes from the ``generator`` argument, in the order DD draws it (per inner cut: size,
x offset, y offset; then the augmentation draws).  Gradients flow back to the input image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from . import rng
from .augment import augment_stack
from .resize import resize_cubic_aa_matmul

__all__ = [
    "grey3",
    "resize_cubic_aa",
    "pad_to_square",
    "inner_cut_is_grey",
    "dango_cutouts",
    "lanczos_kernel",
    "lanczos_resample",
    "image_prompt_cutouts",
]


def grey3(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luminance (torchvision's rgb_to_grayscale weights) replicated to 3 channels."""
    return TF.rgb_to_grayscale(x, num_output_channels=3)


def resize_cubic_aa(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize [B,C,h,w] to size×size as ResizeRight's defaults do (cubic, antialiased), as DD: its weights
    as cached matrices (engine/resize.py), equal to ResizeRight's up to float rounding."""
    return resize_cubic_aa_matmul(x, size, size)


def pad_to_square(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad the shorter side symmetrically by the integer half of the difference on each side."""
    h, w = x.shape[-2:]
    short = min(h, w)
    pad_w = (h - short) // 2  # portrait: widen
    pad_h = (w - short) // 2  # landscape: heighten
    return F.pad(x, (pad_w, pad_w, pad_h, pad_h))


def inner_cut_is_grey(i: int, inner: int, gray_p: float) -> bool:
    """DD's test for inner cut i: ``i <= int(gray_p * inner)`` (quirk Q25: note <=)."""
    return i <= int(gray_p * inner)


def dango_cutouts(
    x01: torch.Tensor,
    cut_size: int,
    overview: int,
    inner: int,
    ic_pow: float,
    gray_p: float,
    generator: torch.Generator,
    *,
    aug_mode: str | None = "None",
    skip_augs: bool = False,
) -> torch.Tensor:
    """Guidance cutouts of ``x01`` ([1,3,H,W] in [0,1]) → [O+I, 3, cut_size, cut_size].

    Overview: the image zero-padded to an (almost) square and resized to cut_size; for 1 ≤ O ≤ 4 the
    first O of [base, grey(base), hflip(base), grey(hflip(base))], for O > 4 O copies of the base.
    Inner cuts: size = int(u**ic_pow * (short - min_size) + min_size) with u ~ U[0,1),
    min_size = min(H, W, cut_size), offsets uniform over valid positions, grey when
    ``i <= int(gray_p * I)``, resized to cut_size.  Then, unless ``skip_augs``, the ``aug_mode``
    augmentation pipeline with one shared draw for the whole stack.

    For a batch [B,3,H,W] the result is cut-major ([(O+I)*B, ...], cut c of image b at c*B + b),
    the layout DD's ``view([cutn, n, -1])`` expects.
    """
    if x01.ndim != 4:
        raise ValueError(f"expected [B,C,H,W], got shape {tuple(x01.shape)}")
    overview, inner = int(overview), int(inner)
    if overview < 0 or inner < 0:
        raise ValueError("cut counts must be non-negative")
    if overview + inner == 0:
        raise ValueError("at least one cutout is required (overview + inner > 0)")
    h, w = x01.shape[-2:]
    short = min(h, w)
    min_size = min(h, w, cut_size)

    cuts: list[torch.Tensor] = []
    if overview > 0:
        base = resize_cubic_aa(pad_to_square(x01), cut_size)
        if overview <= 4:
            cuts.append(base)
            if overview >= 2:
                cuts.append(grey3(base))
            if overview >= 3:
                flipped = TF.hflip(base)
                cuts.append(flipped)
                if overview == 4:
                    cuts.append(grey3(flipped))
        else:
            cuts.extend([base] * overview)

    for i in range(inner):
        u = rng.rand((), generator)
        size = int(u ** ic_pow * (short - min_size) + min_size)
        off_x = rng.randint_scalar(0, w - size + 1, generator)
        off_y = rng.randint_scalar(0, h - size + 1, generator)
        crop = x01[:, :, off_y:off_y + size, off_x:off_x + size]
        if inner_cut_is_grey(i, inner, gray_p):
            crop = grey3(crop)
        cuts.append(resize_cubic_aa(crop, cut_size))

    stack = torch.cat(cuts)
    if not skip_augs:
        stack = augment_stack(stack, aug_mode, generator)
    return stack


# ---------------------------------------------------------------------------------------------
# Image-prompt cutouts
# ---------------------------------------------------------------------------------------------


def lanczos_kernel(ratio: float, a: int = 2) -> torch.Tensor:
    """Normalised 1-D Lanczos-a low-pass for shrinking by ``ratio`` (= out/in < 1), float32.

    Taps sit at j·ratio for |j| ≤ n−2 with n = ceil(a/ratio + 1) (positions measured in output
    pixels), weight sinc(x)·sinc(x/a) inside |x| < a, then the taps are normalised to sum 1.
    """
    n = math.ceil(a / ratio + 1)
    pos = torch.arange(-(n - 2), n - 1, dtype=torch.float64) * ratio
    weights = torch.where(pos.abs() < a, torch.sinc(pos) * torch.sinc(pos / a), torch.zeros_like(pos))
    return (weights / weights.sum()).to(torch.float32)


def lanczos_resample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize [N,C,h,w] to ``size`` = (H', W'): Lanczos-2 low-pass (reflect padding) along each axis
    that shrinks, then bicubic interpolation with align_corners=True.  Differentiable."""
    n, c, h, w = x.shape
    out_h, out_w = int(size[0]), int(size[1])
    y = x.reshape(n * c, 1, h, w)
    if out_h < h:
        k = lanczos_kernel(out_h / h).to(device=y.device, dtype=y.dtype)
        pad = (k.numel() - 1) // 2
        y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), k.view(1, 1, -1, 1))
    if out_w < w:
        k = lanczos_kernel(out_w / w).to(device=y.device, dtype=y.dtype)
        pad = (k.numel() - 1) // 2
        y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    y = y.reshape(n, c, h, w)
    return F.interpolate(y, size=(out_h, out_w), mode="bicubic", align_corners=True)


def image_prompt_cutouts(
    img_pm1: torch.Tensor,
    cut_size: int,
    generator: torch.Generator,
    *,
    cutn: int = 16,
    skip_augs: bool = False,
) -> torch.Tensor:
    """Cutouts of an image prompt ``img_pm1`` ([1,3,H,W] in [-1,1]) → [cutn, 3, cut_size, cut_size].

    The image is zero-padded (0 = mid-grey in [-1,1]) by H//4 on all sides.  Cut c uses the whole
    padded image when c > cutn - cutn//4 (c = 13, 14, 15 for 16 cuts); otherwise a square of side
    int(short' * clip(N(0.8, 0.3^2), cut_size/short', 1)) at a random offset.  Each cut is augmented
    on its own (image-prompt pipeline) unless ``skip_augs``, then resized with ``lanczos_resample``.
    """
    if img_pm1.ndim != 4:
        raise ValueError(f"expected [B,C,H,W], got shape {tuple(img_pm1.shape)}")
    pad = img_pm1.shape[2] // 4
    padded = F.pad(img_pm1, (pad, pad, pad, pad))
    side_y, side_x = padded.shape[-2:]
    short = min(side_x, side_y)
    whole_from = cutn - cutn // 4
    cuts = []
    for c in range(cutn):
        if c > whole_from:
            cut = padded
        else:
            frac = rng.normal_scalar(0.8, 0.3, generator).clip(float(cut_size / short), 1.0)
            size = int(short * frac)
            off_x = rng.randint_scalar(0, abs(side_x - size + 1), generator)
            off_y = rng.randint_scalar(0, abs(side_y - size + 1), generator)
            cut = padded[:, :, off_y:off_y + size, off_x:off_x + size]
        if not skip_augs:
            cut = augment_stack(cut, "image_prompt", generator)
        cuts.append(lanczos_resample(cut, (cut_size, cut_size)))
    return torch.cat(cuts)
