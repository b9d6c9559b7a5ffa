"""disco_spec.engine.augment: torchvision's distributions, drawn from an explicit generator.

The reference here is torchvision itself: DD's pipelines written as ``transforms.Compose`` of
torchvision's random transforms (which read the *global* RNG).  Drawing in torchvision's order
means that a generator seeded s reproduces them after ``torch.manual_seed(s)``: the same draws, and
pictures within 1e-5 (the affine/perspective warps are engine.warps, not grid_sample; float rounding).
"""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms as T

from disco_spec.engine import augment, rng

pytestmark = pytest.mark.render


def _noise():
    return T.Lambda(lambda im: im + torch.randn_like(im) * 0.01)


def _torchvision_pipeline(mode: str) -> T.Compose:
    bil = T.InterpolationMode.BILINEAR
    if mode == "None":
        return T.Compose([
            T.RandomHorizontalFlip(p=0.5), _noise(),
            T.RandomAffine(degrees=10, translate=(0.05, 0.05), interpolation=bil), _noise(),
            T.RandomGrayscale(p=0.1), _noise(),
            T.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1),
        ])
    if mode in ("Video Input", "image_prompt"):
        return T.Compose([
            T.RandomHorizontalFlip(p=0.5), _noise(),
            T.RandomAffine(degrees=15, translate=(0.1, 0.1)), _noise(),
            T.RandomPerspective(distortion_scale=0.4, p=0.7), _noise(),
            T.RandomGrayscale(p=0.15), _noise(),
        ])
    assert mode in ("2D", "3D")
    return T.Compose([
        T.RandomHorizontalFlip(p=0.4), _noise(),
        T.RandomAffine(degrees=10, translate=(0.05, 0.05), interpolation=bil), _noise(),
        T.RandomGrayscale(p=0.1), _noise(),
        T.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.3),
    ])


@pytest.mark.parametrize("mode", ["None", "Video Input", "2D", "3D", "image_prompt"])
def test_matches_torchvision_random_transforms(mode):
    x = torch.rand(3, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    for seed in range(12):
        torch.manual_seed(seed)
        ref = _torchvision_pipeline(mode)(x)
        ours = augment.augment_stack(x, mode, rng.make_generator(seed))
        assert torch.allclose(ours, ref, atol=1e-5, rtol=0), (mode, seed)


def test_none_mode_alias():
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(augment.augment_stack(x, None, rng.make_generator(4)),
                       augment.augment_stack(x, "None", rng.make_generator(4)))
    with pytest.raises(ValueError):
        augment.augment_stack(x, "4D", rng.make_generator(0))


@pytest.mark.parametrize("mode", ["None", "Video Input", "2D"])
def test_one_decision_for_the_whole_stack(mode):
    one = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    stack = one.repeat(6, 1, 1, 1)
    for seed in range(8):
        out = augment.augment_stack(stack, mode, rng.make_generator(seed), noise_std=0.0)
        # identical inputs + one shared flip/affine/perspective/grey/jitter draw -> identical outputs
        assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6), seed
    # with DD's noise on, elements differ (noise is per element)
    noisy = augment.augment_stack(stack, mode, rng.make_generator(0))
    assert not torch.allclose(noisy[0], noisy[1])


def test_flip_consistency_across_stack_with_noise():
    # an image that is very asymmetric left/right: flipped or not is visible through the noise
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(4, 3, 32, 32).contiguous()
    for seed in range(10):
        out = augment.augment_stack(ramp, "Video Input", rng.make_generator(seed))
        left = out[..., :8].mean(dim=(1, 2, 3))
        right = out[..., -8:].mean(dim=(1, 2, 3))
        flipped = left > right
        assert bool(flipped.all()) or not bool(flipped.any()), seed


def test_augment_each_draws_per_element():
    one = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    stack = one.repeat(8, 1, 1, 1)
    out = augment.augment_each(stack, rng.make_generator(0), noise_std=0.0)
    assert out.shape == stack.shape
    distinct = {tuple(out[i].flatten()[:50].tolist()) for i in range(8)}
    assert len(distinct) > 1
    # equals applying the pipeline element by element with one continuing generator
    g = rng.make_generator(0)
    ref = torch.cat([augment.augment_stack(stack[i:i + 1], "image_prompt", g, noise_std=0.0) for i in range(8)])
    assert torch.equal(out, ref)


def test_reproducible_and_global_rng_independent():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(100)
    state = torch.get_rng_state()
    a = augment.augment_stack(x, "None", rng.make_generator(42))
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(200)
    b = augment.augment_stack(x, "None", rng.make_generator(42))
    assert torch.equal(a, b)
    c = augment.augment_stack(x, "None", rng.make_generator(43))
    assert not torch.equal(a, c)


@pytest.mark.parametrize("mode", ["None", "Video Input", "image_prompt"])
def test_gradients_flow(mode):
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(5)).requires_grad_()
    for seed in range(4):
        x.grad = None
        out = augment.augment_stack(x, mode, rng.make_generator(seed))
        out.square().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
