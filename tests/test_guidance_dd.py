"""The guidance function against DD 5.2's cond_fn, written out here from its formulas (disco.py:1232 (cond_fn)).

The reference below is independent of the engine's loss code: it spells out DD's spherical distance,
tv/range/sat losses, the x_in blend, the per-model `cutn_batches` average, the NaN guard and the RMS
clamp. Only the cutouts come from the engine (they have their own tests); the reference draws them from
a second generator with the same seed, in DD's order (models outer, cut batches inner). Tiny models are
defined here: a conv "x0 model", two small CLIP-like encoders, a differentiable perceptual distance.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from disco_spec.engine import guidance, sampler
from disco_spec.engine.cutouts import dango_cutouts
from disco_spec.engine.guidance import ClipTargets, GuidanceSettings, guidance_gradient
from disco_spec.models.types import ClipBundle

pytestmark = pytest.mark.render

SIDE = 32
RES = 16
ALPHAS, TIMESTEPS, N = sampler.respaced_alphas_cumprod(10)


# ---------------------------------------------------------------------------------------------
# Tiny models (fixed random weights)
# ---------------------------------------------------------------------------------------------


def _x0_model() -> torch.nn.Module:
    torch.manual_seed(0)  # test-only weights; the code under test never touches the global RNG
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 3, 3, padding=1))


def _clip(name: str, seed: int, dim: int = 12) -> ClipBundle:
    g = torch.Generator().manual_seed(seed)
    conv = torch.randn(6, 3, 3, 3, generator=g) * 0.5
    proj = torch.randn(6 * 4 * 4, dim, generator=g) * 0.2

    def encode_image(x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == RES
        h = torch.tanh(F.conv2d(x, conv, padding=1))
        return F.adaptive_avg_pool2d(h, 4).flatten(1) @ proj

    return ClipBundle(name=name, input_resolution=RES, encode_image=encode_image, encode_text=lambda t: torch.zeros(len(t), dim))


def _lpips(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A small differentiable perceptual distance [B] (stands in for LPIPS: the function is passed in)."""
    k = torch.tensor([[1.0, -1.0], [1.0, -1.0]]).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    fa, fb = F.conv2d(a, k, groups=3), F.conv2d(b, k, groups=3)
    return ((fa - fb) ** 2).mean([1, 2, 3]) + ((a - b) ** 2).mean([1, 2, 3])


CLIPS = [_clip("clip-a", 1), _clip("clip-b", 2, dim=10)]


def _targets(clip: ClipBundle, seed: int) -> ClipTargets:
    g = torch.Generator().manual_seed(seed)
    d = clip.encode_image(torch.zeros(1, 3, RES, RES)).shape[1]
    embeds = torch.randn(3, d, generator=g)
    weights = torch.tensor([0.5, 0.75, -0.25])
    return ClipTargets(clip=clip, embeds=embeds, weights=weights)


def _settings(**kw) -> GuidanceSettings:
    base = dict(
        clip_guidance_scale=0.0, tv_scale=0.0, range_scale=0.0, sat_scale=0.0, init_scale=0.0, cutn_batches=1,
        cut_overview=[3] * 400 + [2] * 600, cut_innercut=[2] * 400 + [3] * 600, cut_icgray_p=[0.2] * 400 + [0] * 600,
        cut_ic_pow=1.0, skip_augs=False, aug_mode="None", clamp_grad=False, clamp_max=0.05,
    )
    base.update(kw)
    return GuidanceSettings(**base)


# ---------------------------------------------------------------------------------------------
# DD's cond_fn, written out (secondary-model branch: x0 = model(x); cur_t = k)
# ---------------------------------------------------------------------------------------------


def dd_spherical_dist_loss(x, y):
    x = F.normalize(x, dim=-1)
    y = F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def dd_tv_loss(x):
    x = F.pad(x, (0, 1, 0, 1), "replicate")
    x_diff = x[..., :-1, 1:] - x[..., :-1, :-1]
    y_diff = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (x_diff**2 + y_diff**2).mean([1, 2, 3])


def dd_range_loss(x):
    return (x - x.clamp(-1, 1)).pow(2).mean([1, 2, 3])


