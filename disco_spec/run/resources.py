"""Memory and time a render will need, estimated before any model loads (`plan --resources`, and `render`
refusing what the device cannot hold unless `--force`).

A small linear model of one guided step, fitted to what was measured (bench/results/dd-reference-h200.json:
DD 5.2's own step on an H200, fp16 UNet and CLIP, 16 cuts per CLIP forward; the peak torch allocated):

    peak = weights + image_pixels · per_pixel + padded_square_pixels · per_padded_pixel + cuts · per_cut + other

* `per_pixel`: the UNet/secondary activations kept for the gradient, per output pixel; from the 1280×768 and
  512×512 peaks with the secondary model on (3.4 KB/px), and the 1280×768 peak with it off (9.7 KB/px: the
  UNet's graph is kept for the guidance gradient);
* `per_padded_pixel`: the overview cuts zero-pad the image to a square of its longer side (a tall or wide
  image costs its square);
* `per_cut`: one cutout through a CLIP model with its graph, scaled by the model's input area (ViT-B/16 at 224²);
  with `engine.batch_cut_batches` every cut batch of a model is in one forward, so the cuts add up;
* `weights`: the registered files' sizes, halved for the fp16 UNet and CLIP on CUDA;
* `other` (CUDA): what the terms above leave out (latents and noise, text embeddings, the cuBLAS workspace,
  allocator rounding), the fit's constant.
The three measured peaks fix per_pixel (secondary on and off) and `other`; the fit sits 0.5 % below each, so
DD's default settings are estimated at no more than DD needed (`MEASURED_PEAKS`; the error against each is printed
by `plan --resources`). On a CPU everything runs in fp32, so activations count twice. It is an estimate for
refusing hopeless renders (8192×8192 asks for hundreds of GB), not an accounting: the refusal names the setting
that dominates.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from ..models.registry import REGISTRY
from ..spec.models import DD_CLIP_NAMES

# Fitted to bench/results/dd-reference-h200.json (tests/test_resources.py refits them from that file).
PER_PIXEL_SECONDARY = 3_270  # bytes per output pixel, secondary model on, fp16
PER_PIXEL_UNET_GRAD = 9_520  # bytes per output pixel, secondary model off (UNet graph kept), fp16
PER_PADDED_PIXEL = 72  # bytes per pixel of the zero-padded square (fp32 image, its gradient, the resize input)
PER_CUT_224 = 24 << 20  # bytes per 224² cut through one CLIP model with its graph, fp16
CUDA_OTHER = 868 << 20  # latents, embeddings, cuBLAS workspace, allocator rounding (the fit's constant)
# What the fit is checked against: DD 5.2's measured peaks at its default settings (bench/results/
# dd-reference-h200.json; tests/test_resources.py checks this copy). (width, height, secondary model) -> GiB.
MEASURED_PEAKS = {(1280, 768, True): 6.2, (1280, 768, False): 11.9, (512, 512, True): 3.9}
MEASURED_ON = "NVIDIA H200, DD 5.2's step, default settings"
# Each part of the estimate, with the spec field a refusal names and what to change (None: not a user setting).
IMAGE = "image activations (diffusion.width_height)"
PADDED = "padded overview (the longer side squared)"
CUTS = "cutouts (cuts.cutn_batches, cut_overview/innercut)"
OTHER = "other CUDA allocations (fitted)"
SETTING_TO_CHANGE = {
    IMAGE: ("diffusion.width_height", "diffusion.width_height"),
    PADDED: ("diffusion.width_height", "the longer side of diffusion.width_height"),
    CUTS: ("cuts.cutn_batches", "cuts.cutn_batches, cut_overview/innercut (with engine.batch_cut_batches = true: "
           "set it false, or lower engine.max_cuts_per_forward)"),
}
# s/step on the H200 (t >= 600, 12+4 cuts, three CLIP models), same fit: seconds = base + per_pixel · pixels
H200_BASE_S, H200_PER_PIXEL_S, H200_PER_PIXEL_UNET_GRAD_S = 0.432, 1.73e-7, 6.6e-7


# Parameters of DD's models (counted from tests/data/key_manifests, made from the upstream definitions): the
# registry does not record every file's size, and a weight's bytes are 4 (fp32) or 2 (fp16) per parameter.
DD_MODEL_PARAMETERS = {
    "512x512_diffusion_uncond_finetune_008100": 557_973_638, "256x256_diffusion_uncond": 552_814_086,
    "secondary_model_imagenet_2": 13_841_547, "ViTB32": 151_277_313, "ViTB16": 149_620_737,
    "ViTL14": 427_616_513, "RN50": 102_060_440, "RN50x4": 178_410_446, "RN50x16": 291_173_264,
    "RN50x64": 623_669_128, "RN101": 119_793_611,
}


@dataclass(frozen=True)
class ResourceEstimate:
    device: str  # "cuda" or "cpu"
    parts: dict[str, int] = field(default_factory=dict)  # bytes by what needs them
    h200_seconds_per_step: float = 0.0
    errors: list[str] = field(default_factory=list)  # the model's error against each measured peak

    @property
    def peak_bytes(self) -> int:
        return sum(self.parts.values())

    def text(self) -> str:
        rows = [f"expected peak memory on {self.device}: {_gib(self.peak_bytes)}"]
        rows += [f"  {name:<28} {_gib(b)}" for name, b in sorted(self.parts.items(), key=lambda kv: -kv[1])]
        rows.append(f"expected time per step on an H200 (the device measured): {self.h200_seconds_per_step:.2f} s")
        if self.errors:
            rows.append(f"the estimate against measured peaks ({MEASURED_ON}):")
            rows += [f"  {e}" for e in self.errors]
        return "\n".join(rows)


def _gib(b: int) -> str:
    return f"{b / 2**30:.2f} GiB"


def _file_size(ref: Any) -> int:
    """fp32 bytes of a model the spec names (0 for a file the registry cannot size: custom checkpoints)."""
    name = getattr(ref, "name", ref)
    if name in DD_MODEL_PARAMETERS:
        return 4 * DD_MODEL_PARAMETERS[name]
    return int(_entry(ref).get("size") or 0)


def estimate_resources(spec: Any, plan: Any, device: str, *, with_errors: bool = True) -> ResourceEstimate:
    """The estimate for rendering `plan` (of `spec`) on `device` ("cuda" or "cpu"); on CUDA with the model's
    error against each measured peak (`with_errors`)."""
    cuda = device == "cuda"
    act = 1 if cuda else 2  # fp16 on CUDA (DD's rule), fp32 on a CPU
    m = spec.models
    clips = [n for n in DD_CLIP_NAMES if getattr(m, n)] + list(m.extra_clip_models)  # as models.load.clip_refs
    unet_file = _file_size(m.diffusion_model)
    clip_files = sum(_file_size(c) for c in clips)
    other = _file_size(m.secondary_model) if m.use_secondary_model else 0
    weights = (unet_file + clip_files) // (2 if cuda else 1) + other
    pixels = plan.width * plan.height
    per_pixel = PER_PIXEL_SECONDARY if m.use_secondary_model else PER_PIXEL_UNET_GRAD
    cuts_per_batch = max(int(a) + int(b) for a, b in zip(plan.cut_overview, plan.cut_innercut))
    batches = 1
    if spec.engine.batch_cut_batches:
        batches = max(1, int(spec.cuts.cutn_batches))
        if spec.engine.max_cuts_per_forward:
            batches = max(1, min(batches, spec.engine.max_cuts_per_forward // max(cuts_per_batch, 1)))
    resolutions = [int(_entry(c).get("input_resolution") or 224) for c in clips] or [224]
    cut_bytes = max(int(PER_CUT_224 * (r / 224) ** 2) for r in resolutions) * cuts_per_batch * batches * act
    parts = {
        "model weights": weights,
        IMAGE: pixels * per_pixel * act,
        PADDED: max(plan.width, plan.height) ** 2 * PER_PADDED_PIXEL,
        CUTS: cut_bytes,
    }
    if cuda:
        parts[OTHER] = CUDA_OTHER
    per_pixel_s = H200_PER_PIXEL_S if m.use_secondary_model else H200_PER_PIXEL_UNET_GRAD_S
    return ResourceEstimate(device=device, parts=parts, h200_seconds_per_step=H200_BASE_S + per_pixel_s * pixels,
                            errors=list(measured_errors()) if cuda and with_errors else [])


@functools.lru_cache(maxsize=1)
def measured_errors() -> list[str]:
    """One line per measured peak: measured, estimated (DD 5.2's default still at that size with disco-spec's
    default settings), and the relative error."""
    from ..plan.resolve import resolve_plan
    from ..spec.load import validate_document

    out = []
    for (w, h, secondary), gib in MEASURED_PEAKS.items():
        spec = validate_document({"schema_version": 1, "run": {"set_seed": 0}, "diffusion": {"width_height": [w, h]},
                                  "models": {"use_secondary_model": secondary}})
        est = estimate_resources(spec, resolve_plan(spec), "cuda", with_errors=False).peak_bytes / 2**30
        out.append(f"{w}x{h}, secondary {'on' if secondary else 'off'}: measured {gib:.2f} GiB, "
                   f"estimated {est:.2f} GiB ({100 * (est - gib) / gib:+.1f} %)")
    return out


def _entry(ref: Any) -> dict[str, Any]:
    """The registry entry's size and config for a model the spec names ({} for custom checkpoints)."""
    name = getattr(ref, "name", ref)
    entry = REGISTRY.get(name) if isinstance(name, str) else None
    return {**entry.config, "size": entry.size} if entry is not None else {}


def available_bytes(device: str) -> int | None:
    """Free memory on the device: the GPU's free memory, or the machine's available RAM; None if unknown."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(estimate: ResourceEstimate, available: int | None) -> None:
    """SpecError (exit 2) naming the setting to change when the estimate exceeds what is available."""
    if available is None or estimate.peak_bytes <= available:
        return
    part = max(SETTING_TO_CHANGE, key=lambda k: estimate.parts.get(k, 0))
    field_name, setting = SETTING_TO_CHANGE[part]
    why = (f"the render needs about {_gib(estimate.peak_bytes)} on {estimate.device}, but {_gib(available)} is free; "
           f"most of it is {part.split(' (')[0]} ({_gib(estimate.parts[part])}): reduce {setting}"
           " (render --force starts anyway; `disco-spec plan SPEC --resources` shows the estimate)")
    raise SpecError(f"{field_name}: {why}", [(field_name, why)])
