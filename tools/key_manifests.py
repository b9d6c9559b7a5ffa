"""Write the key manifests in tests/data/key_manifests/ by running each checkpoint's upstream definition.

Every registered real checkpoint gets one JSON file: each state-dict key with its shape and dtype,
as the upstream architecture definition produces it, and the repository and commit that
definition came from. The tests (tests/test_key_manifests.py) then check disco-spec's own builders
against these facts, so a real checkpoint loads strictly the first time it is used.

This script contains no upstream code. It imports the upstream sources from folders given on the
command line (fetch them at the commits below; nothing here downloads anything):

    python tools/key_manifests.py tests/data/key_manifests \
        --guided-diffusion /tmp/gd       # crowsonkb/guided-diffusion @ 77db729 (holds guided_diffusion/)
        --dd-secondary /tmp/dd_sec.py    # DD 5.2's secondary-model classes, cut from its disco.py
        --clip /tmp/clip                 # openai/CLIP (holds model.py)
        --midas /tmp/midas_repo          # isl-org/MiDaS (holds midas/)
        --dpt /tmp/dpt_repo              # isl-org/DPT (holds dpt/): cross-checks the NYU hybrid's layout
        --gen-efficientnet /tmp/geneff   # rwightman/gen-efficientnet-pytorch (holds hubconf.py)
        --wsl /tmp/wsl                   # facebookresearch/WSL-Images (holds hubconf.py)
        --adabins /tmp/adabins           # shariqfarooq123/AdaBins (holds models/)
        --timm /tmp/timm054              # a folder holding the timm version DD's pip install got
        --commit NAME=SHA ...            # recorded in the manifests (NAME as in UPSTREAMS)

Upstream code that would download weights at construction time (torch.hub for gen-efficientnet
and WSL-Images) is run with downloads disabled: torch.hub.load is pointed at the local hubconf
files with pretrained=False, and WSL's state-dict download is replaced by "keep the random init".
Models are built on the meta device (shapes and dtypes without memory) where upstream allows it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch

UPSTREAMS = {
    "guided-diffusion": "github.com/crowsonkb/guided-diffusion",
    "disco-diffusion": "github.com/alembics/disco-diffusion",
    "disco-diffusion-5.7": "github.com/alembics/disco-diffusion",  # the commit of DD 5.7's disco.py
    "clip": "github.com/openai/CLIP",
    "midas": "github.com/isl-org/MiDaS",
    "dpt": "github.com/isl-org/DPT",
    "gen-efficientnet": "github.com/rwightman/gen-efficientnet-pytorch",
    "wsl": "github.com/facebookresearch/WSL-Images",
    "adabins": "github.com/shariqfarooq123/AdaBins",
    "timm": "pypi.org/project/timm",
    "torchvision": "pypi.org/project/torchvision",
}

# DD 5.2's model_config overrides (disco.py, "Prepping model"); use_checkpoint/use_fp16 change no keys.
DD_UNET = {
    "attention_resolutions": "32, 16, 8", "class_cond": False, "diffusion_steps": 1000, "rescale_timesteps": True,
    "timestep_respacing": "ddim250", "learn_sigma": True, "noise_schedule": "linear", "num_channels": 256,
    "num_head_channels": 64, "num_res_blocks": 2, "resblock_updown": True, "use_checkpoint": False,
    "use_fp16": False, "use_scale_shift_norm": True,
}

# DD 5.7's model_config for the models it added (disco.py, "Prepping model": the portrait branch and the
# `else` branch for KaliYuga's fine-tunes), on top of model_and_diffusion_defaults().
DD57_PORTRAIT = {
    "attention_resolutions": "32, 16, 8", "class_cond": False, "diffusion_steps": 1000, "rescale_timesteps": True,
    "image_size": 512, "learn_sigma": True, "noise_schedule": "linear", "num_channels": 128, "num_heads": 4,
    "num_res_blocks": 2, "resblock_updown": True, "use_checkpoint": False, "use_fp16": False,
    "use_scale_shift_norm": True,
}
DD57_KALIYUGA = {
    "attention_resolutions": "16", "class_cond": False, "diffusion_steps": 1000, "rescale_timesteps": True,
    "timestep_respacing": "ddim100", "image_size": 256, "learn_sigma": True, "noise_schedule": "linear",
    "num_channels": 128, "num_heads": 1, "num_res_blocks": 2, "use_checkpoint": False, "use_fp16": False,
    "use_scale_shift_norm": False,
}
DD57_MODELS = {
    "portrait_generator_v001": ("portrait_generator_v001_ema_0.9999_1MM.pt", DD57_PORTRAIT),
    "pixelartdiffusion_expanded": ("PADexpanded.pt", DD57_KALIYUGA),
    "pixel_art_diffusion_hard_256": ("pixel_art_diffusion_hard_256.pt", DD57_KALIYUGA),
    "pixel_art_diffusion_soft_256": ("pixel_art_diffusion_soft_256.pt", DD57_KALIYUGA),
    "pixelartdiffusion4k": ("pixelartdiffusion4k.pt", DD57_KALIYUGA),
    "watercolordiffusion_2": ("watercolordiffusion_2.pt", DD57_KALIYUGA),
    "watercolordiffusion": ("watercolordiffusion.pt", DD57_KALIYUGA),
    "PulpSciFiDiffusion": ("PulpSciFiDiffusion.pt", DD57_KALIYUGA),
}

# OpenAI CLIP's constructor arguments per released model (what its build_model infers from each file):
# embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size, context_length,
# vocab_size, transformer_width, transformer_heads, transformer_layers.
CLIP_SIZES = {
    "RN50": (1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12),
    "RN101": (512, 224, (3, 4, 23, 3), 64, None, 77, 49408, 512, 8, 12),
    "RN50x4": (640, 288, (4, 6, 10, 6), 80, None, 77, 49408, 640, 10, 12),
    "RN50x16": (768, 384, (6, 8, 18, 8), 96, None, 77, 49408, 768, 12, 12),
    "RN50x64": (1024, 448, (3, 15, 36, 10), 128, None, 77, 49408, 1024, 16, 12),
    "ViTB32": (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12),
    "ViTB16": (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12),
    "ViTL14": (768, 224, 24, 1024, 14, 77, 49408, 768, 12, 12),
}
# open_clip's config files for the same models: an independent record of the same hyperparameters.
OPEN_CLIP_CONFIG = {"RN50": "RN50", "RN101": "RN101", "RN50x4": "RN50x4", "RN50x16": "RN50x16",
                    "RN50x64": "RN50x64", "ViTB32": "ViT-B-32", "ViTB16": "ViT-B-16", "ViTL14": "ViT-L-14"}

REGISTRY_FILES = {
    "512x512_diffusion_uncond_finetune_008100": "512x512_diffusion_uncond_finetune_008100.pt",
    "256x256_diffusion_uncond": "256x256_diffusion_uncond.pt",
    "secondary_model_imagenet_2": "secondary_model_imagenet_2.pth",
    "ViTB32": "ViT-B-32.pt", "ViTB16": "ViT-B-16.pt", "ViTL14": "ViT-L-14.pt", "RN50": "RN50.pt",
    "RN50x4": "RN50x4.pt", "RN50x16": "RN50x16.pt", "RN50x64": "RN50x64.pt", "RN101": "RN101.pt",
    "lpips-vgg": "vgg16-397923af.pth",
    "dpt_large": "dpt_large-midas-2f21e586.pt", "dpt_hybrid": "dpt_hybrid-midas-501f0c75.pt",
    "dpt_hybrid_nyu": "dpt_hybrid_nyu-2ce69ec7.pt", "midas_v21": "midas_v21-f6b98070.pt",
    "midas_v21_small": "midas_v21_small-70d6b9c8.pt", "adabins_nyu": "AdaBins_nyu.pt",
    **{name: file for name, (file, _) in DD57_MODELS.items()},
}


def _import_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _tensors(sd: dict) -> dict[str, list]:
    return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()}


def _write(out: Path, name: str, sd: dict, upstream: list[dict], definition: str, notes: str = "") -> None:
    body = {
        "checkpoint": name,
        "file": REGISTRY_FILES[name],
        "definition": definition,
        "upstream": upstream,
        "generated_by": "tools/key_manifests.py (runs the upstream definition; no upstream code in disco-spec)",
        "notes": notes,
    }
    tensors = _tensors(sd)
    head = json.dumps(body, indent=1, sort_keys=False)[:-2]
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in tensors.items()]
    text = head + ',\n "tensors": {\n' + ",\n".join(lines) + "\n }\n}\n"
    json.loads(text)  # well-formed
    (out / f"{name}.json").write_text(text, encoding="utf-8")
    print(f"{name}: {len(tensors)} tensors, {sum(_numel(v[0]) for v in tensors.values()):,} elements")


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


class Upstream:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.commits = dict(c.split("=", 1) for c in args.commit)

    def ref(self, key: str, path: str | None = None, version: str | None = None) -> dict:
        out = {"repository": UPSTREAMS[key]}
        if version is not None:
            out["version"] = version
        else:
            out["commit"] = self.commits[key]
        if path:
            out["path"] = path
        return out


def unets(up: Upstream, out: Path) -> None:
    sys.path.insert(0, str(up.args.guided_diffusion))
    script_util = importlib.import_module("guided_diffusion.script_util")
    assert str(Path(script_util.__file__).resolve()).startswith(str(Path(up.args.guided_diffusion).resolve()))
    for name, size in (("512x512_diffusion_uncond_finetune_008100", 512), ("256x256_diffusion_uncond", 256)):
        cfg = script_util.model_and_diffusion_defaults()
        cfg.update({**DD_UNET, "image_size": size})
        with torch.device("meta"):
            model, _ = script_util.create_model_and_diffusion(**cfg)
        _write(out, name, model.state_dict(), [up.ref("guided-diffusion", "guided_diffusion/script_util.py"),
                                                up.ref("disco-diffusion", "disco.py (model_config)")],
               f"create_model_and_diffusion(**model_and_diffusion_defaults() | DD 5.2's overrides, image_size={size})",
               "DD builds the fp32 model, loads the file, then converts to fp16 on CUDA; keys are dtype-independent.")


def unets57(up: Upstream, out: Path) -> None:
    """The UNets DD 5.4-5.7 added, with DD 5.7's own config (its use_fp16 = True changes no keys)."""
    sys.path.insert(0, str(up.args.guided_diffusion))
    script_util = importlib.import_module("guided_diffusion.script_util")
    for name, (_, overrides) in DD57_MODELS.items():
        cfg = script_util.model_and_diffusion_defaults()
        cfg.update(overrides)
        with torch.device("meta"):
            model, _ = script_util.create_model_and_diffusion(**cfg)
        _write(out, name, model.state_dict(), [up.ref("guided-diffusion", "guided_diffusion/script_util.py"),
                                                up.ref("disco-diffusion-5.7", "disco.py (model_config)")],
               "create_model_and_diffusion(**model_and_diffusion_defaults() | DD 5.7's overrides for this model)",
               "DD 5.7 clones kostarion/guided-diffusion, which adds sampler options only (no layers); the "
               "keys are those of crowsonkb's at the same architecture.")