def dd_cond_fn(x, k, t, *, x0_model, model_stats, s: GuidanceSettings, init, lpips_model, generator):
    n = x.shape[0]
    with torch.enable_grad():
        x_is_nan = False
        x = x.detach().requires_grad_()
        out = x0_model(x)
        fac = math.sqrt(1 - float(ALPHAS[k]))
        x_in = out * fac + x * (1 - fac)
        x_in_grad = torch.zeros_like(x_in)
        for ms in model_stats:
            for _ in range(s.cutn_batches):
                t_int = int(t.item()) + 1
                ov, ic, gp = s.cut_overview[1000 - t_int], s.cut_innercut[1000 - t_int], s.cut_icgray_p[1000 - t_int]
                cuts = dango_cutouts(x_in.add(1).div(2), RES, ov, ic, s.cut_ic_pow, gp, generator,
                                     aug_mode=s.aug_mode, skip_augs=s.skip_augs)
                clip_in = ms.clip.normalize(cuts)
                image_embeds = ms.clip.encode_image(clip_in).float()
                dists = dd_spherical_dist_loss(image_embeds.unsqueeze(1), ms.embeds.unsqueeze(0))
                dists = dists.view([int(ov + ic), n, -1])
                losses = dists.mul(ms.weights).sum(2).mean(0)
                x_in_grad += torch.autograd.grad(losses.sum() * s.clip_guidance_scale, x_in)[0] / s.cutn_batches
        tv_losses = dd_tv_loss(x_in)
        range_losses = dd_range_loss(out)
        sat_losses = torch.abs(x_in - x_in.clamp(min=-1, max=1)).mean()
        loss = tv_losses.sum() * s.tv_scale + range_losses.sum() * s.range_scale + sat_losses.sum() * s.sat_scale
        if init is not None and s.init_scale:
            init_losses = lpips_model(x_in, init)
            loss = loss + init_losses.sum() * s.init_scale
        x_in_grad += torch.autograd.grad(loss, x_in)[0]
        if torch.isnan(x_in_grad).any() == False:  # noqa: E712 - DD's own test
            grad = -torch.autograd.grad(x_in, x, x_in_grad)[0]
        else:
            x_is_nan = True
            grad = torch.zeros_like(x)
    if s.clamp_grad and not x_is_nan:
        magnitude = grad.square().mean().sqrt()
        return grad * magnitude.clamp(max=s.clamp_max) / magnitude
    return grad


# ---------------------------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------------------------

K = 7  # a step inside the first 400 schedule units: 3 overview + 2 inner cuts, grey inner cuts


def _inputs(seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, SIDE, SIDE, generator=g) * 1.3  # out of [-1, 1] in places: sat/range act
    init = torch.rand(1, 3, SIDE, SIDE, generator=g) * 2 - 1
    return x, init


def _both(settings: GuidanceSettings, *, clips=CLIPS, with_init=True, k=K, seed=11):
    model = _x0_model()
    x, init = _inputs()
    t = sampler.t_model_for(TIMESTEPS, N, k, 1, "cpu")
    stats = [_targets(c, 100 + i) for i, c in enumerate(clips)]
    got = guidance_gradient(
        x, k, t, x0_fn=lambda xx, kk, tt: model(xx), alphas_cumprod=ALPHAS, clips=stats, settings=settings,
        init=init if with_init else None, lpips_fn=_lpips, generator=torch.Generator().manual_seed(seed),
    )
    want = dd_cond_fn(x, k, t, x0_model=model, model_stats=stats, s=settings, init=init if with_init else None,
                      lpips_model=_lpips, generator=torch.Generator().manual_seed(seed))
    return got, want


TERMS = {
    "clip": dict(clip_guidance_scale=5000.0),
    "clip, 2 cut batches": dict(clip_guidance_scale=5000.0, cutn_batches=2),
    "clip, skip_augs, 3D augs": dict(clip_guidance_scale=700.0, skip_augs=True, aug_mode="3D"),
    "tv": dict(tv_scale=150.0),
    "sat": dict(sat_scale=40.0),
    "init (LPIPS)": dict(init_scale=1000.0),
}


@pytest.mark.parametrize("term", list(TERMS), ids=list(TERMS))
def test_each_term_alone_matches_dd(term):
    got, want = _both(_settings(**TERMS[term]))
    assert float(want.abs().max()) > 0, "the term must contribute a gradient"
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_range_scale_alone_gives_no_gradient_as_in_dd():
    # DD differentiates the range loss of x0 with respect to x_in, which x0 does not depend on.
    got, want = _both(_settings(range_scale=150.0))
    assert float(want.abs().max()) == 0.0 and float(got.abs().max()) == 0.0


