"""AdaBins (`adabins_nyu`) written for disco-spec, on a timm EfficientNet encoder.

Our own UnetAdaptiveBins whose parameter names and shapes are those of AdaBins' `AdaBins_nyu.pt`
(shariqfarooq123/AdaBins, `UnetAdaptiveBins.build(n_bins=256, min_val=0.001, max_val=10)`):

    encoder.original_model.*   the EfficientNet-B5 (TF padding/BN eps, `tf_efficientnet_b5_ap`
                               architecture) with global pool and classifier removed; AdaBins built
                               it with gen-efficientnet, whose parameter names timm kept. Built here
                               by timm without pretrained weights (the checkpoint holds them all).
    decoder.*                  conv2 (1x1, padding 1 - as upstream), up1..up4 (`_net`: conv, BN,
                               LeakyReLU, conv, BN, LeakyReLU), conv3
    adaptive_bins_layer.*      the mini-ViT: patch_transformer (patch conv, 500 learned positions,
                               4 torch TransformerEncoder layers), conv3x3, regressor (3 linears)
    conv_out.0                 1x1 conv to the bins (+ softmax)

Inference follows AdaBins' InferenceHelper(dataset='nyu') and DD's sizing
(disco_xform_utils.py:25-48 (transform_image_3d)): ImageNet-normalised input, prediction averaged with the
horizontally flipped image's
prediction (flipped back), bilinear (aligned corners) upsampling to the input size, clipping to
[0.001, 10]; DD resizes the input by area first (Lanczos down above 500,000 px, bicubic up below
448*448) and bicubically resizes the prediction back.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import errors

MAX_ADABINS_AREA = 500_000
MIN_ADABINS_AREA = 448 * 448
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Encoder stages whose outputs feed the decoder (AdaBins taps gen-efficientnet's blocks 0, 1, 2, 4)
# plus conv_head's raw output (before bn2), exactly as AdaBins' Encoder/DecoderBN use them.
_SKIP_STAGES = (0, 1, 2, 4)


def tf_efficientnet(channel_multiplier: float, depth_multiplier: float) -> nn.Module:
    """timm's TF-ported EfficientNet (same padding, BN eps 1e-3), no classifier, random init."""
    from timm.models.efficientnet import _gen_efficientnet

    return _gen_efficientnet(
        "tf_efficientnet_b5" if (channel_multiplier, depth_multiplier) == (1.6, 2.2) else "tf_efficientnet_b0",
        channel_multiplier=channel_multiplier, depth_multiplier=depth_multiplier, pretrained=False,
        bn_eps=1e-3, pad_type="same", num_classes=0,  # TensorFlow's BN epsilon, as timm's tf_* models
    )


def _stage_channels(effnet: nn.Module) -> list[int]:
    out = []
    for stage in effnet.blocks:
        last = stage[-1]
        bn = getattr(last, "bn3", None) or last.bn2  # inverted residual / depthwise-separable
        out.append(int(bn.num_features))
    return out


class _Encoder(nn.Module):
    def __init__(self, effnet: nn.Module):
        super().__init__()
        self.original_model = effnet

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        m = self.original_model
        x = m.bn1(m.conv_stem(x))  # timm's bn1 applies the stem activation (gen-efficientnet's act1)
        stages = []
        for stage in m.blocks:
            x = stage(x)
            stages.append(x)
        return [stages[i] for i in _SKIP_STAGES] + [m.conv_head(x)]


class _UpSampleBN(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self._net = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.BatchNorm2d(out_ch), nn.LeakyReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1), nn.BatchNorm2d(out_ch), nn.LeakyReLU(),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return self._net(torch.cat((x, skip), dim=1))


