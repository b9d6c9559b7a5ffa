"""Loaders on the tiny models (CPU): shapes, DD's respacing, precision/grad settings, error paths."""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from disco_spec import errors
from disco_spec.models.clip import load_clip, strict_tokenize
from disco_spec.models.diffusion import diffusion_entry_config, load_diffusion
from disco_spec.models.lpips import load_lpips
from disco_spec.models.resolve import resolve_weights
from disco_spec.models.secondary import load_secondary
from disco_spec.models.registry import TINY_PINS, get_entry
from disco_spec.models.types import ClipBundle


# Each module gets its own model cache (conftest: module_cache / cache).
pytestmark = pytest.mark.usefixtures("cache")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _tiny_unet(steps=250):
    w = resolve_weights("tiny-uncond", "diffusion")
    return load_diffusion(w, get_entry("tiny-uncond").config, steps=steps, use_checkpoint=False,
                          use_fp16=False, device="cpu")


# ---------------------------------------------------------------------------------------------
# Diffusion
# ---------------------------------------------------------------------------------------------


def test_tiny_unet_forward_shape_and_grad_flags():
    unet, _ = _tiny_unet()
    x = torch.randn(1, 3, 64, 64, generator=_gen())
    out = unet(x, torch.tensor([999.0]))
    assert out.shape == (1, 6, 64, 64) and torch.isfinite(out).all()
    assert not unet.training
    for name, p in unet.named_parameters():
        assert p.requires_grad == any(s in name for s in ("qkv", "norm", "proj")), name
        assert p.dtype == torch.float32
    assert any(p.requires_grad for p in unet.parameters())


@pytest.mark.parametrize(
    "steps,n,stride",
    [(250, 1000, 4), (150, 900, 6), (300, 900, 3), (600, 600, 1), (1000, 1000, 1), (2000, 2000, 1)],
)
def test_respacing_matches_dd(steps, n, stride):
    from guided_diffusion.respace import space_timesteps

    _, diffusion = _tiny_unet(steps)
    assert diffusion.original_num_steps == n
    assert diffusion.num_timesteps == steps
    assert diffusion.timestep_map == sorted(space_timesteps(n, f"ddim{steps}")) == list(range(0, n, stride))
    # linear schedule rescaled to N steps; respaced alpha-bars are the base ones at the kept steps
    s = 1000 / n
    base = np.cumprod(1.0 - np.linspace(0.0001 * s, 0.02 * s, n, dtype=np.float64))
    np.testing.assert_allclose(diffusion.alphas_cumprod, base[::stride], rtol=1e-12)
    # the model sees tau_k * 1000 / N (rescale_timesteps=True)
    seen = []
    wrapped = diffusion._wrap_model(lambda x, t, **kw: seen.append(t) or x)
    k = steps // 2
    wrapped(torch.zeros(1), torch.tensor([k]))
    assert seen[0].item() == pytest.approx(k * stride * 1000 / n)


def test_diffusion_entry_config():
    assert diffusion_entry_config("tiny-uncond")["num_channels"] == 32
    assert diffusion_entry_config(SimpleNamespace(path="x", sha256="0" * 64, config="256x256_diffusion_uncond"))[
        "image_size"] == 256
    with pytest.raises(errors.ModelError, match="not a diffusion"):
        diffusion_entry_config(SimpleNamespace(path="x", sha256="0" * 64, config="tiny-clip"))


def test_one_step_cannot_be_respaced():
    # guided-diffusion finds no stride giving exactly 1 of 1000 steps; reported, not a traceback
    with pytest.raises(errors.ModelError, match="cannot set up 1 steps"):
        _tiny_unet(1)


def test_custom_checkpoint_relative_to_spec_dir(tmp_path):
    w = resolve_weights("tiny-uncond", "diffusion")
    spec_dir = tmp_path / "specs"
    (spec_dir / "ckpt").mkdir(parents=True)
    shutil.copy(w.path, spec_dir / "ckpt" / "mine.safetensors")
    ref = SimpleNamespace(path="ckpt/mine.safetensors", sha256=w.sha256.upper(), config="tiny-uncond")
    cw = resolve_weights(ref, "diffusion", spec_dir=spec_dir)
    assert cw.name == "custom" and cw.sha256 == w.sha256
    unet, _ = load_diffusion(cw, diffusion_entry_config(ref), steps=25, use_checkpoint=False, use_fp16=False,
                             device="cpu")
    assert unet(torch.zeros(1, 3, 64, 64), torch.tensor([0.0])).shape == (1, 6, 64, 64)
    bad = SimpleNamespace(path="ckpt/mine.safetensors", sha256="0" * 64)
    with pytest.raises(errors.WeightsHashMismatch):
        resolve_weights(bad, "diffusion", spec_dir=spec_dir)
    with pytest.raises(errors.ModelError, match="not found"):
        resolve_weights(SimpleNamespace(path="nope.pt", sha256="0" * 64), "diffusion", spec_dir=spec_dir)


