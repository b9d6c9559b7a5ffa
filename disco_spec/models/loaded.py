"""Resolve and load every model a spec needs, once per render, into plain objects the engine uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import loaders, precision, registry
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
        raise loaders.errors.ModelError(f"models.diffusion_model: {name!r} is a {entry.role} model, not a diffusion model")
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


def load_models(
    spec: JobSpec, plan_items: list[Any], device: torch.device, *, spec_dir: str | None, fetch: bool = True,
    access: InputPolicy | None = None,
) -> LoadedModels:
    """Resolve, verify and load the spec's models; custom files only inside the folders `access` allows."""
    verify = spec.models.check_model_SHA
    # DD: the UNet torso and OpenAI CLIP in fp16 on CUDA; the secondary model, LPIPS and every loss in fp32.
    use_fp16 = precision.dd_half_precision(device)
    weights: list[ResolvedWeights] = []

    ref = spec.models.diffusion_model
    w = loaders.resolve_weights(ref, "diffusion", spec_dir=spec_dir, verify_each_time=verify, fetch=fetch, access=access)
    weights.append(w)
    unet, _ = loaders.load_diffusion(
        w, _diffusion_config(ref), steps=spec.diffusion.steps, use_checkpoint=spec.models.use_checkpoint,
        use_fp16=use_fp16, device=device,
    )

    secondary = None
    if spec.models.use_secondary_model:
        w = loaders.resolve_weights(spec.models.secondary_model, "secondary", spec_dir=spec_dir, verify_each_time=verify, fetch=fetch, access=access)
        weights.append(w)
        secondary = loaders.load_secondary(w, device)

    clips: list[ClipBundle] = []
    for cref in clip_refs(spec):
        bundle = loaders.load_clip(cref, device, spec_dir=spec_dir, verify_each_time=verify, fetch=fetch, half=use_fp16,
                                   access=access)
        clips.append(bundle)
        if bundle.weights is not None:
            weights.append(bundle.weights)

    lpips_fn = None
    if needs_lpips(spec, plan_items):
        w = loaders.resolve_weights(spec.models.lpips_model, "lpips", spec_dir=spec_dir, verify_each_time=verify, fetch=fetch, access=access)
        weights.append(w)
        lpips_fn = loaders.load_lpips(w, device)
    return LoadedModels(unet=unet, secondary=secondary, clips=clips, lpips=lpips_fn, weights=weights)
