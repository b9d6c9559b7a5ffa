"""Every registered checkpoint loads the first time: disco-spec's architectures against upstream key manifests.

tests/data/key_manifests/<name>.json lists each state-dict key with its shape and dtype, as the
upstream architecture definition produces it (generated once by tools/key_manifests.py, which runs
guided-diffusion's create_model with DD's config, DD's SecondaryDiffusionImageNet2, OpenAI CLIP's
CLIP/build_model per size, torchvision's VGG16, MiDaS' and AdaBins' own classes). Here every
builder must produce exactly those keys and shapes, and a strict load of a synthetic checkpoint
with the manifest's layout must succeed through the loaders' own code paths (meta tensors: no
memory, no file; two small models also go through real files).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

import pytest
import torch

from disco_spec.models import architectures
from disco_spec.models.checkpoint_io import check_keys
from disco_spec.models.architectures import build_depth_module
from disco_spec.models.depth import load_midas
from disco_spec.models.depth_adabins import normalise_adabins_keys
from disco_spec.models.registry import REGISTRY
from disco_spec.models.types import ResolvedWeights

pytestmark = pytest.mark.render

MANIFESTS = Path(__file__).resolve().parent / "data" / "key_manifests"
REAL = [n for n, e in REGISTRY.items() if not e.tiny]


def _manifest(name: str) -> dict:
    return json.loads((MANIFESTS / f"{name}.json").read_text(encoding="utf-8"))


def _shapes(name: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v[0]) for k, v in _manifest(name)["tensors"].items()}


def _synthetic(name: str, device: str = "meta") -> dict[str, torch.Tensor]:
    """A checkpoint with the manifest's keys, shapes and dtypes (meta: shapes only)."""
    return {k: torch.empty(tuple(shape), dtype=getattr(torch, dtype), device=device)
            for k, (shape, dtype) in _manifest(name)["tensors"].items()}


def _ours(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _assert_same_layout(ours: dict, theirs: dict, name: str) -> None:
    missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
    assert not missing and not extra, f"{name}: missing {missing[:5]}, unexpected {extra[:5]}"
    bad = [k for k in theirs if ours[k] != theirs[k]]
    assert not bad, f"{name}: other shapes, e.g. {bad[0]}: ours {ours[bad[0]]}, upstream {theirs[bad[0]]}"


def test_every_registered_checkpoint_has_a_manifest_from_a_named_upstream_commit():
    files = {p.stem for p in MANIFESTS.glob("*.json")}
    assert files == set(REAL)
    for name in REAL:
        m = _manifest(name)
        assert m["checkpoint"] == name and m["file"] == REGISTRY[name].filename
        assert m["upstream"] and m["tensors"] and m["definition"]
        for ref in m["upstream"]:
            assert ref["repository"].startswith(("github.com/", "pypi.org/"))
            if ref["repository"].startswith("github.com/"):
                assert len(ref["commit"]) == 40 and int(ref["commit"], 16) >= 0
            else:
                assert ref["version"]
        assert all(dtype in ("float32", "float16", "int64") for _, dtype in m["tensors"].values())


# ---------------------------------------------------------------------------------------------
# Diffusion UNets and the secondary model
# ---------------------------------------------------------------------------------------------


DIFFUSION_NAMES = [n for n, e in REGISTRY.items() if e.role == "diffusion" and not e.tiny]


def test_every_diffusion_model_dd_57_offers_is_registered():
    # DD 5.7's diffusion_model choices (disco.py, "Models Settings"), less 'custom' (a spec's {path, sha256, config}).
    assert set(DIFFUSION_NAMES) == {
        "256x256_diffusion_uncond", "512x512_diffusion_uncond_finetune_008100", "portrait_generator_v001",
        "pixelartdiffusion_expanded", "pixel_art_diffusion_hard_256", "pixel_art_diffusion_soft_256",
        "pixelartdiffusion4k", "watercolordiffusion_2", "watercolordiffusion", "PulpSciFiDiffusion"}


@pytest.mark.parametrize("name", DIFFUSION_NAMES)
def test_unet_builder_matches_guided_diffusion_with_dds_config(name):
    with torch.device("meta"):
        unet = architectures.unet_only(REGISTRY[name].config)
    _assert_same_layout(_ours(unet), _shapes(name), name)
    sd = _synthetic(name)
    check_keys(unet, sd, name, "(synthetic)")
    unet.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=True, assign=True)


