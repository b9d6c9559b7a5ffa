"""Reduced precision on a CPU: DD runs the UNet torso and OpenAI CLIP in fp16 on CUDA, and disco-spec does too.
The same render_models and the same render path run here in fp16 (torch 2.14 has fp16 kernels on CPU for all of
them), so a dtype mismatch between a half model and the fp32 guidance cannot first appear on a GPU."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from disco_spec.engine import losses
from disco_spec.models import load as render_models, precision
from disco_spec.models.diffusion import load_diffusion
from disco_spec.models.registry import get_entry
from disco_spec.models.resolve import resolve_weights
from disco_spec.run.records import BaseObserver
from disco_spec.run.renderer import render
from disco_spec.spec.load import validate_document

pytestmark = pytest.mark.render

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())


@pytest.fixture(autouse=True)
def _restore_determinism_flag():
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def test_dd_rule_half_on_cuda_only():
    assert precision.dd_half_precision("cuda") and precision.dd_half_precision(torch.device("cuda", 0))
    assert not precision.dd_half_precision("cpu") and not precision.dd_half_precision("mps")


def _unet(use_fp16: bool):
    w = resolve_weights("tiny-uncond", "diffusion")
    unet, _ = load_diffusion(w, get_entry("tiny-uncond").config, steps=10, use_checkpoint=True, use_fp16=use_fp16,
                             device="cpu")
    return unet


def test_unet_fp16_torso_runs_on_cpu_and_returns_fp32():
    half, full = _unet(True), _unet(False)
    dtypes = {name.split(".")[0]: p.dtype for name, p in half.named_parameters()}
    # guided-diffusion's convert_to_fp16: the torso's convolutions and linears; embeddings and the output head stay fp32
    assert half.dtype == torch.float16
    assert half.input_blocks[0][0].weight.dtype == torch.float16 and half.middle_block[0].in_layers[2].weight.dtype == torch.float16
    assert dtypes["time_embed"] == torch.float32 and dtypes["out"] == torch.float32
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    t = torch.tensor([500.0])
    out = half(x, t)
    assert out.dtype == torch.float32
    (g,) = torch.autograd.grad(out[:, :3].square().mean(), x)  # the guidance gradient path (use_checkpoint too)
    assert g.dtype == torch.float32 and torch.isfinite(g).all() and g.abs().sum() > 0
    ref = full(x, t)
    rel = float((out - ref).detach().norm() / ref.detach().norm())
    assert rel < 2e-2, rel


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-clip-rn"])
def test_openai_clip_in_fp16_takes_fp32_cuts_and_gives_fp32_embeddings(name):
    half = render_models.load_clip(name, "cpu", half=True)
    full = render_models.load_clip(name, "cpu")  # DD's rule on a CPU: fp32
    assert half.extra["dtype"] == "torch.float16" and full.extra["dtype"] == "torch.float32"
    assert {p.dtype for p in half.extra["module"].visual.parameters()} >= {torch.float16}
    r = half.input_resolution
    cuts = torch.rand(3, 3, r, r, generator=torch.Generator().manual_seed(1)).requires_grad_()
    emb = half.encode_image(half.normalize(cuts))
    assert emb.dtype == torch.float32
    text = half.encode_text(["a lighthouse"])
    assert text.dtype == torch.float32
    loss = losses.clip_loss(emb, text, torch.ones(1))
    assert loss.dtype == torch.float32
    (g,) = torch.autograd.grad(loss, cuts)
    assert g.dtype == torch.float32 and torch.isfinite(g).all() and g.abs().sum() > 0
    ref = full.encode_image(full.normalize(cuts))
    cos = torch.nn.functional.cosine_similarity(emb.detach(), ref.detach(), dim=-1)
    assert float(cos.min()) > 0.99


class _Stats(BaseObserver):
    def __init__(self) -> None:
        self.steps: list[dict] = []

    def on_step(self, event) -> None:
        self.steps.append(dict(event.stats))


def _smoke(**models):
    doc = copy.deepcopy(SMOKE)
    doc["diffusion"]["steps"] = 4
    doc["init"]["skip_steps"] = 3  # one guided step: fp16 convolutions are slow on a CPU
    doc["models"].update(models)
    doc["models"]["extra_clip_models"] = [{"name": "tiny-clip"}, {"name": "tiny-clip-rn"}]
    return validate_document(doc)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("secondary", [True, False], ids=["secondary", "unet-x0"])
def test_render_with_dds_cuda_precision_on_a_cpu(secondary, tmp_path, monkeypatch):
    """The full render path with DD's CUDA precision choice: fp16 UNet torso and CLIP, fp32 losses."""
    seen: dict[str, list] = {"unet": [], "clip": [], "loss_inputs": []}
    real_diffusion, real_clip, real_clip_loss = render_models.load_diffusion, render_models.load_clip, losses.clip_loss

    def spy_diffusion(*args, **kwargs):
        unet, diffusion = real_diffusion(*args, **kwargs)
        seen["unet"].append(unet.dtype)
        return unet, diffusion

    def spy_clip(*args, **kwargs):
        bundle = real_clip(*args, **kwargs)
        seen["clip"].append(bundle.extra["dtype"])
        return bundle

    def spy_clip_loss(image_embeds, target_embeds, weights):
        seen["loss_inputs"].append((image_embeds.dtype, target_embeds.dtype, weights.dtype))
        return real_clip_loss(image_embeds, target_embeds, weights)

    spec = _smoke(use_secondary_model=secondary)
    fp32 = render(spec, tmp_path / "fp32", progress=False)
    monkeypatch.setattr(precision, "dd_half_precision", lambda device: True)
    monkeypatch.setattr(render_models, "load_diffusion", spy_diffusion)
    monkeypatch.setattr(render_models, "load_clip", spy_clip)
    monkeypatch.setattr(losses, "clip_loss", spy_clip_loss)
    stats = _Stats()
    fp16 = render(spec, tmp_path / "fp16", progress=False, observers=[stats])

    assert seen["unet"] == [torch.float16] and seen["clip"] == ["torch.float16", "torch.float16"]
    assert seen["loss_inputs"] and set(seen["loss_inputs"]) == {(torch.float32,) * 3}
    assert len(stats.steps) == 1
    for step in stats.steps:
        assert step["nan_guard"] == 0.0 and step["grad_rms"] > 0
        assert all(math.isfinite(v) for v in step.values())
    a, b = _pixels(fp32.run_dir / "smoke_0000.png"), _pixels(fp16.run_dir / "smoke_0000.png")
    psnr = 10 * math.log10(255.0**2 / max(float(np.mean((a - b) ** 2)), 1e-12))
    assert psnr > 25, psnr  # the same picture, up to half-precision rounding
