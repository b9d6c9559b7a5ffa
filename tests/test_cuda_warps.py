"""engine.warps and the secondary model's upsample: the replacements of torchvision's grid_sample warps and
nn.Upsample(bilinear) give the same pictures and gradients, from the same draws, without the operations
whose CUDA backward throws in deterministic mode."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from test_models_registry import _expected_secondary_keys
from torchvision.transforms import InterpolationMode

from disco_spec.engine import augment, cuda_determinism, rng, warps
from disco_spec.engine.augment import _perspective_points
from disco_spec.models.secondary import SecondaryDiffusionImageNet2, Upsample2xBilinear, upsample2x_bilinear

pytestmark = pytest.mark.render

FORWARD_TOL = 1e-5
GRAD_TOL = 1e-4
MODES = {"bilinear": InterpolationMode.BILINEAR, "nearest": InterpolationMode.NEAREST}


def _draws(n: int, seed: int):
    """n random (image stack, DD affine parameters, DD perspective corners) over varied sizes."""
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        h = int(torch.randint(6, 72, (), generator=g))
        w = h if i % 3 == 0 else int(torch.randint(6, 72, (), generator=g))
        x = torch.rand(2, 3, h, w, generator=g)
        degrees, translate = ((10.0, 0.05), (15.0, 0.1))[i % 2]  # stills/2D/3D and Video Input/image prompts
        angle = rng.uniform_scalar(-degrees, degrees, g)
        tx = int(round(rng.uniform_scalar(-translate * w, translate * w, g)))
        ty = int(round(rng.uniform_scalar(-translate * h, translate * h, g)))
        start, end = _perspective_points(w, h, 0.4, g)
        yield x, angle, (tx, ty), start, end


def _tv_affine(x, angle, shift, mode):
    return TF.affine(x, angle=angle, translate=list(shift), scale=1.0, shear=[0.0, 0.0], interpolation=MODES[mode],
                     fill=[0.0] * x.shape[1])


def _tv_perspective(x, start, end, mode):
    return TF.perspective(x, start, end, interpolation=MODES[mode], fill=[0.0] * x.shape[1])


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_affine_and_perspective_match_torchvision_over_dd_draws(mode):
    worst_affine = worst_persp = 0.0
    for x, angle, shift, start, end in _draws(120, seed=1 if mode == "bilinear" else 2):
        worst_affine = max(worst_affine, float((warps.affine(x, angle, shift, mode) - _tv_affine(x, angle, shift, mode)).abs().max()))
        ours = warps.perspective(x, start, end, mode)
        worst_persp = max(worst_persp, float((ours - _tv_perspective(x, start, end, mode)).abs().max()))
    assert worst_affine <= FORWARD_TOL and worst_persp <= FORWARD_TOL, (worst_affine, worst_persp)


def test_warps_match_at_clip_resolution():
    """One 224² stack (ViT-B/32's cut size), where coordinates are largest."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 3, 224, 224, generator=g)
    for mode in MODES:
        for angle, shift in ((9.87, (-11, 7)), (-14.2, (20, -22)), (0.0, (3, 0))):
            assert float((warps.affine(x, angle, shift, mode) - _tv_affine(x, angle, shift, mode)).abs().max()) <= FORWARD_TOL
        start, end = _perspective_points(224, 224, 0.4, g)
        assert float((warps.perspective(x, start, end, mode) - _tv_perspective(x, start, end, mode)).abs().max()) <= FORWARD_TOL


def test_zero_fill_and_identity():
    x = torch.rand(1, 3, 10, 12)
    for mode in MODES:
        assert torch.allclose(warps.affine(x, 0.0, (0, 0), mode), x, atol=1e-6)
        shifted = warps.affine(x, 0.0, (3, 0), mode)  # content moves right by 3 px, zeros come in
        assert torch.equal(shifted[..., :3], torch.zeros_like(shifted[..., :3]))
        assert torch.allclose(shifted[..., 3:], x[..., :-3], atol=1e-6)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_gradients_match_grid_sample(mode):
    worst = 0.0
    for x, angle, shift, start, end in _draws(30, seed=3):
        weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(x.shape[-1]))
        for ours_fn, ref_fn in (
            (lambda v: warps.affine(v, angle, shift, mode), lambda v: _tv_affine(v, angle, shift, mode)),
            (lambda v: warps.perspective(v, start, end, mode), lambda v: _tv_perspective(v, start, end, mode)),
        ):
            a = x.clone().requires_grad_()
            b = x.clone().requires_grad_()
            (ga,) = torch.autograd.grad((ours_fn(a) * weight).sum(), a)
            (gb,) = torch.autograd.grad((ref_fn(b) * weight).sum(), b)
            worst = max(worst, float((ga - gb).abs().max()))
            assert ga.abs().sum() > 0
    assert worst <= GRAD_TOL, worst


