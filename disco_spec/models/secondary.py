"""The secondary model DD uses for CLIP's x0 estimate: a small v-objective UNet (DD's
`SecondaryDiffusionImageNet2`), written from its structure (disco.py:1611 (SecondaryDiffusionImageNet2)).

Attribute names and nesting must reproduce the real checkpoint's state-dict keys exactly, so the
layout below is deliberately literal: `net` is one nn.Sequential whose third element nests five
SkipBlocks, each a `main` Sequential of [down, conv, conv, (inner skip), conv, conv, up].
`load_secondary` builds it on the meta device and fills it from a verified file (fp32, frozen).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from .checkpoint_io import assert_materialised, check_keys, read_state_dict, untouched_global_rng
from .registry import config_for
from .types import ResolvedWeights


class SecondaryOutput(NamedTuple):
    v: torch.Tensor
    pred: torch.Tensor  # x0 estimate
    eps: torch.Tensor


class FourierFeatures(nn.Module):
    """Random Fourier features of the timestep; `weight` is learned (loaded), shape [out/2, in]."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        if out_features % 2:
            raise ValueError("out_features must be even")
        # Uninitialised on purpose: real values come from a checkpoint (or the tiny generator),
        # so construction never touches the global RNG.
        self.weight = nn.Parameter(torch.empty(out_features // 2, in_features))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * t @ self.weight.T
        return torch.cat([f.cos(), f.sin()], dim=-1)


class ConvBlock(nn.Sequential):
    """3x3 conv + ReLU; a Sequential so its conv's keys are `<idx>.0.weight`/`.0.bias`."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True))


def _upsample2x_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Double ``dim`` by linear interpolation, half-pixel centres (align_corners=False).

    Output 2k samples input k − ¼ and 2k+1 samples k + ¼; at the borders the source index is clamped
    (the first and last outputs copy the edge), as torch's upsampling does.
    """
    n = x.shape[dim]
    edge_lo, edge_hi = x.narrow(dim, 0, 1), x.narrow(dim, n - 1, 1)
    padded = torch.cat([edge_lo, x, edge_hi], dim=dim)
    prev, here, nxt = padded.narrow(dim, 0, n), x, padded.narrow(dim, 2, n)
    even = prev * 0.25 + here * 0.75
    odd = here * 0.75 + nxt * 0.25
    out = torch.stack([even, odd], dim=dim + 1)
    shape = list(x.shape)
    shape[dim] = 2 * n
    return out.reshape(shape)


def upsample2x_bilinear(x: torch.Tensor) -> torch.Tensor:
    """``nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)`` of [N,C,H,W], built from
    slices, products and sums so that its CUDA backward is deterministic (torch's
    upsample_bilinear2d backward throws in deterministic mode; see engine/cuda_determinism.py)."""
    if x.ndim != 4:
        raise ValueError(f"expected [N,C,H,W], got shape {tuple(x.shape)}")
    return _upsample2x_axis(_upsample2x_axis(x, 3), 2)


class Upsample2xBilinear(nn.Module):
    """Module form of ``upsample2x_bilinear``; holds no weights, so state-dict keys do not change."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2x_bilinear(x)


class SkipBlock(nn.Module):
    """concat(main(x), x) on channels; holds `main` so keys are `<idx>.main.<j>...`."""

    def __init__(self, *main: nn.Module):
        super().__init__()
        self.main = nn.Sequential(*main)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.main(x), x], dim=1)


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The v-objective's cosine schedule: t in [0,1] -> (alpha, sigma)."""
    return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)


class SecondaryDiffusionImageNet2(nn.Module):
    """v-prediction UNet; c=64 for the real `secondary_model_imagenet_2.pth`, smaller for tests."""

    def __init__(self, c: int = 64):
        super().__init__()
        self.c = c
        cs = [c, c * 2, c * 2, c * 4, c * 4, c * 8]
        self.timestep_embed = FourierFeatures(1, 16)
        # One pooling and one upsampling instance shared by every level (they hold no weights).
        # DD's nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), in a form whose
        # CUDA backward is deterministic.
        down = nn.AvgPool2d(2)
        up = Upsample2xBilinear()

        def level(i: int, inner: nn.Module) -> SkipBlock:
            # Levels 1..4: down, two convs in, the inner level, two convs out, up.
            return SkipBlock(
                down,
                ConvBlock(cs[i - 1], cs[i]),
                ConvBlock(cs[i], cs[i]),
                inner,
                ConvBlock(cs[i] * 2, cs[i]),
                ConvBlock(cs[i], cs[i - 1]),
                up,
            )

        innermost = SkipBlock(
            down,
            ConvBlock(cs[4], cs[5]),
            ConvBlock(cs[5], cs[5]),
            ConvBlock(cs[5], cs[5]),
            ConvBlock(cs[5], cs[4]),
            up,
        )
        body = innermost
        for i in (4, 3, 2, 1):
            body = level(i, body)
        self.net = nn.Sequential(
            ConvBlock(3 + 16, cs[0]),
            ConvBlock(cs[0], cs[0]),
            body,
            ConvBlock(cs[0] * 2, cs[0]),
            nn.Conv2d(cs[0], 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> SecondaryOutput:
        t = t.to(x.dtype).reshape(-1)
        if t.shape[0] == 1 and x.shape[0] != 1:
            t = t.expand(x.shape[0])
        emb = self.timestep_embed(t[:, None])
        planes = emb[:, :, None, None].expand(x.shape[0], emb.shape[1], x.shape[2], x.shape[3])
        v = self.net(torch.cat([x, planes], dim=1))
        alpha, sigma = alpha_sigma(t)
        alpha, sigma = alpha[:, None, None, None], sigma[:, None, None, None]
        pred = x * alpha - v * sigma
        eps = x * sigma + v * alpha
        return SecondaryOutput(v=v, pred=pred, eps=eps)


def build_secondary(config: Mapping[str, Any]) -> SecondaryDiffusionImageNet2:
    """The architecture a registry config describes (random init)."""
    return SecondaryDiffusionImageNet2(c=int(config.get("c", 64)))


def load_secondary(weights: ResolvedWeights, device: torch.device | str, *,
                   config: Mapping[str, Any] | None = None,
                   state_dict: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """The secondary model in eval mode with frozen weights (DD: eval().requires_grad_(False)).
    `state_dict`: tensors to load instead of reading `weights.path` (seeded random weights, models.tiny)."""
    cfg = config_for(weights, config, "secondary_model_imagenet_2")
    what = f"secondary model {weights.name}"
    with untouched_global_rng(), torch.device("meta"):
        model = build_secondary(cfg)
    sd = read_state_dict(weights.path, what) if state_dict is None else state_dict
    check_keys(model, sd, what, weights.path)
    model.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=True, assign=True)
    assert_materialised(model, what)
    return model.eval().requires_grad_(False).to(torch.device(device))
