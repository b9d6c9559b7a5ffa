"""Resolve and load every model a spec needs, once per render, into plain objects the engine uses.

`load_models` -> `LoadedModels`: the diffusion UNet (models/diffusion.py), the secondary model
(models/secondary.py), the CLIP models (models/clip.py) and LPIPS (models/lpips.py); depth models load
in models/depth.py, on first use by the 3D animation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .. import errors
from . import precision, registry
from .clip import load_clip
from .diffusion import load_diffusion
from .lpips import load_lpips
from .resolve import resolve_weights
from .secondary import load_secondary
from .types import ClipBundle, ResolvedWeights
from ..spec.access import InputPolicy
from ..spec.models import DD_CLIP_NAMES, JobSpec


@dataclass
class LoadedModels:
    unet: torch.nn.Module
    secondary: torch.nn.Module | None
    clips: list[ClipBundle]
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    weights: list[ResolvedWeights] = field(default_factory=list)  # every file used, for the manifest
    extra: dict[str, Any] = field(default_factory=dict)


def _diffusion_config(ref: Any) -> dict[str, Any]:
    name = ref if isinstance(ref, str) else ref.config
    entry = registry.get_entry(name)
    if entry.role != "diffusion":
        raise errors.ModelError(f"models.diffusion_model: {name!r} is a {entry.role} model, not a diffusion model")
    return dict(entry.config)


def clip_refs(spec: JobSpec) -> list[Any]:
    """DD's checkboxes in DD's load order (it matters for float summation), then the extra models."""
    refs: list[Any] = [n for n in DD_CLIP_NAMES if getattr(spec.models, n)]
    refs += list(spec.models.extra_clip_models)
    return refs


def needs_lpips(spec: JobSpec, plan_items: list[Any]) -> bool:
    """LPIPS is loaded only when some item has an init (or Perlin) and a non-zero scale."""
    return any(
        it.init_scale and (it.init["kind"] != "none" or it.init.get("perlin")) for it in plan_items if it.diffuse
    )


def _random(ref: Any, role: str) -> tuple[ResolvedWeights, dict[str, torch.Tensor]]:
    """No file: the registered model's architecture with seeded random weights (models.tiny.random_state_dict)."""
    from .tiny import random_state_dict

    name = ref if isinstance(ref, str) else getattr(ref, "name", None)
    entry = registry.REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None or entry.role != role:
        raise errors.ModelError(f"random weights: {ref!r} is not a registered {role} model")
    return ResolvedWeights(role=role, name=name, path="(seeded random weights)", sha256="", size=0), \
        random_state_dict(name)


def load_models(
    spec: JobSpec, plan_items: list[Any], device: torch.device, *, spec_dir: str | None, fetch: bool = True,
    access: InputPolicy | None = None, random_weights: bool = False, half: bool | None = None,
) -> LoadedModels:
    """Resolve, verify and load the spec's models; custom files only inside the folders `access` allows.

    `random_weights` (bench/): no file is read; every model is its registered architecture with seeded random
    weights, built by the same loaders, in the same precision (`weights` stays empty). `half`: None follows DD's
    rule (models.precision: fp16 UNet torso and OpenAI CLIP on CUDA); True/False forces it (a CPU test of the GPU's
    precision)."""
    verify = spec.models.check_model_SHA
    # DD: the UNet torso and OpenAI CLIP in fp16 on CUDA; the secondary model, LPIPS and every loss in fp32.
    use_fp16 = precision.dd_half_precision(device) if half is None else bool(half)
    weights: list[ResolvedWeights] = []

    def resolve(ref: Any, role: str) -> tuple[ResolvedWeights, dict[str, torch.Tensor] | None]:
        if random_weights:
            return _random(ref, role)
        w = resolve_weights(ref, role, spec_dir=spec_dir, verify_each_time=verify, fetch=fetch, access=access)
        weights.append(w)
        return w, None

    ref = spec.models.diffusion_model
    w, sd = resolve(ref, "diffusion")
    unet, _ = load_diffusion(
        w, _diffusion_config(ref), steps=spec.diffusion.steps, use_checkpoint=spec.models.use_checkpoint,
        use_fp16=use_fp16, device=device, state_dict=sd,
    )

    secondary = None
    if spec.models.use_secondary_model:
        w, sd = resolve(spec.models.secondary_model, "secondary")
        secondary = load_secondary(w, device, state_dict=sd)

    clips: list[ClipBundle] = []
    for cref in clip_refs(spec):
        if random_weights:
            w, sd = _random(cref, "clip")
            clips.append(load_clip(w, device, half=use_fp16, state_dict=sd))
            continue
        bundle = load_clip(cref, device, spec_dir=spec_dir, verify_each_time=verify, fetch=fetch, half=use_fp16,
                                   access=access)
        clips.append(bundle)
        if bundle.weights is not None:
            weights.append(bundle.weights)

    lpips_fn = None
    if needs_lpips(spec, plan_items):
        w, sd = resolve(spec.models.lpips_model, "lpips")
        lpips_fn = load_lpips(w, device, state_dict=sd)
    return LoadedModels(unet=unet, secondary=secondary, clips=clips, lpips=lpips_fn, weights=weights)