def test_torch_pickle_checkpoints_load_weights_only(tmp_path):
    """A .pt state dict (the real checkpoints' format) loads; a pickle with arbitrary objects is refused."""
    w = resolve_weights("tiny-secondary", "secondary")
    from safetensors.torch import load_file

    sd = load_file(w.path)
    good = tmp_path / "sec.pt"
    torch.save(sd, good)
    ref = SimpleNamespace(path=str(good), sha256=hashlib.sha256(good.read_bytes()).hexdigest())
    model = load_secondary(resolve_weights(ref, "secondary", spec_dir=str(tmp_path)), "cpu", config={"c": 8})
    assert model.net[4].weight.shape == (3, 8, 3, 3)
    evil = tmp_path / "evil.pt"
    torch.save({"x": SimpleNamespace(a=1)}, evil)
    ref = SimpleNamespace(path=str(evil), sha256=hashlib.sha256(evil.read_bytes()).hexdigest())
    with pytest.raises(errors.ModelError, match="cannot read checkpoint"):
        load_secondary(resolve_weights(ref, "secondary", spec_dir=str(tmp_path)), "cpu", config={"c": 8})


def test_missing_real_model_without_fetch_says_where_to_put_it(cache):
    with pytest.raises(errors.ModelError) as ei:
        resolve_weights("secondary_model_imagenet_2", "secondary", fetch=False)
    msg = str(ei.value)
    assert str(Path(cache).resolve() / "models" / "secondary_model_imagenet_2.pth") in msg
    assert "v-diffusion.s3" in msg


def test_wrong_role_is_refused():
    with pytest.raises(errors.ModelError, match="is a clip model"):
        resolve_weights("tiny-clip", "diffusion")


# ---------------------------------------------------------------------------------------------
# Secondary model
# ---------------------------------------------------------------------------------------------