def secondary(up: Upstream, out: Path) -> None:
    mod = _import_file("dd_secondary", Path(up.args.dd_secondary))
    with torch.device("meta"):
        model = mod.SecondaryDiffusionImageNet2()
    _write(out, "secondary_model_imagenet_2", model.state_dict(), [up.ref("disco-diffusion", "disco.py")],
           "SecondaryDiffusionImageNet2() as DD 5.2's disco.py defines it")


def clips(up: Upstream, out: Path) -> None:
    model_py = _import_file("openai_clip_model", Path(up.args.clip) / "model.py")
    import open_clip

    cfg_dir = Path(open_clip.__file__).parent / "model_configs"
    for name, hp in CLIP_SIZES.items():
        _cross_check_open_clip(name, hp, json.loads((cfg_dir / f"{OPEN_CLIP_CONFIG[name]}.json").read_text()))
        with torch.device("meta"):
            model = model_py.CLIP(*hp)
            model_py.convert_weights(model)  # as build_model does: the dtypes a loaded model has
            # Round trip through OpenAI's own build_model: it must infer the same architecture.
            rebuilt = model_py.build_model(dict(model.state_dict()))
        sd = model.state_dict()
        assert _tensors(rebuilt.state_dict()) == _tensors(sd), name
        _write(out, name, sd, [up.ref("clip", "clip/model.py")],
               f"CLIP{hp} + convert_weights (equal to build_model() on that state dict)",
               "The TorchScript archive also holds the scalars input_resolution, context_length and "
               "vocab_size, which build_model deletes (disco-spec drops them too). dtypes are those of "
               "the model build_model returns; the archive's own dtypes are not recorded here.")


