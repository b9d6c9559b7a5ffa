"""Registry contents, and that our architectures reproduce the real checkpoints' layouts."""

from __future__ import annotations

import re

import pytest
import torch

from disco_spec import errors
from disco_spec.models import architectures
from disco_spec.models.registry import REGISTRY, get_entry, list_models
from disco_spec.models.secondary import SecondaryDiffusionImageNet2

pytestmark = pytest.mark.render

# DD's CLIP checkboxes (spelled out here rather than imported, so these tests stand alone)
DD_CLIP_NAMES = ("ViTB32", "ViTB16", "ViTL14", "RN50", "RN50x4", "RN50x16", "RN50x64", "RN101")

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_every_entry_is_well_formed():
    roles = {"diffusion", "secondary", "clip", "lpips", "depth"}
    for e in list_models():
        assert e.role in roles, e.name
        # Pinned (full SHA-256), or a real entry nobody publishes a full hash for: then the
        # upstream's 8-hex prefix from the file name is checked instead (the four extra MiDaS models).
        assert HEX64.match(e.sha256) or (not e.tiny and e.sha256 == "" and re.fullmatch(r"[0-9a-f]{8}", e.sha256_prefix)
                                         and e.sha256_prefix in e.filename), e.name
        assert e.pinned == bool(HEX64.match(e.sha256)), e.name
        assert e.filename and "/" not in e.filename
        assert e.tiny == (not e.urls), e.name  # tiny models are generated, real ones downloaded
        assert e.tiny == e.name.startswith("tiny-")


def test_dd_diffusion_entries():
    e512 = get_entry("512x512_diffusion_uncond_finetune_008100")
    assert e512.sha256 == "9c111ab89e214862b76e1fa6a1b3f1d329b1a88281885943d2cdbe357ad57648"
    assert e512.urls[0] == "https://v-diffusion.s3.us-west-2.amazonaws.com/512x512_diffusion_uncond_finetune_008100.pt"
    assert e512.config["image_size"] == 512
    e256 = get_entry("256x256_diffusion_uncond")
    # the real hash, not DD 5.2's copy-pasted one
    assert e256.sha256 == "a37c32fffd316cd494cf3f35b339936debdc1576dad13fe57c42399a5dbc78b1"
    assert "983e3de6" in e256.description
    assert e256.size == 2_211_383_297
    for e in (e512, e256):
        c = e.config
        assert (c["num_channels"], c["num_head_channels"], c["num_res_blocks"]) == (256, 64, 2)
        assert c["learn_sigma"] and c["resblock_updown"] and c["use_scale_shift_norm"] and c["rescale_timesteps"]
        assert c["attention_resolutions"] == "32, 16, 8" and c["noise_schedule"] == "linear"
        assert not c["class_cond"]
    sec = get_entry("secondary_model_imagenet_2")
    assert sec.sha256 == "983e3de6f95c88c81b2ca7ebb2c217933be1973b1ff058776b970f901584613a"
    assert sec.filename == "secondary_model_imagenet_2.pth" and sec.config["c"] == 64


def test_clip_entries_match_dd_names_and_urls():
    clip = [e for e in list_models() if e.role == "clip" and not e.tiny]
    assert {e.name for e in clip} == set(DD_CLIP_NAMES)
    res = {"ViTB32": 224, "ViTB16": 224, "ViTL14": 224, "RN50": 224, "RN101": 224,
           "RN50x4": 288, "RN50x16": 384, "RN50x64": 448}
    for e in clip:
        (url,) = e.urls
        m = re.fullmatch(r"https://openaipublic\.azureedge\.net/clip/models/([0-9a-f]{64})/(.+\.pt)", url)
        assert m and m.group(1) == e.sha256 and m.group(2) == e.filename
        assert e.config["input_resolution"] == res[e.name]
        assert e.config["format"] == "openai-jit"


def test_lpips_entry():
    e = get_entry("lpips-vgg")
    assert e.urls == ("https://download.pytorch.org/models/vgg16-397923af.pth",)
    assert e.sha256.startswith("397923af") and e.config["net"] == "vgg"


