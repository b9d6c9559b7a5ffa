"""DD 5.2 fidelity of the engine's inputs and outputs: fuzzy targets, clip_denoised, the saved 8-bit image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from disco_spec.engine import sampler
from disco_spec.engine.item import sample_item
from disco_spec.engine.images import to_pil
from disco_spec.models.load import load_models
from disco_spec.engine.targets import build_targets, text_targets
from disco_spec.models.types import ClipBundle
from disco_spec.plan.resolve import PromptTarget, resolve_plan
from disco_spec.run.images import load_image_prompt

from cli_helpers import smoke_spec

pytestmark = pytest.mark.render

ROOT = Path(__file__).resolve().parent.parent
RAW = torch.tensor([[-0.4, 0.02, 0.5, 0.97, 1.3, 2.0], [0.1, -2.0, 0.99, 0.0, 0.6, 1.01]])


def _fake_clip() -> ClipBundle:
    return ClipBundle(name="fake", input_resolution=8, encode_image=lambda x: x.flatten(1)[:, :6],
                      encode_text=lambda texts: RAW[: len(texts)].clone())


def _prompts(weights):
    total = 25 * sum(weights)  # DD's normaliser with fuzzy_prompt: 25 copies per text prompt
    return [PromptTarget(source=f"p{i}", text=f"p{i}", weight=w, normalized_weight=w / total) for i, w in enumerate(weights)]


def test_fuzzy_prompt_replaces_each_embedding_by_25_clamped_noisy_copies():
    prompts = _prompts([2.0, 1.0])
    embeds, weights = text_targets(_fake_clip(), prompts, fuzzy=True, rand_mag=0.05, generator=torch.Generator().manual_seed(9))
    assert len(embeds) == len(weights) == 50  # no clean copy: DD appends the 25 copies *instead*
    g = torch.Generator().manual_seed(9)
    for p_i, p in enumerate(prompts):
        for c in range(25):
            # DD: (txt + torch.randn(txt.shape) * rand_mag).clamp(0, 1), drawn in prompt order
            want = (RAW[p_i][None] + torch.randn((1, 6), generator=g) * 0.05).clamp(0, 1)
            got = embeds[p_i * 25 + c]
            torch.testing.assert_close(got, want, rtol=0, atol=0)
            assert weights[p_i * 25 + c] == p.normalized_weight
    stacked = torch.cat(embeds)
    assert float(stacked.min()) == 0.0 and float(stacked.max()) == 1.0  # the clamp acted on both sides
    assert sum(weights) == pytest.approx(1.0)  # DD's weights over all targets sum to 1


def test_without_fuzzy_each_text_prompt_is_one_clean_target():
    prompts = _prompts([1.0])
    embeds, weights = text_targets(_fake_clip(), prompts, fuzzy=False, rand_mag=0.05, generator=torch.Generator())
    assert len(embeds) == 1 and torch.equal(embeds[0], RAW[:1]) and weights == [prompts[0].normalized_weight]


def test_plan_weights_with_fuzzy_and_an_image_prompt_sum_to_one_over_all_targets(tmp_path):
    asset = ROOT / "specs" / "assets" / "init-gradient.png"
    spec = smoke_spec(prompts={"text_prompts": ["a:2", "b:1"], "image_prompts": [f"{asset}:3"]}, guidance={"fuzzy_prompt": True})
    plan = resolve_plan(spec)
    item = plan.items[0]
    total = 25 * (2 + 1) + 3
    assert [p.normalized_weight for p in item.text_prompts] == pytest.approx([2 / total, 1 / total])
    assert item.image_prompts[0].normalized_weight == pytest.approx(3 / 16 / total)
    clip = ClipBundle(name="fake", input_resolution=8, encode_image=lambda x: x.flatten(1)[:, :6],
                      encode_text=lambda texts: RAW[: len(texts)].clone())
    image = load_image_prompt(item.image_prompts[0].text, 64, 64, inputs=None)
    t = build_targets(clip, item.text_prompts, item.image_prompts, fuzzy=True, rand_mag=0.05,
                      skip_augs=True, images=[image], fuzzy_generator=torch.Generator().manual_seed(1),
                      image_generator=torch.Generator().manual_seed(2), device=torch.device("cpu"))
    assert t.embeds.shape[0] == 2 * 25 + 16
    assert float(t.weights.sum()) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddim", "plms"])
def test_clip_denoised_reaches_the_sampler(mode):
    """clip_denoised = true clamps every step's x̂₀ to [-1, 1] (and changes the trajectory); false leaves it."""
    preds = {}
    for flag in (False, True):
        spec = smoke_spec(diffusion={"clip_denoised": flag, "diffusion_sampling_mode": mode, "steps": 6}, init={"skip_steps": 0})
        plan = resolve_plan(spec)
        item = plan.items[0]
        models = load_models(spec, [item], torch.device("cpu"), spec_dir=str(ROOT / "specs"))
        ac, ts, _ = sampler.respaced_alphas_cumprod(plan.steps)
        steps = sample_item(spec, plan, item, models, ac, ts, torch.device("cpu"))
        preds[flag] = [pred.clone() for _, _, pred, _, _ in steps]
    assert any(float(p.abs().max()) > 1 for p in preds[False]), "the tiny model's x̂₀ must leave [-1, 1] somewhere"
    assert all(float(p.abs().max()) <= 1 for p in preds[True])
    assert not torch.equal(preds[True][-1], preds[False][-1].clamp(-1, 1))  # the trajectory differs, not just the end


def test_to_pil_truncates_as_torchvision_does():
    # DD saves TF.to_pil_image(x.add(1).div(2).clamp(0, 1)): ×255 then truncation (byte()), not rounding
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 16, 16, generator=g) * 2.4 - 1.2
    levels = torch.tensor([100.7, 0.999, 254.6, 37.5]) / 255 * 2 - 1  # fractions ≥ .5 round up, truncate down
    x[0, 0, 0, :4] = levels
    want = np.asarray(TF.to_pil_image(x[0].add(1).div(2).clamp(0, 1)))
    got = np.asarray(to_pil(x))
    assert np.array_equal(got, want)
    assert list(got[0, :4, 0]) == [100, 0, 254, 37]
