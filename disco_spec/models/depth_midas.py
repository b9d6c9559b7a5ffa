"""MiDaS DPT (`dpt_large`, DD's default, and the hybrid `dpt_hybrid`/`dpt_hybrid_nyu`) on timm backbones.

The module tree reproduces the *names and shapes* of the parameters in MiDaS' DPT checkpoints
(isl-org/MiDaS v3, `DPTDepthModel(backbone="vitl16_384", non_negative=True)`), so that
`dpt_large-midas-2f21e586.pt` loads strictly; the code is our own:

    pretrained.model.*              a timm VisionTransformer (ViT-L/16 at 384 for dpt_large; for the
                                    hybrid, ViT-B/16 whose patch embedding is a ResNet-50 v2 trunk
                                    with 3 stages, `patch_embed.backbone.*`), built without pretrained
                                    weights; the checkpoint supplies every tensor
    pretrained.act_postprocess1..4  "reassemble": readout projection (index 0), then a 1x1 conv
                                    (index 3) and a resampling conv (index 4: 4x / 2x transposed
                                    conv, none, 3x3 stride-2 conv). Indices 1 and 2 are parameter-
                                    free in MiDaS (transpose, unflatten) and kept as placeholders.
                                    The hybrid takes its first two maps from ResNet stages 0 and 1
                                    instead, so act_postprocess1/2 hold no parameters at all.
    scratch.layer1_rn..layer4_rn    3x3 convs (no bias) to the common feature width
    scratch.refinenet1..4           fusion blocks (two residual conv units + 1x1 out_conv)
    scratch.output_conv             head: conv, 2x upsample, conv, ReLU, 1x1 conv, ReLU (non-negative)

Pre-processing is MiDaS' as DD uses it (disco_xform_utils.py:55-71 (transform_image_3d)): RGB in [0,1] (float64, like
`cv2.imread(...)/255.0`), aspect-keeping resize to multiples of 32 with OpenCV's bicubic ("minimal"
for the DPTs, "upper_bound" for MiDaS v2.1), normalise (mean = std = 0.5 for the DPTs, ImageNet's for
v2.1), then the prediction is bicubically upsampled to the image size. `MidasDepth` serves every
MiDaS architecture (depth_midas_conv.py holds the v2.1 ones).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import errors

# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


class _ProjectReadout(nn.Module):
    """Concatenate every patch token with the class token and project back (DPT's "project" readout)."""

    def __init__(self, width: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * width, width), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, 1:]
        cls = tokens[:, :1].expand_as(patches)
        return self.project(torch.cat((patches, cls), dim=-1))


