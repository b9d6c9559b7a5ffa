"""DD 5.2's cutout augmentations, driven by an explicit generator.

DD builds ``torchvision.transforms.Compose`` pipelines of random transforms, which draw their
parameters from torch's *global* RNG.  Here the same pipelines are described as data (tuples of
steps), every parameter is drawn from the caller's ``torch.Generator`` with the same distribution
and in the same order as torchvision draws it, and the transforms are applied with
``torchvision.transforms.functional`` (differentiable on tensors, so gradients reach the input),
except the affine and perspective warps: those are ``engine.warps`` (the same pictures, within
float rounding, with a backward that is deterministic on CUDA; torchvision's ``grid_sample`` is not).

A consequence of drawing in torchvision's order: with a generator seeded ``s`` (input on the CPU)
``augment_stack`` draws exactly what the equivalent ``Compose`` of torchvision's random transforms
(installed version) draws after ``torch.manual_seed(s)``, and returns its picture within 1e-5 (float
rounding of the warps); the tests check this.

Pipelines (disco.py:874 (MakeCutoutsDango) / disco.py:830 (MakeCutouts); "noise" adds N(0, 0.01²) per element):

- ``"None"`` (stills): hflip p=.5, noise, affine(±10°, ±5 %, bilinear), noise, grayscale p=.1, noise,
  jitter(brightness .1, contrast .1, saturation .1, hue .1)
- ``"Video Input"``: hflip p=.5, noise, affine(±15°, ±10 %, nearest), noise, perspective(.4, p=.7),
  noise, grayscale p=.15, noise
- ``"2D"`` / ``"3D"``: hflip p=.4, noise, affine(±10°, ±5 %, bilinear), noise, grayscale p=.1, noise,
  jitter(brightness .1, contrast .1, saturation .1, hue .3)
- ``"image_prompt"`` (MakeCutouts): hflip p=.5, noise, affine(±15°, ±10 %, nearest), noise,
  perspective(.4, p=.7), noise, grayscale p=.15, noise

Affine/perspective fill is 0.  Parameter distributions are torchvision's: angle ~ U(−d, d),
translation = round(U(−t·size, t·size)) px, perspective corners as ``RandomPerspective.get_params``,
jitter factors ~ U(0.9, 1.1) and hue ~ U(−h, h) applied in an order from ``randperm(4)``.

``augment_stack`` draws ONE set of decisions for the whole stack (DD quirk Q26: torchvision draws
once per call and DD calls the pipeline on the stacked cutouts); only the additive noise differs per
element.  ``augment_each`` draws a separate set per element (DD's image-prompt ``MakeCutouts``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from . import rng, warps

__all__ = [
    "NOISE_STD",
    "HFlip",
    "Noise",
    "Affine",
    "Perspective",
    "Grayscale",
    "ColorJitter",
    "PIPELINES",
    "pipeline_for",
    "augment_stack",
    "augment_each",
]

NOISE_STD = 0.01


@dataclass(frozen=True)
class HFlip:
    p: float


@dataclass(frozen=True)
class Noise:
    """Additive Gaussian noise; the std is an argument of augment_stack (DD: 0.01)."""


@dataclass(frozen=True)
class Affine:
    degrees: float
    translate: float
    interpolation: InterpolationMode


@dataclass(frozen=True)
class Perspective:
    distortion: float
    p: float
    interpolation: InterpolationMode = InterpolationMode.BILINEAR


@dataclass(frozen=True)
class Grayscale:
    p: float


@dataclass(frozen=True)
class ColorJitter:
    brightness: float
    contrast: float
    saturation: float
    hue: float


_N = Noise()
_STILLS = (
    HFlip(0.5), _N,
    Affine(10.0, 0.05, InterpolationMode.BILINEAR), _N,
    Grayscale(0.1), _N,
    ColorJitter(0.1, 0.1, 0.1, 0.1),
)
_VIDEO = (
    HFlip(0.5), _N,
    Affine(15.0, 0.1, InterpolationMode.NEAREST), _N,
    Perspective(0.4, 0.7), _N,
    Grayscale(0.15), _N,
)
_ANIM = (
    HFlip(0.4), _N,
    Affine(10.0, 0.05, InterpolationMode.BILINEAR), _N,
    Grayscale(0.1), _N,
    ColorJitter(0.1, 0.1, 0.1, 0.3),
)
# MakeCutouts (image prompts): RandomAffine without an interpolation argument -> NEAREST.
_IMAGE_PROMPT = (
    HFlip(0.5), _N,
    Affine(15.0, 0.1, InterpolationMode.NEAREST), _N,
    Perspective(0.4, 0.7), _N,
    Grayscale(0.15), _N,
)

PIPELINES: dict[str, tuple] = {
    "None": _STILLS,
    "Video Input": _VIDEO,
    "2D": _ANIM,
    "3D": _ANIM,
    "image_prompt": _IMAGE_PROMPT,
}


def pipeline_for(mode: str | None) -> tuple:
    """The step tuple for an animation mode ('None'/None, 'Video Input', '2D', '3D') or 'image_prompt'."""
    key = "None" if mode is None else str(mode)
    try:
        return PIPELINES[key]
    except KeyError:
        raise ValueError(f"unknown augmentation mode {mode!r}; expected one of {sorted(PIPELINES)}") from None


# ---------------------------------------------------------------------------------------------
# One step each.  Parameter draws mirror torchvision's get_params (distribution and order).
# ---------------------------------------------------------------------------------------------


def _hflip(x: torch.Tensor, step: HFlip, gen: torch.Generator) -> torch.Tensor:
    return TF.hflip(x) if rng.bernoulli_scalar(step.p, gen) else x


def _noise(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    z = rng.randn(x.shape, gen, device=x.device, dtype=x.dtype)
    return x + z * std


def _affine(x: torch.Tensor, step: Affine, gen: torch.Generator) -> torch.Tensor:
    height, width = x.shape[-2:]
    angle = rng.uniform_scalar(-step.degrees, step.degrees, gen)
    max_dx = float(step.translate * width)
    max_dy = float(step.translate * height)
    tx = int(round(rng.uniform_scalar(-max_dx, max_dx, gen)))
    ty = int(round(rng.uniform_scalar(-max_dy, max_dy, gen)))
    return warps.affine(x, angle, (tx, ty), step.interpolation.value)


def _perspective_points(width: int, height: int, d: float, gen: torch.Generator):
    """Corner offsets as torchvision's RandomPerspective.get_params draws them."""
    dw = int(d * (width // 2))
    dh = int(d * (height // 2))
    ri = rng.randint_scalar
    top_left = [ri(0, dw + 1, gen), ri(0, dh + 1, gen)]
    top_right = [ri(width - dw - 1, width, gen), ri(0, dh + 1, gen)]
    bot_right = [ri(width - dw - 1, width, gen), ri(height - dh - 1, height, gen)]
    bot_left = [ri(0, dw + 1, gen), ri(height - dh - 1, height, gen)]
    start = [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]
    return start, [top_left, top_right, bot_right, bot_left]


def _perspective(x: torch.Tensor, step: Perspective, gen: torch.Generator) -> torch.Tensor:
    if not rng.bernoulli_scalar(step.p, gen):
        return x
    height, width = x.shape[-2:]
    start, end = _perspective_points(width, height, step.distortion, gen)
    return warps.perspective(x, start, end, step.interpolation.value)


def _grayscale(x: torch.Tensor, step: Grayscale, gen: torch.Generator) -> torch.Tensor:
    if rng.bernoulli_scalar(step.p, gen):
        return TF.rgb_to_grayscale(x, num_output_channels=x.shape[-3])
    return x


def _jitter(x: torch.Tensor, step: ColorJitter, gen: torch.Generator) -> torch.Tensor:
    order = rng.randperm(4, gen)
    u = rng.uniform_scalar
    b = u(max(0.0, 1.0 - step.brightness), 1.0 + step.brightness, gen)
    c = u(max(0.0, 1.0 - step.contrast), 1.0 + step.contrast, gen)
    s = u(max(0.0, 1.0 - step.saturation), 1.0 + step.saturation, gen)
    h = u(-step.hue, step.hue, gen)
    for fn_id in order:
        if fn_id == 0:
            x = TF.adjust_brightness(x, b)
        elif fn_id == 1:
            x = TF.adjust_contrast(x, c)
        elif fn_id == 2:
            x = TF.adjust_saturation(x, s)
        else:
            x = TF.adjust_hue(x, h)
    return x


def _apply_steps(x: torch.Tensor, steps: tuple, gen: torch.Generator, noise_std: float) -> torch.Tensor:
    for step in steps:
        if isinstance(step, HFlip):
            x = _hflip(x, step, gen)
        elif isinstance(step, Noise):
            x = _noise(x, noise_std, gen)
        elif isinstance(step, Affine):
            x = _affine(x, step, gen)
        elif isinstance(step, Perspective):
            x = _perspective(x, step, gen)
        elif isinstance(step, Grayscale):
            x = _grayscale(x, step, gen)
        elif isinstance(step, ColorJitter):
            x = _jitter(x, step, gen)
        else:  # pragma: no cover - PIPELINES only holds the classes above
            raise TypeError(f"unknown augmentation step {step!r}")
    return x


def augment_stack(
    x: torch.Tensor, mode: str | None, generator: torch.Generator, *, noise_std: float = NOISE_STD
) -> torch.Tensor:
    """Apply the ``mode`` pipeline to a stack ``x`` [N,3,H,W] with one shared set of decisions.

    Flip/affine/perspective/greyscale/jitter parameters are drawn once and applied to every element;
    the Gaussian noise is drawn per element (std ``noise_std``, DD: 0.01; 0 disables it but still
    draws, so the stream of the other draws is unchanged).  Differentiable with respect to ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a [N,C,H,W] stack, got shape {tuple(x.shape)}")
    return _apply_steps(x, pipeline_for(mode), generator, noise_std)


def augment_each(
    x: torch.Tensor, generator: torch.Generator, *, mode: str | None = "image_prompt",
    noise_std: float = NOISE_STD,
) -> torch.Tensor:
    """Apply the pipeline (default: image-prompt) to each element of ``x`` with its own draws."""
    if x.ndim != 4:
        raise ValueError(f"expected a [N,C,H,W] stack, got shape {tuple(x.shape)}")
    steps = pipeline_for(mode)
    return torch.cat([_apply_steps(x[i:i + 1], steps, generator, noise_std) for i in range(x.shape[0])])