def _cross_check_open_clip(name: str, hp: tuple, cfg: dict) -> None:
    embed, res, layers, width, patch, ctx, vocab, tw, th, tl = hp
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    got = (cfg["embed_dim"], v["image_size"], tuple(v["layers"]) if isinstance(v["layers"], list) else v["layers"],
           v["width"], v.get("patch_size"), t["context_length"], t["vocab_size"], t["width"], t["heads"], t["layers"])
    assert got == (embed, res, layers, width, patch, ctx, vocab, tw, th, tl), (name, got)


def lpips_vgg(up: Upstream, out: Path) -> None:
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.vgg16(weights=None)
    _write(out, "lpips-vgg", model.state_dict(),
           [up.ref("torchvision", "torchvision/models/vgg.py", version=torchvision.__version__)],
           "torchvision.models.vgg16() (the file is torchvision's ImageNet VGG16; LPIPS uses features.*)",
           "LPIPS' linear heads ship inside the lpips package and are not part of this file.")


@contextlib.contextmanager
def _local_hub(up: Upstream):
    """torch.hub.load served from the fetched hubconf files, never downloading weights."""
    if str(up.args.gen_efficientnet) not in sys.path:
        sys.path.insert(0, str(up.args.gen_efficientnet))  # its hubconf imports the geffnet package beside it
    geneff = _import_file("geneff_hubconf", Path(up.args.gen_efficientnet) / "hubconf.py")
    wsl = _import_file("wsl_hubconf", Path(up.args.wsl) / "hubconf.py")
    wsl.load_state_dict_from_url = lambda *a, **k: None

    class _ResNetKeepInit(wsl.ResNet):
        def load_state_dict(self, state_dict, *a, **k):  # the hubconf's download is disabled
            if state_dict is None:
                return None
            return super().load_state_dict(state_dict, *a, **k)

    wsl.ResNet = _ResNetKeepInit
    hubs = {"rwightman/gen-efficientnet-pytorch": geneff, "facebookresearch/WSL-Images": wsl}
    real = torch.hub.load

    def load(repo, name, *args, **kwargs):
        kwargs["pretrained"] = False
        if repo == "facebookresearch/WSL-Images":
            kwargs.pop("pretrained")
        return getattr(hubs[repo], name)(*args, **kwargs)

    torch.hub.load = load
    try:
        yield
    finally:
        torch.hub.load = real