def test_warp_graph_has_no_grid_sample_and_the_audit_sees_torchvisions():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    ours = warps.perspective(warps.affine(x, 7.0, (1, -2), "bilinear"), [[0, 0], [15, 0], [15, 15], [0, 15]],
                             [[2, 1], [14, 0], [15, 13], [1, 15]], "nearest")
    assert cuda_determinism.offending_nodes(ours) == []
    assert "IndexSelectBackward0" in cuda_determinism.graph_node_names(ours)
    assert cuda_determinism.offending_nodes(_tv_affine(x, 7.0, (1, -2), "bilinear")) == ["GridSampler2DBackward0"]


def test_bad_interpolation_is_refused():
    with pytest.raises(ValueError, match="interpolation"):
        warps.affine(torch.rand(1, 3, 4, 4), 1.0, (0, 0), "bicubic")


def _tv_compose(mode: str) -> T.Compose:
    noise = T.Lambda(lambda im: im + torch.randn_like(im) * 0.01)
    if mode == "Video Input":
        return T.Compose([
            T.RandomHorizontalFlip(p=0.5), noise, T.RandomAffine(degrees=15, translate=(0.1, 0.1)), noise,
            T.RandomPerspective(distortion_scale=0.4, p=0.7), noise, T.RandomGrayscale(p=0.15), noise,
        ])
    return T.Compose([
        T.RandomHorizontalFlip(p=0.5), noise,
        T.RandomAffine(degrees=10, translate=(0.05, 0.05), interpolation=InterpolationMode.BILINEAR), noise,
        T.RandomGrayscale(p=0.1), noise, T.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1),
    ])


@pytest.mark.parametrize("mode", ["None", "Video Input"])
def test_augment_stack_draws_exactly_what_torchvision_draws(mode):
    """Same pictures within 1e-5 and the generator left exactly where torchvision leaves torch's RNG."""
    x = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(9))
    for seed in range(10):
        torch.manual_seed(seed)
        ref = _tv_compose(mode)(x)
        after_ref = torch.rand(4)
        gen = rng.make_generator(seed)
        ours = augment.augment_stack(x, mode, gen)
        assert float((ours - ref).abs().max()) <= FORWARD_TOL, (mode, seed)
        assert torch.equal(torch.rand(4, generator=gen), after_ref), (mode, seed)


# ------------------------------------------------------------------------------ secondary model upsample


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (1, 4, 5, 7), (3, 8, 16, 16), (1, 2, 2, 9), (2, 64, 28, 28)])
def test_upsample2x_matches_nn_upsample(shape):
    ref_up = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape))) * 2 - 1).requires_grad_()
    ours, ref = upsample2x_bilinear(x), ref_up(x)
    assert ours.shape == ref.shape
    assert float((ours - ref).detach().abs().max()) <= FORWARD_TOL
    gy = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    (ga,) = torch.autograd.grad(ours, x, gy)
    (gb,) = torch.autograd.grad(ref, x, gy)
    assert float((ga - gb).abs().max()) <= FORWARD_TOL
    assert cuda_determinism.offending_nodes(ours) == []
    assert cuda_determinism.offending_nodes(ref) == ["UpsampleBilinear2DBackward0"]


def _random_secondary(c: int) -> SecondaryDiffusionImageNet2:
    model = SecondaryDiffusionImageNet2(c)
    g = torch.Generator().manual_seed(c)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 100
            p.copy_(torch.randn(p.shape, generator=g) * (1.4 / fan_in) ** 0.5)  # activations stay O(1)
    return model


def test_secondary_model_output_is_unchanged_by_the_replacement():
    model = _random_secondary(8)
    reference = copy.deepcopy(model)
    swapped = 0
    for module in reference.modules():
        for name, child in module.named_children():
            if isinstance(child, Upsample2xBilinear):
                setattr(module, name, torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
                swapped += 1
    assert swapped == 5  # one per level
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    t = torch.tensor([0.6])
    ours, ref = model(x, t).pred, reference(x, t).pred
    assert 0.1 < float(ref.detach().abs().max()) < 100
    assert float((ours - ref).detach().abs().max()) <= FORWARD_TOL
    assert cuda_determinism.offending_nodes(ours) == []
    assert "UpsampleBilinear2DBackward0" in cuda_determinism.offending_nodes(ref)


def test_published_secondary_checkpoint_layout_still_loads_strictly():
    """A state dict with the real checkpoint's keys and shapes (written out independently) loads strictly."""
    with torch.device("meta"):
        model = SecondaryDiffusionImageNet2(64)
    expected = _expected_secondary_keys(64)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    sd = {k: torch.zeros(shape) for k, shape in expected.items()}
    result = model.load_state_dict(sd, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
