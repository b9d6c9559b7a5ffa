"""LPIPS (DD's perceptual distance for the init image), loaded fp32 from lpips' heads and the torchvision trunk."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from .. import errors
from .architectures import lpips_net
from .checkpoint_io import assert_materialised, read_state_dict, untouched_global_rng
from .registry import LPIPS_HEADS_SHA256, config_for
from .types import ResolvedWeights
from .weights import weight_sha256


class LpipsDistance(torch.nn.Module):
    """LPIPS between two batches in [-1, 1]; returns one distance per image, shape [N]."""

    def __init__(self, lpips_module: torch.nn.Module):
        super().__init__()
        self.lpips = lpips_module

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.lpips(x, y).reshape(x.shape[0])


def _package_heads(net: str, version: str) -> dict[str, torch.Tensor]:
    """The v0.1 linear heads shipped inside the lpips package, verified before they are read."""
    import lpips

    path = Path(lpips.__file__).resolve().parent / "weights" / f"v{version}" / f"{net}.pth"
    what = f"LPIPS {net} v{version} linear heads (from the lpips package)"
    if not path.is_file():
        raise errors.ModelError(f"{what}: not found at {path}; reinstall the lpips package")
    expected = LPIPS_HEADS_SHA256.get(net)
    actual = weight_sha256(path)
    if expected is not None and actual != expected:
        raise errors.WeightsHashMismatch(what, str(path), expected, actual)
    return read_state_dict(path, what)


_SLICE_KEY = re.compile(r"^slice\d+\.(\d+)\.(.+)$")


def _trunk_from_torchvision(trunk: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """lpips keeps torchvision's layer indices inside its slices: `sliceK.<i>.w` <- `features.<i>.w`."""
    out = {}
    for key in trunk.state_dict():
        m = _SLICE_KEY.match(key)
        src = f"features.{m.group(1)}.{m.group(2)}" if m else None
        if src is None or src not in sd:
            raise errors.ModelError(f"LPIPS backbone file lacks {src or key}; is it a torchvision {type(trunk).__name__}?")
        out[key] = sd[src]
    return out


def load_lpips(weights: ResolvedWeights, device: torch.device | str, *,
               config: Mapping[str, Any] | None = None,
               state_dict: dict[str, torch.Tensor] | None = None) -> LpipsDistance:
    """lpips.LPIPS with our verified weights; nothing is downloaded (pnet_rand=True, heads read by us).
    `state_dict`: a whole LPIPS module's tensors (the "lpips-full" layout) instead of reading `weights.path`
    (seeded random weights, models.tiny)."""
    cfg = config_for(weights, config, "lpips-vgg")
    net, version, fmt = cfg.get("net", "vgg"), cfg.get("version", "0.1"), cfg.get("format", "torchvision-backbone")
    if state_dict is not None:
        fmt = "lpips-full"
    what = f"LPIPS model {weights.name}"
    if fmt not in ("torchvision-backbone", "lpips-full"):
        raise errors.ModelError(f"{what}: unknown LPIPS weight format {fmt!r}")
    import lpips

    # Built on the meta device: lpips constructs a whole torchvision classifier (VGG16: 138M
    # parameters) only to keep its conv trunk; random-initialising that on CPU would waste seconds.
    with untouched_global_rng(), torch.device("meta"):
        model = lpips_net(net, version)
    model.scaling_layer = lpips.ScalingLayer()  # fixed constants, not weights: rebuilt for real
    sd = read_state_dict(weights.path, what) if state_dict is None else state_dict
    if fmt == "torchvision-backbone":
        trunk = _trunk_from_torchvision(model.net, sd)
        _check_shapes(model, {f"net.{k}": v for k, v in trunk.items()}, what)
        model.net.load_state_dict(trunk, strict=True, assign=True)
        sd = _package_heads(net, version)
        allowed: tuple[str, ...] = ("net.", "lins.", "scaling_layer.")
    else:
        # `lins.N` are aliases of `linN`; the scaling layer holds lpips' fixed constants.
        allowed = ("lins.", "scaling_layer.")
    _check_shapes(model, sd, what)
    result = model.load_state_dict(sd, strict=False, assign=True)
    _check_lpips_partial(result, allowed=allowed, what=what)
    # assign=True replaced the `linN` parameters; the `lins` ModuleList holds the same modules.
    assert_materialised(model, what)
    return LpipsDistance(model.eval().requires_grad_(False)).eval().to(torch.device(device))


def _check_shapes(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    own = model.state_dict()
    for k, v in sd.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise errors.ModelError(f"{what}: {k} has shape {tuple(v.shape)}, the network needs {tuple(own[k].shape)}")


def _check_lpips_partial(result: Any, *, allowed: tuple[str, ...], what: str) -> None:
    missing = [k for k in result.missing_keys if not k.startswith(allowed)]
    if missing or result.unexpected_keys:
        raise errors.ModelError(
            f"{what}: weights do not match the LPIPS network (missing {missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]})"
        )
