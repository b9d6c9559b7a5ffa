"""DD 5.2's Perlin init image (disco.py:739 (create_perlin_noise),
disco.py:752 (regen_perlin), used at disco.py:1216-1228 (do_run)), generator-driven and computed on the CPU.

Two noise images are combined::

    A = noise_image(amps [0.5·1.5^-i for i in 0..11], base lattice 1×1)   # 4096-px square
    B = noise_image(amps [0.5·1.5^-i for i in 0..7],  base lattice 4×4)   # 1024-px square
    mode 'color': A colour, B colour;  'gray': A grey, B grey;  'mixed': A colour, B grey
    init = ((A + B) / 2) * 2 − 1          (A, B as [0,1] RGB tensors)

``noise_image``: per channel (1 if grey else 3) start at 0.5 and add, for octave o of L,
``amps[o] · gradient_noise(lattice (base·2^o)², cell 2^(L−o) px)`` — every octave covers the same
(base·2^L)-pixel square.  Gradient noise is classic Perlin noise: independent N(0,1) x and y gradient
components at the lattice corners (not normalised), dot products with the offsets to the four
corners, blended with the smoothstep 3t²−2t³.  The square is resized to (side_y, side_x) with
bilinear interpolation (align_corners=False, no antialiasing: torchvision's tensor ``resize`` of
DD's era), clamped to [0,1], truncated to 8 bits (``mul(255).byte()`` as ``to_pil_image``), grey is
replicated to RGB, and each channel is stretched by PIL's ``ImageOps.autocontrast``.

The resize is folded into the noise evaluation: along each axis, Perlin interpolation and the
bilinear taps form a sparse operator (4 lattice corners per output position), so each octave is
``rows_op · g · cols_opᵀ`` evaluated with gathers — equal, up to float rounding (~1e-6), to
evaluating the whole 4096-pixel square first and resizing it, at a fraction of the cost.  Random
draws (per channel, per octave, one ``randn(2, lat+1, lat+1)`` for the x and y gradient components)
all come from the generator; the whole computation runs on the CPU in float32, so the result does
not depend on the render device.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from . import rng

__all__ = [
    "PERLIN_MODES",
    "AMPS_A",
    "AMPS_B",
    "BASE_A",
    "BASE_B",
    "draw_gradients",
    "gradient_noise_at",
    "bilinear_taps",
    "noise_planes",
    "noise_image",
    "perlin_init_image",
]

PERLIN_MODES = ("color", "gray", "mixed")
AMPS_A = tuple(1.5**-i * 0.5 for i in range(12))
AMPS_B = tuple(1.5**-i * 0.5 for i in range(8))
BASE_A = 1
BASE_B = 4


def draw_gradients(lattice: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One octave's corner gradients: (gx, gy), each [lattice+1, lattice+1] float32, N(0,1)."""
    g = rng.randn((2, lattice + 1, lattice + 1), generator)
    return g[0], g[1]


