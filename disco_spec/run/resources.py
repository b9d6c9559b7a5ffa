"""Memory and time a render will need, estimated before any model loads (`plan --resources`, and `render`
refusing what the device cannot hold unless `--force`).

A small linear model of one guided step, fitted to what was measured (bench/results/dd-reference-h200.json:
DD 5.2's own step on an H200, fp16 UNet and CLIP, 16 cuts per CLIP forward):

    peak = weights + image_pixels · per_pixel + padded_square_pixels · per_padded_pixel + cuts · per_cut

* `per_pixel`: the UNet/secondary activations kept for the gradient, per output pixel; from the 1280×768 and
  512×512 peaks with the secondary model on (3.4 KB/px), and the 1280×768 peak with it off (9.7 KB/px: the
  UNet's graph is kept for the guidance gradient);
* `per_padded_pixel`: the overview cuts zero-pad the image to a square of its longer side (a tall or wide
  image costs its square);
* `per_cut`: one cutout through a CLIP model with its graph, scaled by the model's input area (ViT-B/16 at 224²);
  with `engine.batch_cut_batches` every cut batch of a model is in one forward, so the cuts add up;
* `weights`: the registered files' sizes, halved for the fp16 UNet and CLIP on CUDA.
On a CPU everything runs in fp32, so activations count twice. It is an estimate for refusing hopeless renders
(8192×8192 asks for hundreds of GB), not an accounting: the refusal names the setting that dominates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from ..models.registry import REGISTRY
from ..spec.models import DD_CLIP_NAMES

# Fitted to bench/results/dd-reference-h200.json (tests/test_resources.py refits them from that file).
PER_PIXEL_SECONDARY = 3_420  # bytes per output pixel, secondary model on, fp16
PER_PIXEL_UNET_GRAD = 9_700  # bytes per output pixel, secondary model off (UNet graph kept), fp16
PER_PADDED_PIXEL = 72  # bytes per pixel of the zero-padded square (fp32 image, its gradient, the resize input)
PER_CUT_224 = 24 << 20  # bytes per 224² cut through one CLIP model with its graph, fp16
CUDA_WORKSPACE = 1 << 30  # the CUDA context, cuBLAS workspace and allocator slack
# Each part of the estimate, with the spec field a refusal names and what to change (None: not a user setting).
IMAGE = "image activations (diffusion.width_height)"
PADDED = "padded overview (the longer side squared)"
CUTS = "cutouts (cuts.cutn_batches, cut_overview/innercut)"
SETTING_TO_CHANGE = {
    IMAGE: ("diffusion.width_height", "diffusion.width_height"),
    PADDED: ("diffusion.width_height", "the longer side of diffusion.width_height"),
    CUTS: ("cuts.cutn_batches", "cuts.cutn_batches, cut_overview/innercut or set engine.max_cuts_per_forward"),
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

    @property
    def peak_bytes(self) -> int:
        return sum(self.parts.values())

    def text(self) -> str:
        rows = [f"expected peak memory on {self.device}: {_gib(self.peak_bytes)}"]
        rows += [f"  {name:<28} {_gib(b)}" for name, b in sorted(self.parts.items(), key=lambda kv: -kv[1])]
        rows.append(f"expected time per step on an H200 (the device measured): {self.h200_seconds_per_step:.2f} s")
        return "\n".join(rows)


def _gib(b: int) -> str:
    return f"{b / 2**30:.2f} GiB"


def _file_size(ref: Any) -> int:
    """fp32 bytes of a model the spec names (0 for a file the registry cannot size: custom checkpoints)."""
    name = getattr(ref, "name", ref)
    if name in DD_MODEL_PARAMETERS:
        return 4 * DD_MODEL_PARAMETERS[name]
    return int(_entry(ref).get("size") or 0)


def estimate_resources(spec: Any, plan: Any, device: str) -> ResourceEstimate:
    """The estimate for rendering `plan` (of `spec`) on `device` ("cuda" or "cpu")."""
    cuda = device == "cuda"
    act = 1 if cuda else 2  # fp16 on CUDA (DD's rule), fp32 on a CPU
    m = spec.models
    clips = [n for n in DD_CLIP_NAMES if getattr(m, n)] + list(m.extra_clip_models)  # as models.loaded.clip_refs
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
        parts["CUDA context and workspace"] = CUDA_WORKSPACE
    per_pixel_s = H200_PER_PIXEL_S if m.use_secondary_model else H200_PER_PIXEL_UNET_GRAD_S
    return ResourceEstimate(device=device, parts=parts, h200_seconds_per_step=H200_BASE_S + per_pixel_s * pixels)


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