def test_all_terms_together_with_two_models_two_cut_batches_and_the_clamp_match_dd():
    s = _settings(clip_guidance_scale=3000.0, tv_scale=100.0, range_scale=150.0, sat_scale=7.0, init_scale=500.0,
                  cutn_batches=2, clamp_grad=True, clamp_max=0.05)
    got, want = _both(s)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
    # the clamp acted: the RMS is exactly clamp_max
    assert float(got.square().mean().sqrt()) == pytest.approx(0.05, rel=1e-5)
    unclamped, _ = _both(_settings(**{**s.__dict__, "clamp_grad": False}))
    assert float(unclamped.square().mean().sqrt()) > 0.05


def test_tv_and_sat_with_different_scales_each_use_their_own():
    # tv and sat with distinct weights: using one scale for the other's term changes the gradient
    got, want = _both(_settings(tv_scale=300.0, sat_scale=2.0), with_init=False)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)


def test_no_init_means_no_lpips_term():
    got, want = _both(_settings(init_scale=1000.0), with_init=False)
    assert float(want.abs().max()) == 0.0 and float(got.abs().max()) == 0.0


def test_nan_in_the_clip_gradient_gives_a_zero_gradient_and_no_clamp():
    nan_clip = ClipBundle(name="nan", input_resolution=RES, encode_image=lambda x: CLIPS[0].encode_image(x) * float("nan"),
                          encode_text=CLIPS[0].encode_text)
    got, want = _both(_settings(clip_guidance_scale=5000.0, tv_scale=10.0, clamp_grad=True), clips=[nan_clip])
    assert torch.equal(got, torch.zeros_like(got)) and torch.equal(want, torch.zeros_like(want))


def test_the_cut_schedule_index_follows_the_timestep_dd_passes():
    # a late step (k = 1) lies in the last 600 units: 2 overview + 3 inner cuts
    got, want = _both(_settings(clip_guidance_scale=5000.0), k=1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# The x0 functions the runner binds (secondary and UNet), against DD's formulas
# ---------------------------------------------------------------------------------------------


def test_secondary_x0_uses_dd_cosine_time_of_cur_t():
    seen = []

    class Secondary(torch.nn.Module):
        def forward(self, x, t):
            seen.append(float(t))
            return type("Out", (), {"pred": x * 0.5})()

    fn = guidance.secondary_x0_fn(Secondary(), ALPHAS)
    x = torch.ones(1, 3, 4, 4)
    fn(x, 3, torch.tensor([123.0]))
    a, s = math.sqrt(float(ALPHAS[3])), math.sqrt(1 - float(ALPHAS[3]))
    assert seen == [pytest.approx(math.atan2(s, a) * 2 / math.pi, rel=1e-6)]


def test_unet_x0_runs_the_unet_at_cur_t_whatever_t_the_sampler_passes():
    # DD's cond_fn without the secondary model: p_mean_variance(model, x, cur_t, clip_denoised=False).
    # In PLMS' first step the sampler's second evaluation is at k-1, but cur_t (and the UNet's t) is k's.
    seen = []

    def eps_fn(x, t):
        seen.append(t.clone())
        return torch.full_like(x, 3.0)  # outside [-1, 1] after the update: never clamped here

    fn = guidance.unet_x0_fn(eps_fn, ALPHAS, TIMESTEPS, N)
    x = torch.full((1, 3, 4, 4), 0.25)
    k = 5
    x0 = fn(x, k, sampler.t_model_for(TIMESTEPS, N, k - 1, 1, "cpu"))
    assert torch.equal(seen[0], sampler.t_model_for(TIMESTEPS, N, k, 1, "cpu"))
    ac = ALPHAS.double()
    r = torch.sqrt(1.0 / ac[k]).float()
    rm1 = torch.sqrt(1.0 / ac[k] - 1).float()
    torch.testing.assert_close(x0, r * x - rm1 * torch.full_like(x, 3.0), rtol=0, atol=0)
    assert float(x0.min()) < -1  # unclamped


def test_zero_cut_batches_and_negative_scales_are_computed_as_dd_does():
    # DD-legal values: no cut batch (the CLIP loss is left out), negative tv/sat/init scales (they reward the term)
    got, want = _both(_settings(clip_guidance_scale=5000.0, cutn_batches=0, tv_scale=-80.0, sat_scale=-3.0, init_scale=-200.0))
    assert float(want.abs().max()) > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
