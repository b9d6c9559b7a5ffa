"""Architectures from registry configs, random-initialised, no weights read: the UNet, CLIP, LPIPS and depth
networks the loaders fill and the tiny generator randomises (the secondary model's is in `secondary`).

Apart from the loaders because the tiny generator needs them and the loaders of CLIP and depth resolve
weights, which may generate a tiny model: this module imports no loader."""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import torch

from .. import errors


def diffusion_steps_for(steps: int) -> int:
    """DD's base schedule length for `steps` DDIM steps (disco.py:2402 (DoTheRun cell))."""
    if steps < 1:
        raise errors.ModelError(f"steps must be at least 1 (got {steps})")
    return (1000 // steps) * steps if steps < 1000 else steps


def model_and_diffusion_config(
    entry_config: Mapping[str, Any], *, steps: int, use_checkpoint: bool, use_fp16: bool
) -> dict[str, Any]:
    """guided-diffusion's defaults + DD's overrides (disco.py:1815-1851 (ModelSettings cell)) + the per-render
    values (disco.py:2401-2406 (DoTheRun cell))."""
    from guided_diffusion.script_util import model_and_diffusion_defaults

    cfg = model_and_diffusion_defaults()
    unknown = sorted(set(entry_config) - set(cfg))
    if unknown:
        raise errors.ModelError(f"diffusion config has keys guided-diffusion does not know: {unknown}")
    cfg.update(entry_config)
    cfg.update(
        diffusion_steps=diffusion_steps_for(steps),
        timestep_respacing=f"ddim{steps}",
        use_checkpoint=use_checkpoint,
        use_fp16=use_fp16,
    )
    return cfg


def unet_only(entry_config: Mapping[str, Any]) -> torch.nn.Module:
    """The UNet alone (fp32, no checkpointing): what tiny generation and key-layout checks need."""
    from guided_diffusion.script_util import create_model

    cfg = model_and_diffusion_config(entry_config, steps=250, use_checkpoint=False, use_fp16=False)
    names = ("image_size", "num_channels", "num_res_blocks", "channel_mult", "learn_sigma", "class_cond",
             "use_checkpoint", "attention_resolutions", "num_heads", "num_head_channels", "num_heads_upsample",
             "use_scale_shift_norm", "dropout", "resblock_updown", "use_fp16", "use_new_attention_order")
    return create_model(**{k: cfg[k] for k in names})


def tiny_clip(config: Mapping[str, Any]) -> torch.nn.Module:
    """An open_clip CLIP in OpenAI's layout (QuickGELU, heads = width/64), fp32."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    v, t = config["vision"], config["text"]
    layers = v["layers"]
    vision_cfg = CLIPVisionCfg(
        layers=tuple(layers) if isinstance(layers, (list, tuple)) else int(layers),
        width=v["width"],
        patch_size=v.get("patch_size", 16),
        image_size=v["image_size"],
    )
    text_cfg = CLIPTextCfg(
        context_length=t["context_length"], vocab_size=t["vocab_size"], width=t["width"],
        heads=t["heads"], layers=t["layers"],
    )
    return CLIP(config["embed_dim"], vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=True)


def lpips_net(net: str, version: str = "0.1") -> torch.nn.Module:
    """lpips' own LPIPS module with a random trunk and random heads: nothing is downloaded or read."""
    import lpips

    with warnings.catch_warnings():
        # torchvision warns about lpips' legacy `pretrained=` argument; harmless here.
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net=net, version=version, pretrained=False, pnet_rand=True, verbose=False)


def build_depth_module(config: Mapping[str, Any]) -> torch.nn.Module:
    """The depth architecture a registry config describes (random init; used by tiny.py and loaders)."""
    from .depth_adabins import build_adabins
    from .depth_midas import build_dpt
    from .depth_midas_conv import build_midas_v21, build_midas_v21_small

    arch = config.get("arch")
    if arch == "dpt":
        return build_dpt(config)
    if arch == "midas_v21":
        return build_midas_v21(config)
    if arch == "midas_v21_small":
        return build_midas_v21_small(config)
    if arch == "adabins":
        return build_adabins(config)
    raise errors.ModelError(f"unknown depth architecture {arch!r}")