class _Upsample2x(nn.Module):
    """Bilinear 2x upsampling with aligned corners (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class _ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(x))
        y = self.conv2(F.relu(y))
        return y + x


class _FusionBlock(nn.Module):
    """Add the (refined) skip features, refine, upsample 2x (bilinear, aligned corners), 1x1 conv."""

    def __init__(self, features: int):
        super().__init__()
        self.resConfUnit1 = _ResidualConvUnit(features)
        self.resConfUnit2 = _ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        # MiDaS v3 (the tag DD runs) always doubles the size; our inputs are multiples of 32, so the
        # doubled map always matches the next skip connection.
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class _Backbone(nn.Module):
    """`pretrained`: the ViT (`model`) and the four reassemble stacks (`act_postprocess1..4`)."""

    def __init__(self, vit: nn.Module, width: int, reassemble: Sequence[int], hybrid: bool = False):
        super().__init__()
        self.model = vit
        r1, r2, r3, r4 = (int(c) for c in reassemble)
        # Indices 1 and 2 hold MiDaS' parameter-free transpose/unflatten; we reshape in forward().
        if hybrid:
            # The ResNet stage maps are used as they are (MiDaS: three Identity modules).
            self.act_postprocess1 = nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity())
            self.act_postprocess2 = nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity())
        else:
            self.act_postprocess1 = nn.Sequential(
                _ProjectReadout(width), nn.Identity(), nn.Identity(),
                nn.Conv2d(width, r1, kernel_size=1), nn.ConvTranspose2d(r1, r1, kernel_size=4, stride=4))
            self.act_postprocess2 = nn.Sequential(
                _ProjectReadout(width), nn.Identity(), nn.Identity(),
                nn.Conv2d(width, r2, kernel_size=1), nn.ConvTranspose2d(r2, r2, kernel_size=2, stride=2))
        self.act_postprocess3 = nn.Sequential(
            _ProjectReadout(width), nn.Identity(), nn.Identity(),
            nn.Conv2d(width, r3, kernel_size=1))
        self.act_postprocess4 = nn.Sequential(
            _ProjectReadout(width), nn.Identity(), nn.Identity(),
            nn.Conv2d(width, r4, kernel_size=1), nn.Conv2d(r4, r4, kernel_size=3, stride=2, padding=1))


class _Scratch(nn.Module):
    def __init__(self, reassemble: Sequence[int], features: int, head_features_2: int, non_negative: bool):
        super().__init__()
        r1, r2, r3, r4 = (int(c) for c in reassemble)
        self.layer1_rn = nn.Conv2d(r1, features, kernel_size=3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(r2, features, kernel_size=3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(r3, features, kernel_size=3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(r4, features, kernel_size=3, padding=1, bias=False)
        self.refinenet1 = _FusionBlock(features)
        self.refinenet2 = _FusionBlock(features)
        self.refinenet3 = _FusionBlock(features)
        self.refinenet4 = _FusionBlock(features)
        self.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, padding=1),
            _Upsample2x(),
            nn.Conv2d(features // 2, head_features_2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_features_2, 1, kernel_size=1),
            nn.ReLU() if non_negative else nn.Identity(),
            nn.Identity(),
        )


def is_hybrid(cfg: Mapping[str, Any]) -> bool:
    return "resnet_layers" in cfg


def _resnet_trunk(cfg: Mapping[str, Any]) -> nn.Module:
    """timm's ResNet v2 trunk of the R50+ViT hybrid: no pre-activation, weight-standardised convs
    (eps 1e-8) with TensorFlow "same" padding, GroupNorm; three stages (stride 16), no head."""
    from functools import partial

    from timm.layers import StdConv2dSame
    from timm.models.resnetv2 import ResNetV2

    return ResNetV2(
        layers=tuple(int(n) for n in cfg["resnet_layers"]),
        channels=tuple(int(c) for c in cfg["resnet_channels"]),
        stem_chs=int(cfg["resnet_stem"]),
        num_classes=0, global_pool="", preact=False, stem_type="same",
        conv_layer=partial(StdConv2dSame, eps=1e-8),
    )


def _vit(cfg: Mapping[str, Any]) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    extra: dict[str, Any] = {}
    patch = int(cfg["vit_patch_size"])
    if is_hybrid(cfg):
        from functools import partial

        from timm.models.vision_transformer_hybrid import HybridEmbed

        # The trunk already has stride 16; the embedding is a 1x1 projection of its last map. (timm
        # runs the trunk once on zeros to find the map's size: free on the meta device.)
        extra["embed_layer"] = partial(HybridEmbed, backbone=_resnet_trunk(cfg))
        patch = 1
    return VisionTransformer(
        img_size=int(cfg["vit_img_size"]),
        patch_size=patch,
        embed_dim=int(cfg["vit_embed_dim"]),
        depth=int(cfg["vit_depth"]),
        num_heads=int(cfg["vit_num_heads"]),
        num_classes=int(cfg.get("vit_num_classes", 1000)),
        **extra,
    )


class DPTDepth(nn.Module):
    """DPT with a plain ViT backbone: image [N,3,h,w] (h, w multiples of 32) -> inverse depth [N,h,w]."""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        self.patch = int(cfg["vit_patch_size"])
        self.hybrid = is_hybrid(cfg)
        hooks = tuple(int(h) for h in cfg["hooks"])
        if len(hooks) != 4 or list(hooks) != sorted(set(hooks)):
            raise errors.ModelError(f"DPT needs four increasing hook layers, got {hooks}")
        if hooks[-1] >= int(cfg["vit_depth"]):
            raise errors.ModelError(f"DPT hook {hooks[-1]} is beyond the ViT's {cfg['vit_depth']} blocks")
        # The hybrid's first two hooks are ResNet stages 0 and 1 (MiDaS' use_vit_only=False).
        self.hooks = hooks[2:] if self.hybrid else hooks
        self.pretrained = _Backbone(_vit(cfg), int(cfg["vit_embed_dim"]), cfg["reassemble"], self.hybrid)
        self.scratch = _Scratch(cfg["reassemble"], int(cfg["features"]), int(cfg.get("head_features_2", 32)),
                                bool(cfg.get("non_negative", True)))

    def _pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        pos = self.pretrained.model.pos_embed
        cls_pos, grid = pos[:, :1], pos[0, 1:]
        g = int(math.isqrt(grid.shape[0]))
        grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
        return torch.cat((cls_pos, grid), dim=1)

    def _tokens_at_hooks(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(ResNet stage 0 and 1 maps for the hybrid, else []; the tokens after each hooked block)."""
        vit = self.pretrained.model
        n, _, h, w = x.shape
        stage_maps: list[torch.Tensor] = []
        if self.hybrid:
            trunk = vit.patch_embed.backbone
            x = trunk.stem(x)
            for i, stage in enumerate(trunk.stages):
                x = stage(x)
                if i < 2:
                    stage_maps.append(x)
            x = trunk.norm(x)
        t = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat((vit.cls_token.expand(n, -1, -1), t), dim=1)
        t = vit.pos_drop(t + self._pos_embed(h // self.patch, w // self.patch))
        out = []
        for i, block in enumerate(vit.blocks):
            t = block(t)
            if i in self.hooks:
                out.append(t)
                if len(out) == len(self.hooks):
                    break  # later blocks (and the final norm) do not reach the depth head
        return stage_maps, out

    def _reassemble(self, stack: nn.Sequential, tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        x = stack[0](tokens)  # [N, gh*gw, C]
        x = x.transpose(1, 2).unflatten(2, (gh, gw))
        for layer in list(stack)[3:]:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise errors.ModelError(f"DPT input sides must be multiples of 32 (got {w}x{h})")
        gh, gw = h // self.patch, w // self.patch
        stage_maps, tokens = self._tokens_at_hooks(x)
        bb, s = self.pretrained, self.scratch
        if self.hybrid:
            (m1, m2), (t3, t4) = stage_maps, tokens
        else:
            t1, t2, t3, t4 = tokens
            m1 = self._reassemble(bb.act_postprocess1, t1, gh, gw)
            m2 = self._reassemble(bb.act_postprocess2, t2, gh, gw)
        l1 = s.layer1_rn(m1)
        l2 = s.layer2_rn(m2)
        l3 = s.layer3_rn(self._reassemble(bb.act_postprocess3, t3, gh, gw))
        l4 = s.layer4_rn(self._reassemble(bb.act_postprocess4, t4, gh, gw))
        p = s.refinenet4(l4)
        p = s.refinenet3(p, l3)
        p = s.refinenet2(p, l2)
        p = s.refinenet1(p, l1)
        return s.output_conv(p).squeeze(1)


def build_dpt(cfg: Mapping[str, Any]) -> DPTDepth:
    return DPTDepth(cfg)


# ---------------------------------------------------------------------------------------------
# Pre-processing and inference (DD's transform_image_3d, MiDaS part)
# ---------------------------------------------------------------------------------------------


def _multiple_of(x: float, m: int) -> int:
    # MiDaS' Resize.constrain_to_multiple_of with min_val=0, no max: np.round (half to even).
    return int(np.round(x / m) * m)


def _multiple_at_most(x: float, m: int, max_val: int) -> int:
    # constrain_to_multiple_of with max_val: round, and floor instead when rounding exceeds the bound.
    y = _multiple_of(x, m)
    return int(np.floor(x / m) * m) if y > max_val else y


def minimal_resize_size(width: int, height: int, net_w: int = 384, net_h: int = 384,
                        multiple_of: int = 32, mode: str = "minimal") -> tuple[int, int]:
    """MiDaS' aspect-keeping Resize as DD configures it: (new_width, new_height).

    "minimal" (DPTs): of the two scale factors net_w/width and net_h/height, the one closer to 1 is
    used for both sides (ties keep the height's); each side is rounded to a multiple of 32 (half to
    even). "upper_bound" (MiDaS v2.1): the smaller factor is used, so the image fits inside
    net_w x net_h; a side that rounds above its bound is floored to a multiple instead.
    """
    scale_h = net_h / height
    scale_w = net_w / width
    if mode == "minimal":
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
        new_h = _multiple_of(scale_h * height, multiple_of)
        new_w = _multiple_of(scale_w * width, multiple_of)
    elif mode == "upper_bound":
        if scale_w < scale_h:
            scale_h = scale_w
        else:
            scale_w = scale_h
        new_h = _multiple_at_most(scale_h * height, multiple_of, net_h)
        new_w = _multiple_at_most(scale_w * width, multiple_of, net_w)
    else:
        raise errors.ModelError(f"unknown MiDaS resize mode {mode!r}")
    if new_h < multiple_of or new_w < multiple_of:
        # MiDaS would hand OpenCV a zero-sized target and crash; say why instead.
        raise errors.ModelError(
            f"image {width}x{height} is too elongated for MiDaS: its {'height' if new_h < multiple_of else 'width'} "
            f"rounds to 0 at the network scale ({net_w}x{net_h})")
    return new_w, new_h


def midas_input(image_rgb_uint8: np.ndarray, cfg: Mapping[str, Any]) -> torch.Tensor:
    """The MiDaS network input [1,3,h,w] float32 for an RGB uint8 image (MiDaS' transforms, as DD)."""
    import cv2

    height, width = image_rgb_uint8.shape[:2]
    net = int(cfg.get("net_size", 384))
    new_w, new_h = minimal_resize_size(width, height, net, net, int(cfg.get("multiple_of", 32)),
                                       str(cfg.get("resize_mode", "minimal")))
    img = image_rgb_uint8.astype(np.float64) / 255.0  # midas_utils.read_image: RGB / 255.0 (float64)
    img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    mean = np.asarray(cfg.get("mean", (0.5, 0.5, 0.5)), dtype=np.float64)
    std = np.asarray(cfg.get("std", (0.5, 0.5, 0.5)), dtype=np.float64)
    img = (img - mean) / std
    chw = np.ascontiguousarray(np.transpose(img, (2, 0, 1))).astype(np.float32)
    return torch.from_numpy(chw).unsqueeze(0)


class MidasDepth:
    """A loaded MiDaS model with its pre-processing; `predict` gives MiDaS' raw relative inverse depth."""

    kind = "midas"

    def __init__(self, model: nn.Module, cfg: Mapping[str, Any], name: str):
        self.model = model
        self.cfg = dict(cfg)
        self.name = name

    @torch.no_grad()
    def predict(self, image_rgb_uint8: np.ndarray, device: torch.device | str) -> torch.Tensor:
        """MiDaS output p at the image size [H,W] float32 (DD runs MiDaS in fp32, Q10)."""
        height, width = image_rgb_uint8.shape[:2]
        sample = midas_input(image_rgb_uint8, self.cfg).to(torch.device(device))
        pred = self.model(sample)
        pred = F.interpolate(pred.unsqueeze(1), size=(height, width), mode="bicubic", align_corners=False)
        return pred[0, 0].to(torch.float32)
