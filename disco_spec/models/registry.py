"""Every model disco-spec knows by name: where its file comes from, its SHA-256, and its config.

Real entries carry the URLs and hashes DD 5.2 uses (disco.py:1712-1722 (download_models)
and the libraries DD loads its CLIP, LPIPS and depth models with). Tiny entries
are toy-sized networks of the same architectures, generated deterministically on first use
(models/tiny.py), so tests and CPU demos exercise the real loading code without downloads. Their
SHA-256 values are pinned here: if generation ever produces other bytes, loading them fails loudly.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from .. import errors
from .registry_clip import OPENAI_CLIP_ARCHITECTURES
# The diffusion models DD 5.4-5.7 added (their disco.py's diff_model_map and model configs).
from .registry_dd57 import DD57_DIFFUSION, KALIYUGA_UNET, PORTRAIT_UNET
# Depth models' configs (models/depth*.py, docs/depth-models.md).
from .registry_depth import (ADABINS_NYU, DPT_HYBRID, DPT_LARGE, MIDAS_OTHERS, MIDAS_V21,
                             MIDAS_V21_SMALL)

if TYPE_CHECKING:  # models.types imports torch; validate reads the registry and must not
    from .types import ResolvedWeights

ROLES = ("diffusion", "secondary", "clip", "lpips", "depth")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    tiny: bool = False
    description: str = ""
    # Only for entries whose full SHA-256 nobody publishes (sha256 == ""): the hash prefix upstream
    # publishes in the file name, which the file's SHA-256 must start with (models/resolve.py).
    sha256_prefix: str = ""

    @property
    def pinned(self) -> bool:
        """Whether the registry pins the file's full SHA-256 (else only `sha256_prefix` is checked)."""
        return bool(self.sha256)


# DD's UNet overrides on top of guided-diffusion's model_and_diffusion_defaults()
# (disco.py:1815-1851 (ModelSettings cell)). diffusion_steps / timestep_respacing / use_checkpoint / use_fp16
# are set per render (disco.py:2401-2406 (DoTheRun cell)).
_DD_UNET = {
    "attention_resolutions": "32, 16, 8",
    "class_cond": False,
    "rescale_timesteps": True,
    "learn_sigma": True,
    "noise_schedule": "linear",
    "num_channels": 256,
    "num_head_channels": 64,
    "num_res_blocks": 2,
    "resblock_updown": True,
    "use_scale_shift_norm": True,
}

_OPENAI_CLIP = "https://openaipublic.azureedge.net/clip/models"