def test_secondary_forward_v_objective():
    model = load_secondary(resolve_weights("tiny-secondary", "secondary"), "cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x = torch.randn(2, 3, 32, 32, generator=_gen(1))
    t = torch.tensor([0.3, 0.8])
    out = model(x, t)
    alpha = torch.cos(t * math.pi / 2).view(2, 1, 1, 1)
    sigma = torch.sin(t * math.pi / 2).view(2, 1, 1, 1)
    assert out.v.shape == out.pred.shape == out.eps.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out.pred, alpha * x - sigma * out.v)
    torch.testing.assert_close(out.eps, sigma * x + alpha * out.v)
    assert out.v.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# CLIP
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-clip-rn"])
def test_tiny_clip_embeddings(name):
    b = load_clip(name, "cpu")
    assert isinstance(b, ClipBundle) and b.input_resolution == 32 and b.name == name
    assert b.weights.sha256 == TINY_PINS[name][0]
    text = b.encode_text(["a lighthouse", "yellow color scheme", "x"])
    img = b.encode_image(b.normalize(torch.rand(4, 3, 32, 32, generator=_gen(2))))
    assert text.shape == (3, 64) and img.shape == (4, 64)
    assert text.dtype == img.dtype == torch.float32
    assert not torch.allclose(text[0], text[1])
    # gradients flow to the image, not the weights
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    b.encode_image(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(errors.ModelError, match="too long"):
        b.encode_text(["a " * 76])


def test_strict_tokenize_limits():
    ids = strict_tokenize(["a " * 75])  # 75 words + start + end = 77: fits exactly
    assert ids.shape == (1, 77) and ids[0, 0] == 49406 and ids[0, 76] == 49407
    with pytest.raises(errors.ModelError, match="78 tokens"):
        strict_tokenize(["a " * 76])


def _as_openai_jit(model: torch.nn.Module, path: Path) -> None:
    """A TorchScript archive laid out like OpenAI's CLIP releases (mask a constant, extra attributes)."""
    mask = model.attn_mask
    del model._buffers["attn_mask"]
    model.attn_mask = mask  # a plain attribute, traced as a constant (as in OpenAI's model)
    for k, v in {"input_resolution": 32, "context_length": 77, "vocab_size": 49408}.items():
        model.__dict__.pop(k, None)
        model.register_buffer(k, torch.tensor(v))
    traced = torch.jit.trace_module(
        model, {"encode_image": (torch.zeros(1, 3, 32, 32),), "encode_text": (torch.zeros(1, 77, dtype=torch.long),)}
    )
    torch.jit.save(traced, str(path))


@pytest.mark.slow
def test_openai_torchscript_archive_path(tmp_path):
    ref_bundle = load_clip("tiny-clip", "cpu")
    archive = tmp_path / "Tiny-OpenAI.pt"
    from disco_spec.models.architectures import tiny_clip
    from safetensors.torch import load_file

    model = tiny_clip(get_entry("tiny-clip").config)
    model.load_state_dict(load_file(ref_bundle.weights.path))
    _as_openai_jit(model.eval(), archive)
    w = resolve_weights(SimpleNamespace(path=str(archive), sha256=hashlib.sha256(archive.read_bytes()).hexdigest()),
                        "clip", spec_dir=str(tmp_path))
    b = load_clip(w, "cpu")
    assert b.input_resolution == 32
    prompts = ["a lighthouse", "blood red sea"]
    torch.testing.assert_close(b.encode_text(prompts), ref_bundle.encode_text(prompts))
    img = torch.rand(2, 3, 32, 32, generator=_gen(3))
    torch.testing.assert_close(b.encode_image(img), ref_bundle.encode_image(img))


def test_open_clip_arch_with_local_file(tmp_path, monkeypatch):
    import json

    import open_clip

    cfg = get_entry("tiny-clip").config
    arch = "disco-spec-test-tiny"
    (tmp_path / f"{arch}.json").write_text(json.dumps({
        "embed_dim": cfg["embed_dim"], "quick_gelu": True,
        "vision_cfg": dict(cfg["vision"]), "text_cfg": dict(cfg["text"]),
    }))
    open_clip.add_model_config(tmp_path / f"{arch}.json")
    src = resolve_weights("tiny-clip", "clip")
    local = tmp_path / "weights.safetensors"
    shutil.copy(src.path, local)
    ref = SimpleNamespace(name=None, arch=arch, pretrained="weights.safetensors", sha256=src.sha256)
    b = load_clip(ref, "cpu", spec_dir=tmp_path)
    assert b.name == f"{arch}:weights.safetensors" and b.weights.sha256 == src.sha256
    # open_clip-format files load as they are; tiny weights are fp16-exact, so OpenAI's fp16 round
    # trip in the registry path changes nothing and both give the same embeddings
    from safetensors.torch import load_file

    want = load_file(src.path)
    got = b.extra["module"].state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    torch.testing.assert_close(b.encode_text(["hello"]), load_clip("tiny-clip", "cpu").encode_text(["hello"]))
    with pytest.raises(errors.ModelError, match="sha256"):
        load_clip(SimpleNamespace(name=None, arch=arch, pretrained=str(local), sha256=None), "cpu")
    with pytest.raises(errors.WeightsHashMismatch):
        load_clip(SimpleNamespace(name=None, arch=arch, pretrained=str(local), sha256="1" * 64), "cpu", spec_dir=tmp_path)


def test_open_clip_tag_offline_is_a_model_error(monkeypatch):
    import open_clip.pretrained

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", offline)
    with pytest.raises(errors.ModelError, match="offline"):
        load_clip(SimpleNamespace(name=None, arch="ViT-B-32", pretrained="laion2b_s34b_b79k", sha256=None), "cpu")
    with pytest.raises(errors.ModelError, match="no pretrained tag"):
        load_clip(SimpleNamespace(name=None, arch="ViT-B-32", pretrained="no-such-tag", sha256=None), "cpu")
    with pytest.raises(errors.ModelError, match="Did you mean"):
        load_clip(SimpleNamespace(name=None, arch="ViT-B-23", pretrained="openai", sha256=None), "cpu")


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------


def test_tiny_lpips_distance():
    lp = load_lpips(resolve_weights("tiny-lpips", "lpips"), "cpu")
    a = torch.rand(2, 3, 64, 64, generator=_gen(4)) * 2 - 1
    b = torch.rand(2, 3, 64, 64, generator=_gen(5)) * 2 - 1
    d = lp(a, b)
    assert d.shape == (2,) and (d > 0).all()
    assert torch.equal(lp(a, a), torch.zeros(2))


def test_lpips_vgg_from_torchvision_backbone(tmp_path):
    """The lpips-vgg path: a torchvision-layout VGG16 file + the package's verified heads."""
    from disco_spec.models.architectures import lpips_net
    from disco_spec.models.lpips import _package_heads

    with torch.device("meta"):
        ref = lpips_net("vgg")
    # a fake torchvision VGG16 file: random features.<i> in the trunk's shapes, plus a classifier
    sd, g = {}, _gen(6)
    for k, v in ref.net.state_dict().items():
        _, idx, rest = k.split(".", 2)
        sd[f"features.{idx}.{rest}"] = torch.randn(v.shape, generator=g) * 0.05
    sd["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg16-fake.pth"
    torch.save(sd, path)
    ref_w = SimpleNamespace(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    w = resolve_weights(ref_w, "lpips", spec_dir=str(tmp_path))
    lp = load_lpips(w, "cpu", config=get_entry("lpips-vgg").config)
    heads = _package_heads("vgg", "0.1")
    torch.testing.assert_close(lp.lpips.lin0.model[1].weight, heads["lin0.model.1.weight"])
    torch.testing.assert_close(getattr(lp.lpips.net.slice3, "10").weight, sd["features.10.weight"])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert lp(x, -x).shape == (1,)