def gradient_noise_at(
    gx: torch.Tensor, gy: torch.Tensor, cell: int, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """Perlin gradient noise of one octave at pixel rows × cols of its square → [len(rows), len(cols)].

    Pixel p lies in lattice cell p // cell at fractional offset (p % cell) / cell.  Rows index the
    lattice's first axis (x), cols its second (y).  (Reference form; ``noise_planes`` uses the
    equivalent separable form below.)
    """
    i = (rows // cell)[:, None]
    j = (cols // cell)[None, :]
    fx = ((rows % cell).to(torch.float32) / cell)[:, None]
    fy = ((cols % cell).to(torch.float32) / cell)[None, :]
    n00 = gx[i, j] * fx + gy[i, j] * fy
    n10 = gx[i + 1, j] * (fx - 1) + gy[i + 1, j] * fy
    n01 = gx[i, j + 1] * fx + gy[i, j + 1] * (fy - 1)
    n11 = gx[i + 1, j + 1] * (fx - 1) + gy[i + 1, j + 1] * (fy - 1)
    sx = 3 * fx**2 - 2 * fx**3
    sy = 3 * fy**2 - 2 * fy**3
    near = n00 + sx * (n10 - n00)
    far = n01 + sx * (n11 - n01)
    return near + sy * (far - near)


def bilinear_taps(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (i0, i1) and float64 weights (w0, w1) of a bilinear resize in_size → out_size
    with align_corners=False and no antialiasing (torch's ``interpolate`` convention):
    src = max((dst + 0.5)·in/out − 0.5, 0), i0 = floor(src), i1 = min(i0 + 1, in − 1)."""
    src = (torch.arange(out_size, dtype=torch.float64) + 0.5) * (in_size / out_size) - 0.5
    src = src.clamp(min=0)
    i0 = src.floor().to(torch.int64).clamp(max=in_size - 1)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    w1 = (src - i0.to(torch.float64)).clamp(0, 1)
    return i0, i1, 1 - w1, w1


def _axis_operator(square: int, out_size: int, cell: int):
    """Sparse operators mapping lattice corners to resized output positions along one axis.

    With f the fractional offset in the cell and s = 3f²−2f³, Perlin noise weights the corner
    gradient component *along* this axis by f(1−s) (near corner) and (f−1)s (far corner) — the
    "offset" operator — and the component along the other axis by 1−s and s — the "blend" operator.
    The bilinear resize taps (w0, w1) are folded in.  Each operator is (index [4, out] int64,
    weight [4, out] float32): 2 resize taps × 2 lattice corners per output position.
    """
    i0, i1, w0, w1 = bilinear_taps(square, out_size)
    idx, off, blend = [], [], []
    for tap, w in ((i0, w0), (i1, w1)):
        cell_idx = tap // cell
        f = (tap % cell).to(torch.float64) / cell
        s = 3 * f**2 - 2 * f**3
        idx += [cell_idx, cell_idx + 1]
        off += [w * f * (1 - s), w * (f - 1) * s]
        blend += [w * (1 - s), w * s]
    index = torch.stack(idx)
    return (index, torch.stack(off).float()), (index, torch.stack(blend).float())


def _apply_separable(g: torch.Tensor, row_op, col_op) -> torch.Tensor:
    """For g [C, L, L]: Σ_k Σ_l row_w[k,:,None]·col_w[l,None,:]·g[:, row_idx[k]][:, :, col_idx[l]]
    → [C, rows_out, cols_out]."""
    row_idx, row_w = row_op
    col_idx, col_w = col_op
    mid = (g[:, row_idx] * row_w[None, :, :, None]).sum(1)  # [C, rows_out, L]
    return (mid[:, :, col_idx] * col_w[None, None]).sum(2)  # [C, rows_out, cols_out]


def noise_planes(
    amps: tuple[float, ...], base: int, n_channels: int, side_x: int, side_y: int, generator: torch.Generator
) -> torch.Tensor:
    """Octave sums (start 0.5) resized to [n_channels, side_y, side_x] float32, before clamping.

    Equal (up to float rounding) to evaluating each channel on the whole (base·2^L)² square and
    resizing it bilinearly; rows of the square map to output rows (y), columns to output columns.
    Draw order: channel-major, then octave; one ``randn(2, lat+1, lat+1)`` per octave (gx, gy).
    """
    octaves = len(amps)
    square = base * 2**octaves
    draws = [[draw_gradients(base * 2**o, generator) for o in range(octaves)] for _ in range(n_channels)]
    acc = torch.full((n_channels, side_y, side_x), 0.5, dtype=torch.float32)
    for o, amp in enumerate(amps):
        cell = 2 ** (octaves - o)
        row_off, row_blend = _axis_operator(square, side_y, cell)
        col_off, col_blend = _axis_operator(square, side_x, cell)
        gx = torch.stack([draws[c][o][0] for c in range(n_channels)])
        gy = torch.stack([draws[c][o][1] for c in range(n_channels)])
        noise = _apply_separable(gx, row_off, col_blend) + _apply_separable(gy, row_blend, col_off)
        acc = acc + noise * amp
    return acc


def noise_image(
    amps: tuple[float, ...], base: int, grey: bool, side_x: int, side_y: int, generator: torch.Generator
) -> torch.Tensor:
    """One autocontrasted noise image as uint8 [3, side_y, side_x] (see the module docstring)."""
    planes = noise_planes(amps, base, 1 if grey else 3, side_x, side_y, generator)
    q = planes.clamp(0, 1).mul(255).to(torch.uint8)  # truncation, as to_pil_image
    if grey:
        img = Image.fromarray(q[0].numpy(), mode="L").convert("RGB")
    else:
        img = Image.fromarray(q.permute(1, 2, 0).contiguous().numpy(), mode="RGB")
    img = ImageOps.autocontrast(img)
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def perlin_init_image(
    side_x: int, side_y: int, mode: str, generator: torch.Generator, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """DD's Perlin init: [1, 3, side_y, side_x] float32 in [-1, 1]; A drawn before B."""
    if mode not in PERLIN_MODES:
        raise ValueError(f"perlin mode must be one of {PERLIN_MODES}, got {mode!r}")
    a = noise_image(AMPS_A, BASE_A, mode == "gray", side_x, side_y, generator)
    b = noise_image(AMPS_B, BASE_B, mode in ("gray", "mixed"), side_x, side_y, generator)
    a01 = a.to(torch.float32).div(255)
    b01 = b.to(torch.float32).div(255)
    init = a01.add(b01).div(2).unsqueeze(0).mul(2).sub(1)
    return init.to(device or "cpu")