# DD checkbox name -> (OpenAI model name, file name, SHA-256 (the hex in the URL), input resolution)
_CLIP_TABLE = {
    "ViTB32": ("ViT-B/32", "ViT-B-32.pt", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", 224),
    "ViTB16": ("ViT-B/16", "ViT-B-16.pt", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", 224),
    "ViTL14": ("ViT-L/14", "ViT-L-14.pt", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", 224),
    "RN50": ("RN50", "RN50.pt", "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", 224),
    "RN50x4": ("RN50x4", "RN50x4.pt", "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", 288),
    "RN50x16": ("RN50x16", "RN50x16.pt", "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", 384),
    "RN50x64": ("RN50x64", "RN50x64.pt", "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c", 448),
    "RN101": ("RN101", "RN101.pt", "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", 224),
}

# SHA-256 of the LPIPS v0.1 linear heads shipped inside the `lpips` package (weights/v0.1/<net>.pth);
# checked before they are loaded, like any other weight file.
LPIPS_HEADS_SHA256 = {
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "squeeze": "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
}

# Tiny checkpoints: sha256 and size of the bytes models/tiny.py generates (pinned; see its tests).
TINY_PINS = {
    "tiny-uncond": ("564b50557fd0137d2491c0f46bb9030daf0cf01461472395d51d2a439963aa65", 5_710_704),
    "tiny-portrait": ("7e7cb52f8a453871f5e32663a0e259be80c2ea279a8a1c8e756f866ba8cf742e", 5_507_768),
    "tiny-kaliyuga": ("76355766848798e436329c75e7bf07f339383ecc459d09f4cb394bc99d08bfb3", 4_475_816),
    "tiny-secondary": ("dc7a15c81cddeb5f56bf35e16ea7b2a282e9e7b1590310b1cf0e02fe6e1ed472", 877_588),
    "tiny-clip": ("41a580317481afa938368dcb7f425d9f3051786f7ac0d98b41fa1dd76a14e044", 13_562_540),
    "tiny-clip-rn": ("6ba33d255390574b904f359507aaaa6163795291c81777032c9ad306fee2a8d4", 14_478_452),
    "tiny-lpips": ("8d370dca3d497ddaf4c8d7b1333717145cd9e0482b5bcfa4971d6c5f9534ffde", 2_904_360),
    "tiny-midas": ("683d38d6b7136955d0e3a162e4ededb9e3325e6b4983a231e1621e075a4e2882", 1_428_548),
    "tiny-adabins": ("92c8b3404cdb1a4e56bf0084213e85b360cea85b5b882e53ba59d85413004e3c", 1_154_888),
    "tiny-dpt-hybrid": ("b66cb6bb173bfd837fef535150efe5c9b0a1bb623be18c4eddcfb36f52600da7", 1_692_628),
    "tiny-midas-v21": ("d34b7b97c6bb87542dfe5f15427f7473e46cfd0e012fe877a0611fa6db07eb9e", 921_924),
    "tiny-midas-v21-small": ("c473ca90b3cffb7f874407db5fe808fdef6c110657873b75b6dc6d620d8ca771", 1_407_500),
}

def _entries() -> list[ModelEntry]:
    out = [
        ModelEntry(
            name="512x512_diffusion_uncond_finetune_008100",
            role="diffusion",
            filename="512x512_diffusion_uncond_finetune_008100.pt",
            urls=(
                "https://v-diffusion.s3.us-west-2.amazonaws.com/512x512_diffusion_uncond_finetune_008100.pt",
                "https://huggingface.co/lowlevelware/512x512_diffusion_unconditional_ImageNet/resolve/main/"
                "512x512_diffusion_uncond_finetune_008100.pt",
                "https://the-eye.eu/public/AI/models/512x512_diffusion_unconditional_ImageNet/"
                "512x512_diffusion_uncond_finetune_008100.pt",
            ),
            sha256="9c111ab89e214862b76e1fa6a1b3f1d329b1a88281885943d2cdbe357ad57648",
            config={**_DD_UNET, "image_size": 512},
            description="OpenAI's 256px unconditional ImageNet UNet fine-tuned at 512px by Katherine Crowson "
            "(DD's default diffusion model).",
        ),
        ModelEntry(
            name="256x256_diffusion_uncond",
            role="diffusion",
            filename="256x256_diffusion_uncond.pt",
            urls=(
                "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt",
                "https://www.dropbox.com/s/9tqnqo930mpnpcn/256x256_diffusion_uncond.pt",
            ),
            sha256="a37c32fffd316cd494cf3f35b339936debdc1576dad13fe57c42399a5dbc78b1",
            size=2_211_383_297,
            config={**_DD_UNET, "image_size": 256},
            description="OpenAI's 256px unconditional ImageNet UNet. DD 5.2 lists the wrong SHA-256 for it "
            "(983e3de6..., a copy of the secondary model's hash), so its check always fails and re-downloads; "
            "this is the file's real hash (fixed in the notebook on 2022-06-22).",
        ),
        ModelEntry(
            name="secondary_model_imagenet_2",
            role="secondary",
            filename="secondary_model_imagenet_2.pth",
            urls=(
                "https://v-diffusion.s3.us-west-2.amazonaws.com/secondary_model_imagenet_2.pth",
                "https://the-eye.eu/public/AI/models/v-diffusion/secondary_model_imagenet_2.pth",
                "https://huggingface.co/spaces/huggi/secondary_model_imagenet_2.pth/resolve/main/"
                "secondary_model_imagenet_2.pth",
            ),
            sha256="983e3de6f95c88c81b2ca7ebb2c217933be1973b1ff058776b970f901584613a",
            config={"c": 64},
            description="Katherine Crowson's small v-objective ImageNet model (DD's secondary model, fp32).",
        ),
    ]
    for dd_name, (url, sha, config, text) in DD57_DIFFUSION.items():
        out.append(ModelEntry(name=dd_name, role="diffusion", filename=url.rsplit("/", 1)[1], urls=(url,),
                              sha256=sha, config=config, description=text))
    for dd_name, (oa_name, fname, sha, res) in _CLIP_TABLE.items():
        out.append(
            ModelEntry(
                name=dd_name,
                role="clip",
                filename=fname,
                urls=(f"{_OPENAI_CLIP}/{sha}/{fname}",),
                sha256=sha,
                config={"format": "openai-jit", "openai_name": oa_name, "input_resolution": res,
                        "architecture": OPENAI_CLIP_ARCHITECTURES[dd_name]},
                description=f"OpenAI CLIP {oa_name} (TorchScript archive; fp16 on CUDA, fp32 on CPU, as DD).",
            )
        )
    out.append(
        ModelEntry(
            name="lpips-vgg",
            role="lpips",
            filename="vgg16-397923af.pth",
            urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
            sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            config={"format": "torchvision-backbone", "net": "vgg", "version": "0.1",
                    "heads_sha256": LPIPS_HEADS_SHA256["vgg"]},
            description="LPIPS v0.1 (DD's init-image loss): torchvision's VGG16 ImageNet backbone (this file) "
            "plus the linear heads shipped inside the lpips package.",
        )
    )
    out.append(
        ModelEntry(
            name="dpt_large",
            role="depth",
            filename="dpt_large-midas-2f21e586.pt",
            urls=(
                "https://github.com/intel-isl/DPT/releases/download/1_0/dpt_large-midas-2f21e586.pt",
                "https://github.com/isl-org/MiDaS/releases/download/v3/dpt_large-midas-2f21e586.pt",
            ),
            sha256="2f21e586477d90cb9624c7eef5df7891edca49a1c4795ee2cb631fd4daa6ca69",
            config=DPT_LARGE,
            description="MiDaS v3 DPT-Large (ViT-L/16 384), DD's default depth model. DD lists no checksum; "
            "the hash is the third-party one matching MiDaS' 2f21e586 file-name prefix.",
        )
    )
    for name, filename, config, urls, text in MIDAS_OTHERS:
        out.append(
            ModelEntry(
                name=name, role="depth", filename=filename, urls=urls, sha256="",
                sha256_prefix=filename.rsplit("-", 1)[1].split(".")[0], config=config,
                description=f"{text} Unpinned: DD lists no checksum and nobody publishes the full SHA-256; "
                "the file name's prefix is checked (as MiDaS' hub loader does) and the full hash recorded.",
            )
        )
    out.append(
        ModelEntry(
            name="adabins_nyu",
            role="depth",
            filename="AdaBins_nyu.pt",
            urls=("https://cloudflare-ipfs.com/ipfs/Qmd2mMnDLWePKmgfS8m6ntAg4nhV5VkUyAydYBp8cWWeB7/AdaBins_nyu.pt",),
            sha256="3c917d1b86d058918d4055e70b2cdb9696ec4967bb2d8f05c0051263c1ac9641",
            size=940_558_786,
            config=ADABINS_NYU,
            description="AdaBins trained on NYU Depth v2 (EfficientNet-B5 encoder, 256 bins, 0.001-10): a training "
            "checkpoint whose 'model' entry holds the weights. DD lists no checksum (third-party hash).",
        )
    )
    tiny = [
        ModelEntry(
            name="tiny-uncond",
            role="diffusion",
            filename="tiny-uncond.safetensors",
            urls=(),
            sha256="",
            config={**_DD_UNET, "image_size": 64, "num_channels": 32, "num_res_blocks": 1,
                    "channel_mult": "1,2,2", "num_head_channels": 32},
            tiny=True,
            description="Toy guided-diffusion UNet with DD's flags (64px, 32 channels, random weights) for tests.",
        ),
        ModelEntry(
            name="tiny-portrait",
            role="diffusion",
            filename="tiny-portrait.safetensors",
            urls=(),
            sha256="",
            config={**PORTRAIT_UNET, "image_size": 64, "num_channels": 32, "num_res_blocks": 1,
                    "channel_mult": "1,2,2", "attention_resolutions": "16, 8"},
            tiny=True,
            description="Toy UNet with portrait_generator_v001's flags (4 heads, no per-head width), random weights.",
        ),
        ModelEntry(
            name="tiny-kaliyuga",
            role="diffusion",
            filename="tiny-kaliyuga.safetensors",
            urls=(),
            sha256="",
            config={**KALIYUGA_UNET, "image_size": 64, "num_channels": 32, "num_res_blocks": 1,
                    "channel_mult": "1,2,2"},
            tiny=True,
            description="Toy UNet with the KaliYuga models' flags (pixel art, watercolor, pulp sci-fi: one head at "
            "16, no scale-shift norm, no resblock up/down), random weights.",
        ),
        ModelEntry(
            name="tiny-secondary",
            role="secondary",
            filename="tiny-secondary.safetensors",
            urls=(),
            sha256="",
            config={"c": 8},
            tiny=True,
            description="Secondary model architecture at base width 8, random weights, for tests.",
        ),
        ModelEntry(
            name="tiny-clip",
            role="clip",
            filename="tiny-clip.safetensors",
            urls=(),
            sha256="",
            config={"format": "openai-state-dict", "input_resolution": 32, "embed_dim": 64,
                    "vision": {"layers": 2, "width": 64, "patch_size": 8, "image_size": 32},
                    "text": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2}},
            tiny=True,
            description="Toy CLIP (ViT 32px/patch 8, width 64, 2 layers; 2-layer text tower with CLIP's "
            "tokenizer), random weights, stored in OpenAI's state-dict layout.",
        ),
        ModelEntry(
            name="tiny-clip-rn",
            role="clip",
            filename="tiny-clip-rn.safetensors",
            urls=(),
            sha256="",
            config={"format": "openai-state-dict", "input_resolution": 32, "embed_dim": 64,
                    "vision": {"layers": [1, 1, 1, 1], "width": 8, "image_size": 32},
                    "text": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2}},
            tiny=True,
            description="Toy CLIP with a ModifiedResNet vision tower (32px, width 8), random weights.",
        ),
        ModelEntry(
            name="tiny-lpips",
            role="lpips",
            filename="tiny-lpips.safetensors",
            urls=(),
            sha256="",
            config={"format": "lpips-full", "net": "squeeze", "version": "0.1"},
            tiny=True,
            description="The lpips package's LPIPS network (SqueezeNet trunk) with random trunk and heads.",
        ),
        ModelEntry(
            name="tiny-midas",
            role="depth",
            filename="tiny-midas.safetensors",
            urls=(),
            sha256="",
            config={**DPT_LARGE, "vit_img_size": 64, "vit_embed_dim": 64, "vit_depth": 4, "vit_num_heads": 2,
                    "vit_num_classes": 10, "hooks": (0, 1, 2, 3), "reassemble": (8, 16, 32, 32), "features": 16,
                    "head_features_2": 8, "net_size": 64},
            tiny=True,
            description="MiDaS DPT code with a toy ViT (64px, patch 16, width 64, 4 blocks), random weights.",
        ),
        ModelEntry(
            name="tiny-dpt-hybrid",
            role="depth",
            filename="tiny-dpt-hybrid.safetensors",
            urls=(),
            sha256="",
            # GroupNorm keeps its 32 groups, so the trunk's bottlenecks need at least 32 channels.
            config={**DPT_HYBRID, "vit_img_size": 64, "vit_embed_dim": 64, "vit_depth": 4, "vit_num_heads": 2,
                    "vit_num_classes": 10, "hooks": (0, 1, 2, 3), "reassemble": (128, 128, 32, 32),
                    "resnet_layers": (1, 1, 1), "resnet_channels": (128, 128, 128), "resnet_stem": 32,
                    "features": 16, "head_features_2": 8, "net_size": 64},
            tiny=True,
            description="MiDaS DPT-Hybrid code with a toy R50 trunk (1 block per stage) and ViT (64px, width 64, "
            "4 blocks), random weights.",
        ),
        ModelEntry(
            name="tiny-midas-v21",
            role="depth",
            filename="tiny-midas-v21.safetensors",
            urls=(),
            sha256="",
            config={**MIDAS_V21, "resnet_layers": (1, 1, 1, 1), "resnet_channels": (8, 16, 32, 64), "cardinality": 2,
                    "base_width": 32, "stem_width": 8, "features": 16, "head_features_1": 8, "net_size": 64},
            tiny=True,
            description="MiDaS v2.1 code with a toy ResNeXt (1 block per stage, 2 groups), random weights.",
        ),
        ModelEntry(
            name="tiny-midas-v21-small",
            role="depth",
            filename="tiny-midas-v21-small.safetensors",
            urls=(),
            sha256="",
            config={**MIDAS_V21_SMALL, "channel_multiplier": 0.25, "depth_multiplier": 0.25, "features": 8,
                    "net_size": 64},
            tiny=True,
            description="MiDaS v2.1 small code with a TF EfficientNet-Lite at channel/depth x0.25, random weights.",
        ),
        ModelEntry(
            name="tiny-adabins",
            role="depth",
            filename="tiny-adabins.safetensors",
            urls=(),
            sha256="",
            config={**ADABINS_NYU, "channel_multiplier": 0.25, "depth_multiplier": 0.25, "decoder_features": 64,
                    "decoder_out": 16, "embedding_dim": 16, "n_query_channels": 16, "num_heads": 2,
                    "dim_feedforward": 32, "num_layers": 2, "regressor_hidden": 32, "n_bins": 16},
            tiny=True,
            description="AdaBins code with a TF EfficientNet at channel/depth x0.25 and a small mini-ViT, "
            "random weights.",
        ),
    ]
    for e in tiny:
        sha, size = TINY_PINS[e.name]
        out.append(_replace(e, sha256=sha, size=size))
    return out


def _replace(entry: ModelEntry, **changes: Any) -> ModelEntry:
    from dataclasses import replace

    return replace(entry, **changes)


def _freeze(entry: ModelEntry) -> ModelEntry:
    # Configs are shared module-level data; make accidental mutation impossible.
    return _replace(entry, config=MappingProxyType(dict(entry.config)))


REGISTRY: Mapping[str, ModelEntry] = MappingProxyType({e.name: _freeze(e) for e in _entries()})


def get_entry(name: str) -> ModelEntry:
    """The registry entry called `name`; unknown names get a 'did you mean' suggestion."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        pass
    close = difflib.get_close_matches(str(name), list(REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise errors.ModelError(
        f"unknown model {name!r}.{hint} Known models: {', '.join(REGISTRY)} (see `disco-spec models list`)."
    )


def list_models() -> list[ModelEntry]:
    """All registry entries, real ones first, in a stable order."""
    return list(REGISTRY.values())


def config_for(weights: ResolvedWeights, config: Mapping[str, Any] | None, default: str) -> Mapping[str, Any]:
    """The config to build `weights`' architecture with: the one given, else its registry entry's (when it is
    a model of the same role), else the `default` entry's (a custom file of a known architecture)."""
    if config is not None:
        return config
    entry = REGISTRY.get(weights.name)
    return (entry if entry is not None and entry.role == weights.role else REGISTRY[default]).config