class _Decoder(nn.Module):
    def __init__(self, bottleneck: int, features: int, skips: list[int], out_ch: int):
        super().__init__()
        s0, s1, s2, s4 = skips
        # AdaBins' 1x1 conv has padding=1 (the map grows by one pixel on each side); kept for parity.
        self.conv2 = nn.Conv2d(bottleneck, features, kernel_size=1, padding=1)
        self.up1 = _UpSampleBN(features + s4, features // 2)
        self.up2 = _UpSampleBN(features // 2 + s2, features // 4)
        self.up3 = _UpSampleBN(features // 4 + s1, features // 8)
        self.up4 = _UpSampleBN(features // 8 + s0, features // 16)
        self.conv3 = nn.Conv2d(features // 16, out_ch, kernel_size=3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        b0, b1, b2, b4, head = feats
        x = self.conv2(head)
        x = self.up1(x, b4)
        x = self.up2(x, b2)
        x = self.up3(x, b1)
        x = self.up4(x, b0)
        return self.conv3(x)


class _PatchTransformer(nn.Module):
    def __init__(self, in_ch: int, patch: int, dim: int, heads: int, ff: int, layers: int, n_pos: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ff)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.embedding_convPxP = nn.Conv2d(in_ch, dim, kernel_size=patch, stride=patch)
        self.positional_encodings = nn.Parameter(torch.zeros(n_pos, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.embedding_convPxP(x).flatten(2)  # [N, E, S]
        emb = emb + self.positional_encodings[: emb.shape[2]].T.unsqueeze(0)
        return self.transformer_encoder(emb.permute(2, 0, 1))  # [S, N, E]


class _MiniViT(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        in_ch, dim = int(cfg["decoder_out"]), int(cfg["embedding_dim"])
        hidden = int(cfg["regressor_hidden"])
        self.n_query = int(cfg["n_query_channels"])
        self.patch_transformer = _PatchTransformer(in_ch, int(cfg["patch_size"]), dim, int(cfg["num_heads"]),
                                                   int(cfg["dim_feedforward"]), int(cfg["num_layers"]),
                                                   int(cfg["n_positions"]))
        self.conv3x3 = nn.Conv2d(in_ch, dim, kernel_size=3, padding=1)
        self.regressor = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden),
                                       nn.LeakyReLU(), nn.Linear(hidden, int(cfg["n_bins"])))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tgt = self.patch_transformer(x)
        x = self.conv3x3(x)
        head, queries = tgt[0], tgt[1: self.n_query + 1].permute(1, 0, 2)  # [N,E], [N,Q,E]
        n, c, h, w = x.shape
        maps = torch.matmul(x.view(n, c, h * w).permute(0, 2, 1), queries.permute(0, 2, 1))
        maps = maps.permute(0, 2, 1).reshape(n, -1, h, w)
        y = torch.relu(self.regressor(head)) + 0.1  # AdaBins' norm='linear'
        return y / y.sum(dim=1, keepdim=True), maps


class UnetAdaptiveBins(nn.Module):
    """Image [N,3,h,w] (ImageNet-normalised) -> (bin edges [N, n_bins+1], depth [N,1,h/2,w/2])."""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        effnet = tf_efficientnet(float(cfg["channel_multiplier"]), float(cfg["depth_multiplier"]))
        chans = _stage_channels(effnet)
        bottleneck = int(effnet.conv_head.out_channels)
        self.min_val = float(cfg["min_depth"])
        self.max_val = float(cfg["max_depth"])
        self.patch_size = int(cfg["patch_size"])
        self.n_positions = int(cfg["n_positions"])
        self.n_query = int(cfg["n_query_channels"])
        self.encoder = _Encoder(effnet)
        self.decoder = _Decoder(bottleneck, int(cfg["decoder_features"]), [chans[i] for i in _SKIP_STAGES],
                                int(cfg["decoder_out"]))
        self.adaptive_bins_layer = _MiniViT(cfg)
        self.conv_out = nn.Sequential(nn.Conv2d(self.n_query, int(cfg["n_bins"]), kernel_size=1),
                                      nn.Softmax(dim=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unet_out = self.decoder(self.encoder(x))
        tokens = (unet_out.shape[-2] // self.patch_size) * (unet_out.shape[-1] // self.patch_size)
        if not self.n_query < tokens <= self.n_positions:
            raise errors.ModelError(
                f"AdaBins cannot take a {x.shape[-1]}x{x.shape[-2]} input: its mini-ViT sees {tokens} patches, "
                f"but needs more than {self.n_query} and at most {self.n_positions}")
        widths_normed, maps = self.adaptive_bins_layer(unet_out)
        probs = self.conv_out(maps)
        widths = F.pad((self.max_val - self.min_val) * widths_normed, (1, 0), mode="constant", value=self.min_val)
        edges = cumsum_deterministic(widths)
        centers = 0.5 * (edges[:, :-1] + edges[:, 1:])
        pred = torch.sum(probs * centers[:, :, None, None], dim=1, keepdim=True)
        return edges, pred


def cumsum_deterministic(x: torch.Tensor) -> torch.Tensor:
    """torch.cumsum(x, dim=1) for AdaBins' bin widths (a few hundred per row) without the cumsum kernel: torch
    2.11's deterministic mode makes CUDA's cumsum of floats throw (engine/cuda_determinism.py). Sequential
    float64 additions cast back, which is what the CPU kernel computes (it accumulates in double): the same bits
    as torch.cumsum on a CPU, and on CUDA the same ones again."""
    acc = x.double()
    running = [acc[:, 0]]
    for i in range(1, acc.shape[1]):
        running.append(running[-1] + acc[:, i])
    return torch.stack(running, dim=1).to(x.dtype)


def build_adabins(cfg: Mapping[str, Any]) -> UnetAdaptiveBins:
    return UnetAdaptiveBins(cfg)


# ---------------------------------------------------------------------------------------------
# Checkpoint keys
# ---------------------------------------------------------------------------------------------

# AdaBins' model_io.load_checkpoint renames these (older names of the same layers).
_LEGACY_PREFIXES = (
    ("adaptive_bins_layer.embedding_conv.", "adaptive_bins_layer.conv3x3."),
    ("adaptive_bins_layer.patch_transformer.embedding_encoder",
     "adaptive_bins_layer.patch_transformer.embedding_convPxP"),
)


def normalise_adabins_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DataParallel's `module.` and apply AdaBins' own legacy renames (as its model_io does)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        for old, new in _LEGACY_PREFIXES:
            if k.startswith(old):
                k = new + k[len(old):]
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# Inference (InferenceHelper.predict_pil + DD's area-based sizing)
# ---------------------------------------------------------------------------------------------


def adabins_input_size(width: int, height: int) -> tuple[int, int, str | None]:
    """DD's AdaBins input size (w, h, resample) for an image: 'lanczos' down, 'bicubic' up, or None."""
    area = width * height
    if area > MAX_ADABINS_AREA:
        scale = math.sqrt(MAX_ADABINS_AREA) / math.sqrt(area)
        return int(width * scale), int(height * scale), "lanczos"
    if area < MIN_ADABINS_AREA:
        scale = math.sqrt(MIN_ADABINS_AREA) / math.sqrt(area)
        return int(width * scale), int(height * scale), "bicubic"
    return width, height, None


class AdaBinsDepth:
    """A loaded AdaBins model; `predict` gives DD's AdaBins depth at the image size."""

    kind = "adabins"

    def __init__(self, model: UnetAdaptiveBins, cfg: Mapping[str, Any], name: str):
        self.model = model
        self.cfg = dict(cfg)
        self.name = name
        self.min_depth = float(cfg["min_depth"])
        self.max_depth = float(cfg["max_depth"])

    @torch.no_grad()
    def infer(self, image_rgb_uint8: np.ndarray, device: torch.device | str) -> torch.Tensor:
        """InferenceHelper.predict_pil: depth [h,w] at the input's own size, clipped to [min, max]."""
        img = image_rgb_uint8.astype(np.float64) / 255.0  # np.asarray(pil) / 255.
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)[:, None, None]
        std = torch.tensor(IMAGENET_STD, dtype=torch.float64)[:, None, None]
        x = ((x - mean) / std).unsqueeze(0).float().to(torch.device(device))
        lo, hi = self.min_depth, self.max_depth
        pred = self.model(x)[1].clamp(lo, hi)
        pred_lr = self.model(torch.flip(x, dims=[-1]))[1].flip(dims=[-1]).clamp(lo, hi)
        final = 0.5 * (pred + pred_lr)
        final = F.interpolate(final, size=x.shape[-2:], mode="bilinear", align_corners=True)
        final = final.clamp(lo, hi)  # +inf -> max and -inf -> min, as upstream; NaN stays NaN here
        final = torch.where(torch.isnan(final), torch.full_like(final, lo), final)
        return final[0, 0]

    @torch.no_grad()
    def predict(self, image_rgb_uint8: np.ndarray, device: torch.device | str) -> torch.Tensor:
        """DD 5.2's AdaBins step (disco_xform_utils.py:33-48 (transform_image_3d)): area-based resize, infer,
        bicubic back to [H,W] float32."""
        from PIL import Image

        height, width = image_rgb_uint8.shape[:2]
        new_w, new_h, how = adabins_input_size(width, height)
        if how is None:
            inp = image_rgb_uint8
        else:
            pil = Image.fromarray(np.ascontiguousarray(image_rgb_uint8))
            resample = Image.Resampling.LANCZOS if how == "lanczos" else Image.Resampling.BICUBIC
            inp = np.asarray(pil.resize((new_w, new_h), resample))
        depth = self.infer(inp, device)
        if tuple(depth.shape) != (height, width):
            # DD: torchvision resize of the [1,1,h,w] tensor, bicubic (align_corners=False, no antialias
            # for tensors in the torchvision of the time). The same size is an exact identity.
            depth = F.interpolate(depth[None, None], size=(height, width), mode="bicubic",
                                  align_corners=False, antialias=False)[0, 0]
        return depth.to(torch.float32)
