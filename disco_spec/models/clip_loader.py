"""CLIP models as ClipBundles: DD's eight OpenAI models, the tiny ones, and any open_clip model.

OpenAI's files are TorchScript archives; we take only their state dict and rebuild the model with
open_clip's builder for OpenAI state dicts, the same code path (and the same fp16-on-CUDA,
fp32-on-CPU precision) as OpenAI's `clip.load(name, jit=False)` that DD uses.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import torch

from .. import errors
from ..spec.access import InputPolicy
from .checkpoint_io import read_state_dict
from .clip_common import _bundle, _openai_model
from .registry import REGISTRY
from .resolve import resolve_weights
from .types import ClipBundle, ResolvedWeights


def _load_registered(weights: ResolvedWeights, device: torch.device, half: bool | None = None,
                     state_dict: dict[str, torch.Tensor] | None = None) -> ClipBundle:
    entry = REGISTRY.get(weights.name)
    cfg = entry.config if entry is not None and entry.role == "clip" else {}
    what = f"CLIP model {weights.name}"
    # TorchScript archives: tensors only, no code run
    sd = read_state_dict(weights.path, what) if state_dict is None else state_dict
    model = _openai_model(sd, device, what, half)
    bundle = _bundle(weights.name, model, device, weights)
    want = cfg.get("input_resolution")
    if want is not None and bundle.input_resolution != want:
        raise errors.ModelError(f"{what}: input resolution {bundle.input_resolution}, expected {want}")
    return bundle


def load_clip(
    weights_or_ref: Any,
    device: torch.device | str,
    *,
    spec_dir: str | os.PathLike | None = None,
    verify_each_time: bool = False,
    fetch: bool = True,
    half: bool | None = None,
    access: InputPolicy | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> ClipBundle:
    """A ClipBundle from ResolvedWeights, a registry name, or a ref with `name` or `arch`+`pretrained`
    (a local `pretrained` file is read only inside the folders `access` allows).

    `half` (OpenAI-format models): None follows DD (fp16 on CUDA); True/False forces fp16/fp32.
    `state_dict` (with ResolvedWeights of a registered model): an OpenAI-layout state dict to build from instead
    of reading the file (seeded random weights, models.tiny)."""
    device = torch.device(device)
    ref = weights_or_ref
    if isinstance(ref, ResolvedWeights):
        return _load_registered(ref, device, half, state_dict)
    if state_dict is not None:
        raise errors.ModelError("a state dict is loaded only with the ResolvedWeights of a registered CLIP model")
    if isinstance(ref, str):
        ref = SimpleNamespace(name=ref, arch=None)
    if getattr(ref, "name", None):
        w = resolve_weights(ref.name, "clip", verify_each_time=verify_each_time, fetch=fetch)
        return _load_registered(w, device, half)
    if getattr(ref, "arch", None):
        from .clip_open import load_open_clip

        return load_open_clip(ref.arch, ref.pretrained, getattr(ref, "sha256", None), device,
                              spec_dir=spec_dir, verify_each_time=verify_each_time, access=access)
    raise errors.ModelError(f"cannot load a CLIP model from {weights_or_ref!r}")