def _torchvision_ref(up: Upstream) -> dict:
    import torchvision

    return up.ref("torchvision", "torchvision/models/resnet.py (WSL's ResNet class)", version=torchvision.__version__)


def midas(up: Upstream, out: Path) -> None:
    import timm

    sys.path.insert(0, str(up.args.midas))
    dpt = importlib.import_module("midas.dpt_depth")
    net = importlib.import_module("midas.midas_net")
    small = importlib.import_module("midas.midas_net_custom")
    timm_ref = up.ref("timm", version=timm.__version__)
    with _local_hub(up):
        builds = {
            "dpt_large": (lambda: dpt.DPTDepthModel(path=None, backbone="vitl16_384", non_negative=True),
                          "DPTDepthModel(path=None, backbone='vitl16_384', non_negative=True)", [timm_ref]),
            "dpt_hybrid": (lambda: dpt.DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True),
                           "DPTDepthModel(path=None, backbone='vitb_rn50_384', non_negative=True)", [timm_ref]),
            "dpt_hybrid_nyu": (lambda: dpt.DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True),
                               "DPTDepthModel(path=None, backbone='vitb_rn50_384', non_negative=True) (as DD builds it)",
                               [timm_ref]),
            "midas_v21": (lambda: net.MidasNet(None, non_negative=True), "MidasNet(None, non_negative=True)",
                          [up.ref("wsl", "hubconf.py resnext101_32x8d_wsl"), _torchvision_ref(up)]),
            "midas_v21_small": (lambda: small.MidasNet_small(None, features=64, backbone="efficientnet_lite3",
                                                             exportable=True, non_negative=True,
                                                             blocks={"expand": True}),
                                "MidasNet_small(None, features=64, backbone='efficientnet_lite3', exportable=True, "
                                "non_negative=True, blocks={'expand': True})",
                                [up.ref("gen-efficientnet", "hubconf.py tf_efficientnet_lite3")]),
        }
        for name, (build, definition, extra) in builds.items():
            # timm's hybrid embedding runs its backbone once at construction, so these build on CPU.
            model = build()
            notes = ("DD 5.2 clones MiDaS unpinned (April-May 2022: commit f82ee7a); its midas/ code is identical "
                     "at tag v3 (f28885a), which DD pinned later. timm is the version `pip install timm` gave then.")
            if name == "dpt_hybrid_nyu":
                extra, notes = extra + [_dpt_repo_cross_check(up, model)], notes + (
                    " The NYU file was trained with DPT's own DPTDepthModel (github.com/isl-org/DPT); built as "
                    "DPT's run_monodepth.py builds it, it has exactly these keys and shapes too.")
            _write(out, name, model.state_dict(), [up.ref("midas", "midas/"), *extra], definition, notes)


