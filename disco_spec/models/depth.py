"""Depth for 3D animation: MiDaS and AdaBins, mixed by `midas_weight` as DD 5.2 does
(disco_xform_utils.py:18 (transform_image_3d)).

    models = load_depth_models(spec.camera_3d, device)          # verified files, loaded once
    depth  = estimate_depth(models, rgb_uint8, midas_weight, device)   # [H, W] float32

Both models come from the registry (role "depth") like every other model: their files are
SHA-256-checked before a byte is parsed, read with weights-only loading and assigned into modules
built on the meta device (depth_midas.py, depth_midas_conv.py, depth_adabins.py hold the
architectures). The `tiny-*` depth entries are the same code at toy sizes for CPU tests.

Upgrade path: `midas_depth_model = "hf:<model id>[@<revision>]"` loads a transformers
depth-estimation model (AutoModelForDepthEstimation + its own image processor) in place of MiDaS.
We cannot pin its bytes: integrity rests on the Hugging Face Hub (pin a commit as the revision).
See docs/depth-models.md.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import errors
from .checkpoint_io import assert_materialised, check_keys, untouched_global_rng
from .architectures import build_depth_module
from .depth_adabins import AdaBinsDepth, normalise_adabins_keys
from .depth_io import read_depth_state_dict
from .depth_midas import MidasDepth
from .registry import REGISTRY, get_entry
from .resolve import resolve_weights
from .types import ResolvedWeights

# Every MiDaS choice DD 5.2 offers (disco.py:612 (init_midas_depth_model)) is implemented; this tuple stays for
# callers that import it.
MIDAS_NOT_SUPPORTED_YET: tuple[str, ...] = ()
# The MiDaS architectures ("dpt": dpt_large and the hybrids; the v2.1 CNNs) and their builders.
MIDAS_ARCHS = ("dpt", "midas_v21", "midas_v21_small")
HF_PREFIX = "hf:"
# DD's constants turning MiDaS' relative inverse depth into a depth roughly in AdaBins' range
# (disco_xform_utils.py:78-79 (transform_image_3d)).
MIDAS_OFFSET = 50.0
MIDAS_DIVISOR = 19.0


@dataclass
class DepthModels:
    """The loaded depth models. `adabins` is None when midas_weight >= 1 (DD then skips AdaBins)."""

    midas: Any  # MidasDepth, or HFDepth for "hf:" references; .predict(rgb_uint8, device) -> [H,W]
    adabins: AdaBinsDepth | None
    midas_weights: ResolvedWeights | None  # None for "hf:" models (not pinned by us)
    adabins_weights: ResolvedWeights | None
    midas_source: str  # registry name, or "hf:<id>[@<revision>]"


def _config_for(weights: ResolvedWeights, config: Mapping[str, Any] | None, arch: str) -> Mapping[str, Any]:
    if config is None:
        entry = REGISTRY.get(weights.name)
        if entry is None or entry.role != "depth":
            raise errors.ModelError(f"depth model {weights.name}: no registry config; pass config=")
        config = entry.config
    family = MIDAS_ARCHS if arch == "midas" else (arch,)
    if config.get("arch") not in family:
        kind = {"midas": "a MiDaS", "adabins": "an AdaBins"}[arch]
        raise errors.ModelError(f"{weights.name} is not {kind} model (its architecture is {config.get('arch')!r})")
    return config


def _load_module(weights: ResolvedWeights, cfg: Mapping[str, Any], what: str, device: torch.device | str) -> nn.Module:
    with untouched_global_rng(), torch.device("meta"):
        model = build_depth_module(cfg)
    sd = read_depth_state_dict(weights.path, what)
    if cfg.get("arch") == "adabins":
        sd = normalise_adabins_keys(sd)
    check_keys(model, sd, what, weights.path)
    # Copies, always: safetensors and mmap'ed torch loads hand out tensors backed by the file's pages,
    # so a file rewritten after verification would silently change the weights of a loaded model.
    sd = {k: v.to(torch.float32, copy=True) if v.is_floating_point() else v.clone() for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    assert_materialised(model, what)
    return model.eval().requires_grad_(False).to(torch.device(device))


def load_midas(weights: ResolvedWeights, device: torch.device | str, *,
               config: Mapping[str, Any] | None = None) -> MidasDepth:
    """MiDaS (any of DD's five) from verified weights, fp32, eval, frozen."""
    cfg = _config_for(weights, config, "midas")
    return MidasDepth(_load_module(weights, cfg, f"MiDaS model {weights.name}", device), cfg, weights.name)


def load_adabins(weights: ResolvedWeights, device: torch.device | str, *,
                 config: Mapping[str, Any] | None = None) -> AdaBinsDepth:
    """AdaBins from verified weights (training checkpoint or state dict), fp32, eval, frozen."""
    cfg = _config_for(weights, config, "adabins")
    model = _load_module(weights, cfg, f"AdaBins model {weights.name}", device)
    return AdaBinsDepth(model, cfg, weights.name)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# transformers upgrade path
# ---------------------------------------------------------------------------------------------


class HFDepth:
    """A transformers depth-estimation model used where DD uses MiDaS (`hf:<id>[@<revision>]`)."""

    kind = "hf"

    def __init__(self, model: Any, processor: Any, ref: str):
        self.model = model
        self.processor = processor
        self.name = ref

    @torch.no_grad()
    def predict(self, image_rgb_uint8: np.ndarray, device: torch.device | str) -> torch.Tensor:
        from PIL import Image

        height, width = image_rgb_uint8.shape[:2]
        inputs = self.processor(images=Image.fromarray(np.ascontiguousarray(image_rgb_uint8)), return_tensors="pt")
        inputs = {k: v.to(torch.device(device)) for k, v in inputs.items()}
        pred = self.model(**inputs).predicted_depth.to(torch.float32)  # [1, h, w]
        pred = F.interpolate(pred.unsqueeze(1), size=(height, width), mode="bicubic", align_corners=False)
        return pred[0, 0]


def parse_hf_ref(ref: str) -> tuple[str, str | None]:
    """'hf:Intel/dpt-large@abc123' -> ('Intel/dpt-large', 'abc123')."""
    body = ref[len(HF_PREFIX):].strip()
    model_id, _, revision = body.partition("@")
    if not model_id or model_id.count("/") > 1 or any(c.isspace() for c in model_id):
        raise errors.ModelError(f"{ref!r}: expected hf:<owner>/<model>[@<revision>]")
    return model_id, (revision or None)


def load_hf_depth(ref: str, device: torch.device | str) -> HFDepth:
    model_id, revision = parse_hf_ref(ref)
    try:
        import transformers
    except ImportError:
        raise errors.ModelError(
            f"midas_depth_model = {ref!r} needs the transformers package: `pip install transformers` "
            "(or use a registry model such as 'dpt_large')"
        ) from None
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(model_id, revision=revision)
        # safetensors only: a pickled pytorch_model.bin is never loaded.
        model = transformers.AutoModelForDepthEstimation.from_pretrained(model_id, revision=revision,
                                                                         use_safetensors=True)
    except Exception as e:  # noqa: BLE001
        raise errors.ModelError(f"cannot load transformers depth model {ref!r}: {e}") from None
    return HFDepth(model.eval().requires_grad_(False).to(torch.device(device)), processor, ref)


# ---------------------------------------------------------------------------------------------
# Loading both, estimating depth
# ---------------------------------------------------------------------------------------------


def _setting(section: Any, name: str, default: Any) -> Any:
    if isinstance(section, Mapping):
        return section.get(name, default)
    return getattr(section, name, default)


def _check_weight(midas_weight: Any) -> float:
    try:
        w = float(midas_weight)
    except (TypeError, ValueError):
        raise errors.ModelError(f"midas_weight must be a number (got {midas_weight!r})") from None
    if not math.isfinite(w) or w <= 0:
        # DD 5.2 crashes at 0 (quirk Q9: MiDaS is used but never built); the spec refuses it too.
        raise errors.ModelError(f"midas_weight must be > 0 (got {midas_weight!r})")
    return w


def _midas_entry_name(name: str) -> str:
    entry = get_entry(name)
    if entry.role != "depth" or entry.config.get("arch") not in MIDAS_ARCHS:
        raise errors.ModelError(f"midas_depth_model {name!r} is not a MiDaS model")
    return name


def load_depth_models(
    camera_3d_section: Any,
    device: torch.device | str,
    *,
    spec_dir: str | os.PathLike | None = None,
    verify_each_time: bool = False,
    fetch: bool = True,
) -> DepthModels:
    """Resolve (verify) and load the depth models a spec's `camera_3d` section names.

    AdaBins is neither resolved nor loaded when midas_weight >= 1, as DD skips it then. Both files
    are verified before either is read.
    """
    midas_ref = str(_setting(camera_3d_section, "midas_depth_model", "dpt_large"))
    weight = _check_weight(_setting(camera_3d_section, "midas_weight", 0.3))
    adabins_name = str(_setting(camera_3d_section, "adabins_model", "adabins_nyu"))
    use_adabins = weight < 1.0

    midas_w = None
    if not midas_ref.startswith(HF_PREFIX):
        midas_w = resolve_weights(_midas_entry_name(midas_ref), "depth", spec_dir=spec_dir,
                                  verify_each_time=verify_each_time, fetch=fetch)
    adabins_w = None
    if use_adabins:
        entry = get_entry(adabins_name)
        if entry.role != "depth" or entry.config.get("arch") != "adabins":
            raise errors.ModelError(f"adabins_model {adabins_name!r} is not an AdaBins model")
        adabins_w = resolve_weights(adabins_name, "depth", spec_dir=spec_dir,
                                    verify_each_time=verify_each_time, fetch=fetch)

    midas = load_hf_depth(midas_ref, device) if midas_w is None else load_midas(midas_w, device)
    adabins = load_adabins(adabins_w, device) if adabins_w is not None else None
    return DepthModels(midas=midas, adabins=adabins, midas_weights=midas_w, adabins_weights=adabins_w,
                       midas_source=midas_ref)


def _check_image(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise errors.ModelError(f"depth estimation needs an RGB uint8 image [H,W,3] (got {arr.dtype} {arr.shape})")
    return np.ascontiguousarray(arr)


def midas_to_depth(p: torch.Tensor) -> torch.Tensor:
    """DD's conversion of MiDaS' relative inverse depth: d = (50 - p) / 19 (near = small)."""
    return (MIDAS_OFFSET - p) / MIDAS_DIVISOR


def estimate_depth(models: DepthModels, image_rgb_uint8: np.ndarray, midas_weight: float,
                   device: torch.device | str) -> torch.Tensor:
    """DD 5.2's depth map (disco_xform_utils.py:25-85 (transform_image_3d)) for an RGB uint8 image: [H, W] float32
    on `device`.

    midas_weight < 1: weight * (50 - p_midas) / 19 + (1 - weight) * d_adabins; otherwise MiDaS alone.
    """
    img = _check_image(image_rgb_uint8)
    w = _check_weight(midas_weight)
    use_adabins = w < 1.0
    d_adabins = None
    if use_adabins:
        if models.adabins is None:
            raise errors.ModelError(
                f"midas_weight {w} < 1 mixes in AdaBins, but it was not loaded "
                "(load_depth_models was given midas_weight >= 1)")
        d_adabins = models.adabins.predict(img, device)  # DD runs AdaBins first
    d_midas = midas_to_depth(models.midas.predict(img, device))
    if d_adabins is None:
        return d_midas.contiguous()
    return (d_midas * w + d_adabins.to(d_midas.device) * (1.0 - w)).contiguous()
