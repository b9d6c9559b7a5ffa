"""The diffusion UNet + respaced guided-diffusion process, set up exactly as DD 5.2 does
(disco.py:1815-1851 (ModelSettings cell), disco.py:2401-2406 (DoTheRun cell), disco.py:2555-2562 (DoTheRun cell))."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .. import errors
from . import architectures
from .checkpoint_io import assert_materialised, check_keys, read_state_dict, untouched_global_rng
from .registry import get_entry
from .types import ResolvedWeights

# DD re-enables gradients on these parameters after requires_grad_(False) so that gradient
# checkpointing (which needs a parameter requiring grad inside each block) propagates to the input.
_GRAD_NAME_PARTS = ("qkv", "norm", "proj")


def diffusion_entry_config(ref: Any) -> Mapping[str, Any]:
    """The architecture config for a diffusion ref: its own entry's, or (custom file) the entry its `config` names."""
    name = ref if isinstance(ref, str) else getattr(ref, "config", None)
    if not name:
        raise errors.ModelError("a custom diffusion checkpoint must name the registry entry whose config it uses")
    entry = get_entry(name)
    if entry.role != "diffusion":
        raise errors.ModelError(f"{name!r} is a {entry.role} model, not a diffusion model config")
    return entry.config


def load_diffusion(
    weights: ResolvedWeights,
    entry_config: Mapping[str, Any],
    *,
    steps: int,
    use_checkpoint: bool,
    use_fp16: bool,
    device: torch.device | str,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.nn.Module, Any]:
    """(unet, diffusion) for `steps` DDIM/PLMS steps.

    `entry_config` is the registry config of the architecture (for a custom checkpoint: of the
    entry its `config` field names). `use_fp16` converts the UNet torso like DD (the render asks for it
    on CUDA only, models.precision.dd_half_precision); it works on any device, so CPU tests can run it.
    `state_dict`: tensors to load instead of reading `weights.path` (seeded random weights, models.tiny).
    """
    from guided_diffusion.script_util import create_model_and_diffusion

    device = torch.device(device)
    cfg = architectures.model_and_diffusion_config(
        entry_config, steps=steps, use_checkpoint=use_checkpoint, use_fp16=use_fp16
    )
    what = f"diffusion model {weights.name}"
    try:
        # Built on the meta device: no memory, no random init (the 512 model has ~550M parameters);
        # every tensor is then assigned from the checkpoint.
        # The diffusion object holds numpy schedules only, so the meta context does not affect it.
        with untouched_global_rng(), torch.device("meta"):
            unet, diffusion = create_model_and_diffusion(**cfg)
    except ValueError as e:  # e.g. guided-diffusion cannot respace to exactly `steps` steps
        raise errors.ModelError(f"{what}: cannot set up {steps} steps: {e}") from None
    sd = read_state_dict(weights.path, what) if state_dict is None else state_dict
    check_keys(unet, sd, what, weights.path)
    unet.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=True, assign=True)
    del sd
    assert_materialised(unet, what)
    unet.requires_grad_(False).eval().to(device)
    for name, p in unet.named_parameters():
        if any(part in name for part in _GRAD_NAME_PARTS):
            p.requires_grad_(True)
    if use_fp16:
        unet.convert_to_fp16()
    return unet, diffusion