def test_secondary_builder_matches_dds_class_and_loads_a_real_file(tmp_path):
    from disco_spec.models.secondary import build_secondary, load_secondary

    name = "secondary_model_imagenet_2"
    with torch.device("meta"):
        model = build_secondary(REGISTRY[name].config)
    _assert_same_layout(_ours(model), _shapes(name), name)
    # A real file with the upstream layout, through the loader itself (weights_only read, strict load).
    path = tmp_path / REGISTRY[name].filename
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in _synthetic(name).items()}, path)
    w = ResolvedWeights(role="secondary", name=name, path=str(path), sha256="0" * 64, size=path.stat().st_size)
    loaded = load_secondary(w, "cpu")
    assert sum(p.numel() for p in loaded.parameters()) == 13_841_547


# ---------------------------------------------------------------------------------------------
# OpenAI CLIP: disco-spec builds them with open_clip's builder for OpenAI state dicts
# ---------------------------------------------------------------------------------------------

CLIP_NAMES = ["ViTB32", "ViTB16", "ViTL14", "RN50", "RN50x4", "RN50x16", "RN50x64", "RN101"]


@pytest.mark.parametrize("name", CLIP_NAMES)
def test_clip_builder_matches_openai_build_model(name):
    from disco_spec.models.clip import _openai_model, _resolution

    sd = _synthetic(name)
    # disco-spec's own path (clip._openai_model -> open_clip's builder, strict load), on meta.
    with torch.device("meta"):
        model = _openai_model(dict(sd), torch.device("cpu"), name)
    _assert_same_layout(_ours(model), _shapes(name), name)
    assert _resolution(model) == REGISTRY[name].config["input_resolution"]
    # The archive's extra scalars are dropped by our reader as by OpenAI's build_model.
    assert not {"input_resolution", "context_length", "vocab_size"} & set(sd)


# ---------------------------------------------------------------------------------------------
# LPIPS' VGG16 backbone (torchvision's file)
# ---------------------------------------------------------------------------------------------


def test_lpips_trunk_maps_onto_torchvisions_vgg16():
    from disco_spec.models.lpips import _trunk_from_torchvision

    name = "lpips-vgg"
    theirs = _shapes(name)
    with torch.device("meta"):
        model = architectures.lpips_net("vgg", "0.1")
    trunk = _trunk_from_torchvision(model.net, _synthetic(name))  # the loader's own key mapping
    assert {k: tuple(v.shape) for k, v in trunk.items()} == _ours(model.net)
    model.net.load_state_dict(trunk, strict=True, assign=True)
    # LPIPS uses the conv trunk only: all 13 convs of `features`, none of the classifier.
    used = {f"features.{k.split('.', 2)[1]}.{k.split('.', 2)[2]}" for k in trunk}
    assert used == {k for k in theirs if k.startswith("features.")} and len(used) == 26


# ---------------------------------------------------------------------------------------------
# Depth models
# ---------------------------------------------------------------------------------------------

DEPTH = ["dpt_large", "dpt_hybrid", "dpt_hybrid_nyu", "midas_v21", "midas_v21_small", "adabins_nyu"]


@pytest.mark.parametrize("name", DEPTH)
def test_depth_builder_matches_upstream_class(name):
    with torch.device("meta"):
        model = build_depth_module(REGISTRY[name].config)
    _assert_same_layout(_ours(model), _shapes(name), name)
    sd = _synthetic(name)
    if name == "adabins_nyu":
        # As published: DataParallel's `module.` prefix inside the training checkpoint's "model".
        sd = normalise_adabins_keys({f"module.{k}": v for k, v in sd.items()})
    check_keys(model, sd, name, "(synthetic)")
    model.load_state_dict(sd, strict=True, assign=True)
    dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in model.state_dict().items()}
    assert dtypes == {k: d for k, (_, d) in _manifest(name)["tensors"].items()}


def test_midas_v21_small_loads_a_real_file_with_the_upstream_layout(tmp_path):
    name = "midas_v21_small"
    path = tmp_path / REGISTRY[name].filename
    # MiDaS' BaseModel.load accepts a plain state dict or a training checkpoint's "model".
    torch.save({"model": {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in _synthetic(name).items()},
                "optimizer": {}}, path)
    w = ResolvedWeights(role="depth", name=name, path=str(path), sha256="0" * 64, size=path.stat().st_size)
    midas = load_midas(w, "cpu", config=MappingProxyType(dict(REGISTRY[name].config)))
    assert sum(p.numel() for p in midas.model.parameters()) + sum(b.numel() for b in midas.model.buffers()) \
        == 21_394_729