def test_get_entry_suggests():
    with pytest.raises(errors.ModelError, match="Did you mean 'ViTB32'"):
        get_entry("ViTB23")
    with pytest.raises(errors.ModelError, match="256x256_diffusion_uncond"):
        get_entry("256x256_diffusion_uncnd")
    with pytest.raises(errors.ModelError, match="unknown model"):
        get_entry("zzzzzz")


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        REGISTRY["x"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        get_entry("tiny-uncond").config["image_size"] = 1  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# Key layouts of the real checkpoints (checked structurally; the real files are not available)
# ---------------------------------------------------------------------------------------------


def _expected_secondary_keys(c: int) -> dict[str, tuple[int, ...]]:
    """Written out by hand from disco.py:1611 (SecondaryDiffusionImageNet2), independently of secondary.py."""
    L1 = "net.2.main."          # noqa: N806 - level prefixes, outermost skip first
    L2 = L1 + "3.main."         # noqa: N806
    L3 = L2 + "3.main."         # noqa: N806
    L4 = L3 + "3.main."         # noqa: N806
    L5 = L4 + "3.main."         # noqa: N806 - innermost
    convs = {
        "net.0.0": (c, 19), "net.1.0": (c, c),
        L1 + "1.0": (2 * c, c), L1 + "2.0": (2 * c, 2 * c), L1 + "4.0": (2 * c, 4 * c), L1 + "5.0": (c, 2 * c),
        L2 + "1.0": (2 * c, 2 * c), L2 + "2.0": (2 * c, 2 * c), L2 + "4.0": (2 * c, 4 * c), L2 + "5.0": (2 * c, 2 * c),
        L3 + "1.0": (4 * c, 2 * c), L3 + "2.0": (4 * c, 4 * c), L3 + "4.0": (4 * c, 8 * c), L3 + "5.0": (2 * c, 4 * c),
        L4 + "1.0": (4 * c, 4 * c), L4 + "2.0": (4 * c, 4 * c), L4 + "4.0": (4 * c, 8 * c), L4 + "5.0": (4 * c, 4 * c),
        L5 + "1.0": (8 * c, 4 * c), L5 + "2.0": (8 * c, 8 * c), L5 + "3.0": (8 * c, 8 * c), L5 + "4.0": (4 * c, 8 * c),
        "net.3.0": (c, 2 * c), "net.4": (3, c),
    }
    keys = {"timestep_embed.weight": (8, 1)}
    for name, (cout, cin) in convs.items():
        keys[f"{name}.weight"] = (cout, cin, 3, 3)
        keys[f"{name}.bias"] = (cout,)
    return keys


@pytest.mark.parametrize("c", [64, 8])
def test_secondary_key_layout(c):
    with torch.device("meta"):
        model = SecondaryDiffusionImageNet2(c)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == _expected_secondary_keys(c)
    if c == 64:
        assert len(got) == 49
        assert sum(torch.Size(s).numel() for s in got.values()) == 13_841_547


def _meta_unet(name):
    with torch.device("meta"):
        return architectures.unet_only(get_entry(name).config)


def test_guided_diffusion_256_layout_matches_file_size():
    """552,814,086 fp32 parameters; the published file is that many * 4 bytes plus zip/pickle framing."""
    sd = _meta_unet("256x256_diffusion_uncond").state_dict()
    n = sum(v.numel() for v in sd.values())
    assert n == 552_814_086
    overhead = get_entry("256x256_diffusion_uncond").size - 4 * n
    assert 0 < overhead < 1000 * len(sd)  # well under 1 KB of framing per tensor
    assert "input_blocks.0.0.weight" in sd and sd["out.2.weight"].shape == (6, 256, 3, 3)
    assert sd["input_blocks.0.0.weight"].shape == (256, 3, 3, 3)


def test_guided_diffusion_512_layout():
    sd = _meta_unet("512x512_diffusion_uncond_finetune_008100").state_dict()
    assert sum(v.numel() for v in sd.values()) == 557_973_638
    # channel_mult (0.5, 1, 1, 2, 2, 4, 4): first conv has 128 channels
    assert sd["input_blocks.0.0.weight"].shape == (128, 3, 3, 3)
    assert sd["out.2.weight"].shape == (6, 128, 3, 3)
    # attention (qkv) with 64-channel heads sits at the 32/16/8-pixel levels only
    qkv = sorted(k for k in sd if k.endswith("qkv.weight"))
    assert qkv and all(sd[k].shape[0] % (3 * 64) == 0 for k in qkv)


def _openai_clip_meta(embed_dim, vision, text_width=512, text_layers=12):
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=text_width, heads=text_width // 64,
                       layers=text_layers)
    with torch.device("meta"):
        return CLIP(embed_dim, vision_cfg=CLIPVisionCfg(**vision), text_cfg=text, quick_gelu=True)


def _expected_openai_vit_keys(vision_layers: int, text_layers: int) -> set[str]:
    """OpenAI CLIP (ViT) state-dict keys, written out from OpenAI's model definition."""
    block = ["attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
             "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
             "mlp.c_proj.bias", "ln_2.weight", "ln_2.bias"]
    keys = {"positional_embedding", "text_projection", "logit_scale", "token_embedding.weight",
            "ln_final.weight", "ln_final.bias", "visual.class_embedding", "visual.positional_embedding",
            "visual.proj", "visual.conv1.weight", "visual.ln_pre.weight", "visual.ln_pre.bias",
            "visual.ln_post.weight", "visual.ln_post.bias"}
    keys |= {f"transformer.resblocks.{i}.{b}" for i in range(text_layers) for b in block}
    keys |= {f"visual.transformer.resblocks.{i}.{b}" for i in range(vision_layers) for b in block}
    return keys


def test_open_clip_builds_openai_vit_b32_layout():
    model = _openai_clip_meta(512, dict(layers=12, width=768, patch_size=32, image_size=224))
    assert set(model.state_dict()) == _expected_openai_vit_keys(12, 12)
    # OpenAI's published parameter count for ViT-B/32
    assert sum(p.numel() for p in model.parameters()) == 151_277_313


def test_open_clip_builds_openai_rn50_layout():
    model = _openai_clip_meta(1024, dict(layers=(3, 4, 6, 3), width=64, image_size=224))
    assert sum(p.numel() for p in model.parameters()) == 102_007_137  # OpenAI's count for RN50
    sd = model.state_dict()
    assert sd["visual.attnpool.positional_embedding"].shape == (50, 2048)
    assert "visual.layer4.2.bn3.running_var" in sd and "visual.conv3.weight" in sd