def _dpt_repo_cross_check(up: Upstream, midas_model: torch.nn.Module) -> dict:
    sys.path.insert(0, str(up.args.dpt))
    dpt_models = importlib.import_module("dpt.models")
    theirs = dpt_models.DPTDepthModel(path=None, scale=0.000305, shift=0.1378, invert=True,
                                      backbone="vitb_rn50_384", non_negative=True, enable_attention_hooks=False)
    assert _tensors(theirs.state_dict()) == _tensors(midas_model.state_dict()), "DPT and MiDaS hybrids differ"
    return up.ref("dpt", "dpt/models.py DPTDepthModel (cross-check: identical layout)")


def adabins(up: Upstream, out: Path) -> None:
    sys.path.insert(0, str(up.args.adabins))
    with _local_hub(up):
        models = importlib.import_module("models")
        model = models.UnetAdaptiveBins.build(n_bins=256, min_val=0.001, max_val=10)
    _write(out, "adabins_nyu", model.state_dict(),
           [up.ref("adabins", "models/unet_adaptive_bins.py"),
            up.ref("gen-efficientnet", "hubconf.py tf_efficientnet_b5_ap")],
           "UnetAdaptiveBins.build(n_bins=256, min_val=0.001, max_val=10) (InferenceHelper(dataset='nyu'))",
           "The file is a training checkpoint: these keys sit under 'model' with DataParallel's 'module.' "
           "prefix; AdaBins' model_io strips it (disco-spec too).")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    for opt in ("guided-diffusion", "dd-secondary", "clip", "midas", "dpt", "gen-efficientnet", "wsl", "adabins",
                "timm"):
        p.add_argument(f"--{opt}", type=Path, required=True)
    p.add_argument("--commit", action="append", default=[], help="NAME=SHA for each upstream repository")
    p.add_argument("--only", nargs="*", default=None)
    args = p.parse_args(argv)
    sys.path.insert(0, str(args.timm))
    args.out.mkdir(parents=True, exist_ok=True)
    up = Upstream(args)
    steps = {"unets": unets, "unets57": unets57, "secondary": secondary, "clips": clips, "lpips": lpips_vgg, "midas": midas,
             "adabins": adabins}
    for key, step in steps.items():
        if args.only is None or key in args.only:
            step(up, args.out)


if __name__ == "__main__":
    main()
