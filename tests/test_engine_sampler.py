"""disco_spec.engine.sampler against independent calculations and guided-diffusion itself."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from disco_spec.engine import rng, sampler

pytestmark = pytest.mark.render

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from guided_diffusion.respace import SpacedDiffusion, space_timesteps
    from guided_diffusion.script_util import create_gaussian_diffusion
    from guided_diffusion import gaussian_diffusion as gd_mod


def _gd(steps: int):
    n = (1000 // steps) * steps if steps < 1000 else steps
    return create_gaussian_diffusion(
        steps=n, learn_sigma=True, noise_schedule="linear", use_kl=False, predict_xstart=False,
        rescale_timesteps=True, rescale_learned_sigmas=False, timestep_respacing=f"ddim{steps}",
    )


def _base_alpha_bar(n: int) -> np.ndarray:
    s = 1000 / n
    return np.cumprod(1 - np.linspace(0.0001 * s, 0.02 * s, n))


# --------------------------------------------------------------------------- respacing


@pytest.mark.parametrize("steps", [10, 25, 50, 100, 150, 250, 300, 600, 1000, 1200])
def test_respacing_equals_guided_diffusion(steps):
    ac, ts, n = sampler.respaced_alphas_cumprod(steps)
    n_gd = (1000 // steps) * steps if steps < 1000 else steps
    spaced = SpacedDiffusion(
        space_timesteps(n_gd, f"ddim{steps}"),
        betas=gd_mod.get_named_beta_schedule("linear", n_gd),
        model_mean_type=gd_mod.ModelMeanType.EPSILON,
        model_var_type=gd_mod.ModelVarType.LEARNED_RANGE,
        loss_type=gd_mod.LossType.MSE,
        rescale_timesteps=True,
    )
    assert n == n_gd
    assert ac.dtype == torch.float64 and ac.shape == (steps,)
    assert torch.equal(ac, torch.from_numpy(spaced.alphas_cumprod))
    assert ts == spaced.timestep_map
    # and mathematically alpha_bar'_k = alpha_bar(tau_k) of the base schedule
    assert np.allclose(ac.numpy(), _base_alpha_bar(n)[ts], rtol=1e-12, atol=0)


@pytest.mark.parametrize("steps, n, d", [(250, 1000, 4), (150, 900, 6), (300, 900, 3), (600, 600, 1),
                                         (1000, 1000, 1), (2000, 2000, 1), (7, 994, 142)])
def test_documented_examples(steps, n, d):
    _, ts, n_ours = sampler.respaced_alphas_cumprod(steps)
    assert n_ours == n and ts == list(range(0, n, d)) and len(ts) == steps


def test_invalid_steps():
    with pytest.raises(ValueError):
        sampler.respaced_alphas_cumprod(0)
    with pytest.raises(ValueError):  # DD (guided-diffusion) cannot respace to a single step either
        sampler.respaced_alphas_cumprod(1)


def test_t_model_scaling():
    ac, ts, n = sampler.respaced_alphas_cumprod(150)
    t = sampler.t_model_for(ts, n, 149, 2, "cpu")
    assert t.dtype == torch.float32 and t.shape == (2,)
    assert t[0].item() == pytest.approx(ts[149] * 1000 / 900, rel=1e-6)


# --------------------------------------------------------------------------- DDIM


def _point_mass_model(ac, ts, n, m):
    """Exact eps for data concentrated at m: eps = (x - sqrt(ab) m) / sqrt(1 - ab)."""
    lookup = {round(tau * 1000 / n, 3): float(ac[k]) for k, tau in enumerate(ts)}

    def model_fn(x, t):
        ab = lookup[round(float(t[0]), 3)]
        return (x - math.sqrt(ab) * m) / math.sqrt(1 - ab)

    return model_fn


def _hand_ddim(x, ac_np, k0, eps_fn, grad_fn=None):
    """A float64 DDIM (eta=0) loop written from the formulas in the behaviour reference."""
    x = x.double()
    out = []
    for k in range(k0, -1, -1):
        ab = ac_np[k]
        ab_prev = ac_np[k - 1] if k > 0 else 1.0
        eps = eps_fn(x, k)
        if grad_fn is not None:
            eps = eps - math.sqrt(1 - ab) * grad_fn(x, k)
        x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        x = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
        out.append(x)
    return out


def test_ddim_eta0_matches_hand_loop_and_recovers_point_mass():
    steps = 25
    ac, ts, n = sampler.respaced_alphas_cumprod(steps)
    ac_np = _base_alpha_bar(n)[ts]
    m = 0.3
    x_start = rng.randn((1, 3, 4, 4), rng.make_generator(0))
    model_fn = _point_mass_model(ac, ts, n, m)
    outs = list(sampler.ddim_sample(model_fn, x_start, ac, ts, eta=0.0, cond_fn=None,
                                    start_index=steps - 1, generator=rng.make_generator(1)))
    assert [o["index"] for o in outs] == list(range(steps - 1, -1, -1))

    def eps64(x, k):
        return (x - math.sqrt(ac_np[k]) * m) / math.sqrt(1 - ac_np[k])

    ref = _hand_ddim(x_start, ac_np, steps - 1, eps64)
    for o, r in zip(outs, ref):
        assert torch.allclose(o["sample"].double(), r, atol=1e-4)
        assert torch.allclose(o["pred_xstart"], torch.full_like(x_start, m), atol=1e-4)
    assert torch.allclose(outs[-1]["sample"], torch.full_like(x_start, m), atol=1e-4)


def test_ddim_guidance_score_route_matches_hand_loop():
    steps = 20
    ac, ts, n = sampler.respaced_alphas_cumprod(steps)
    ac_np = _base_alpha_bar(n)[ts]
    x_start = rng.randn((1, 3, 4, 4), rng.make_generator(2))
    a = 0.2

    def model_fn(x, t):
        return a * x

    calls = []

    def cond_fn(x, k, t):
        calls.append((k, float(t[0])))
        return -0.5 * x + 0.1

    skip = 4
    outs = list(sampler.ddim_sample(model_fn, x_start, ac, ts, eta=0.0, cond_fn=cond_fn,
                                    start_index=steps - 1 - skip, generator=rng.make_generator(0)))
    ref = _hand_ddim(x_start, ac_np, steps - 1 - skip, lambda x, k: a * x, lambda x, k: -0.5 * x + 0.1)
    for o, r in zip(outs, ref):
        assert torch.allclose(o["sample"].double(), r, rtol=1e-4, atol=1e-5)
    assert [c[0] for c in calls] == list(range(steps - 1 - skip, -1, -1))
    assert calls[0][1] == pytest.approx(ts[steps - 1 - skip] * 1000 / n, rel=1e-6)
    # pred_xstart is the UNGUIDED estimate
    first = outs[0]
    ab = ac_np[steps - 1 - skip]
    unguided = (x_start.double() - math.sqrt(1 - ab) * a * x_start.double()) / math.sqrt(ab)
    assert torch.allclose(first["pred_xstart"].double(), unguided, atol=1e-5)


def _toy_model(x, t):
    return torch.sin(1.3 * x) * (t[:, None, None, None] / 1000.0) + 0.1 * x


def _toy_cond(x, t):
    return -0.05 * x + 0.01 * t[:, None, None, None] / 1000.0


class _SixChannel(torch.nn.Module):
    def forward(self, x, t):
        return torch.cat([_toy_model(x, t), torch.zeros_like(x)], dim=1)


@pytest.mark.parametrize("eta", [0.0, 0.8])
def test_ddim_equals_guided_diffusion_loop(eta):
    steps, skip = 25, 3
    diffusion = _gd(steps)
    ac, ts, n = sampler.respaced_alphas_cumprod(steps)
    z = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    k0 = steps - 1 - skip
    x_start = torch.from_numpy(diffusion.sqrt_one_minus_alphas_cumprod)[k0].float() * z  # no init, S > 0
    # guided-diffusion draws its DDIM noise from the global RNG; seed it like our generator
    torch.manual_seed(7)
    ref = list(diffusion.ddim_sample_loop_progressive(
        _SixChannel(), (1, 3, 8, 8), noise=z, clip_denoised=False, cond_fn=lambda x, t, **kw: _toy_cond(x, t),
        model_kwargs={}, device="cpu", eta=eta, skip_timesteps=skip))
    ours = list(sampler.ddim_sample(_toy_model, x_start, ac, ts, eta=eta, cond_fn=lambda x, k, t: _toy_cond(x, t),
                                    start_index=k0, generator=rng.make_generator(7)))
    assert len(ref) == len(ours) == k0 + 1
    for r, o in zip(ref, ours):
        assert torch.allclose(o["sample"], r["sample"], atol=1e-5)
        assert torch.allclose(o["pred_xstart"], r["pred_xstart"], atol=1e-5)


def test_ddim_noise_depends_only_on_the_generator():
    steps = 10
    ac, ts, n = sampler.respaced_alphas_cumprod(steps)
    x_start = rng.randn((1, 3, 6, 6), rng.make_generator(0))

    def run(seed, global_seed):
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        out = [o["sample"] for o in sampler.ddim_sample(_toy_model, x_start, ac, ts, eta=1.0, cond_fn=None,
                                                       start_index=steps - 1, generator=rng.make_generator(seed))]
        assert torch.equal(state, torch.get_rng_state())  # the global RNG was not consumed
        return torch.stack(out)

    a = run(5, global_seed=1)
    b = run(5, global_seed=2)
    c = run(6, global_seed=1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # eta = 0 is deterministic and draws nothing
    g = rng.make_generator(3)
    before = g.get_state()
    list(sampler.ddim_sample(_toy_model, x_start, ac, ts, eta=0.0, cond_fn=None, start_index=steps - 1, generator=g))
    assert torch.equal(before, g.get_state())


def test_ddim_noise_scale_is_sigma():
    # model eps = 0 -> x0 = x/sqrt(ab); one step from k: mean + sigma z, z from the generator
    ac, ts, n = sampler.respaced_alphas_cumprod(10)
    k = 5
    x = torch.ones(1, 3, 4, 4)
    eta = 0.7
    out = next(sampler.ddim_sample(lambda x, t: torch.zeros_like(x), x, ac, ts, eta=eta, cond_fn=None,
                                   start_index=k, generator=rng.make_generator(11)))
    ab, abp = float(ac[k]), float(ac[k - 1])
    sigma = eta * math.sqrt((1 - abp) / (1 - ab)) * math.sqrt(1 - ab / abp)
    z = rng.randn((1, 3, 4, 4), rng.make_generator(11))
    expected = math.sqrt(abp) * x / math.sqrt(ab) + sigma * z
    assert torch.allclose(out["sample"], expected, atol=1e-5)


# --------------------------------------------------------------------------- PLMS


def test_plms_first_steps_follow_pseudo_improved_euler_then_adams_bashforth():
    steps = 20
    ac, ts, n = sampler.respaced_alphas_cumprod(steps)
    ac_np = _base_alpha_bar(n)[ts]
    a = 0.3
    k0 = 15
    x = torch.full((1, 3, 2, 2), 0.7)
    outs = sampler.plms_sample(lambda x, t: a * x, x, ac, ts, cond_fn=None, start_index=k0)

    def rs(k):
        return (math.sqrt(ac_np[k]), math.sqrt(1 - ac_np[k]))

    # by hand, on the scalar value 0.7
    v = 0.7
    r, s = rs(k0)
    rp, sp = rs(k0 - 1)
    e1 = a * v
    x0 = (v - s * e1) / r
    prov = rp * x0 + sp * e1
    e2 = a * prov
    ep = (e1 + e2) / 2
    v1 = rp * (v - s * ep) / r + sp * ep
    first = next(outs)
    assert first["index"] == k0
    assert torch.allclose(first["sample"].double(), torch.full((1, 3, 2, 2), v1, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(first["pred_xstart"].double(), torch.full((1, 3, 2, 2), x0, dtype=torch.float64), atol=1e-5)
    # second step: eps'' = (3 eps_k - eps_{k+1}) / 2 with eps_{k+1} = e1 (the first evaluation)
    r, s = rs(k0 - 1)
    rp, sp = rs(k0 - 2)
    e = a * v1
    ep = (3 * e - e1) / 2
    v2 = rp * (v1 - s * ep) / r + sp * ep
    second = next(outs)
    assert torch.allclose(second["sample"].double(), torch.full((1, 3, 2, 2), v2, dtype=torch.float64), atol=1e-5)


def test_plms_cond_fn_index_quirk_and_final_step():
    steps = 8
    ac, ts, n = sampler.respaced_alphas_cumprod(steps)
    calls = []

    def cond_fn(x, k, t):
        calls.append((k, round(float(t[0]), 3)))
        return torch.zeros_like(x)

    x = torch.ones(1, 3, 2, 2)
    outs = list(sampler.plms_sample(lambda x, t: 0.1 * x, x, ac, ts, cond_fn=cond_fn, start_index=5))
    tm = [round(tau * 1000 / n, 3) for tau in ts]
    # first step: evaluation at k=5, then at k-1=4 with cond_fn still told k=5 (Q23); then one per step
    assert calls == [(5, tm[5]), (5, tm[4]), (4, tm[4]), (3, tm[3]), (2, tm[2]), (1, tm[1]), (0, tm[0])]
    # at k = 0 the sample is the (guided) x0 estimate
    last = outs[-1]
    assert last["index"] == 0
    assert torch.allclose(last["sample"], last["pred_xstart"])  # zero guidance: guided == unguided


@pytest.mark.parametrize("clip_denoised", [False, True])
def test_plms_equals_guided_diffusion_loop(clip_denoised):
    steps, skip = 20, 5
    diffusion = _gd(steps)
    ac, ts, n = sampler.respaced_alphas_cumprod(steps)
    z = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 1.5
    init = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1
    k0 = steps - 1 - skip
    ref = list(diffusion.plms_sample_loop_progressive(
        _SixChannel(), (1, 3, 8, 8), noise=z, clip_denoised=clip_denoised,
        cond_fn=lambda x, t, **kw: _toy_cond(x, t), model_kwargs={}, device="cpu",
        skip_timesteps=skip, init_image=init))
    x_start = (torch.from_numpy(diffusion.sqrt_alphas_cumprod)[k0].float() * init
               + torch.from_numpy(diffusion.sqrt_one_minus_alphas_cumprod)[k0].float() * z)
    ours = list(sampler.plms_sample(_toy_model, x_start, ac, ts, cond_fn=lambda x, k, t: _toy_cond(x, t),
                                    start_index=k0, clip_denoised=clip_denoised))
    assert len(ref) == len(ours)
    for r, o in zip(ref, ours):
        assert torch.allclose(o["sample"], r["sample"], atol=1e-5)
        assert torch.allclose(o["pred_xstart"], r["pred_xstart"], atol=1e-5)


# --------------------------------------------------------------------------- initial latent


def test_initial_latent_cases():
    ac, ts, n = sampler.respaced_alphas_cumprod(50)
    shape = (1, 3, 4, 5)
    z = torch.randn(shape, generator=torch.Generator().manual_seed(9))
    # no init, S = 0: z
    assert torch.equal(sampler.initial_latent(shape, ac, 49, init=None, generator=rng.make_generator(9)), z)
    # no init, S > 0: sqrt(1 - ab) z
    k0 = 39
    ab = float(ac[k0])
    out = sampler.initial_latent(shape, ac, k0, init=None, generator=rng.make_generator(9))
    assert torch.allclose(out, math.sqrt(1 - ab) * z, atol=1e-6)
    # init given (any S): sqrt(ab) init + sqrt(1 - ab) z
    init = torch.rand(shape) * 2 - 1
    for k in (49, k0):
        ab = float(ac[k])
        out = sampler.initial_latent(shape, ac, k, init=init, generator=rng.make_generator(9))
        assert torch.allclose(out, math.sqrt(ab) * init + math.sqrt(1 - ab) * z, atol=1e-6)
    with pytest.raises(ValueError):
        sampler.initial_latent(shape, ac, 50, init=None, generator=rng.make_generator(9))


def test_initial_latent_ignores_global_rng():
    ac, _, _ = sampler.respaced_alphas_cumprod(10)
    torch.manual_seed(1)
    a = sampler.initial_latent((1, 3, 4, 4), ac, 9, init=None, generator=rng.make_generator(2))
    torch.manual_seed(2)
    b = sampler.initial_latent((1, 3, 4, 4), ac, 9, init=None, generator=rng.make_generator(2))
    assert torch.equal(a, b)


def test_start_index_validation():
    ac, ts, _ = sampler.respaced_alphas_cumprod(10)
    with pytest.raises(ValueError):
        next(sampler.ddim_sample(_toy_model, torch.zeros(1, 3, 2, 2), ac, ts, eta=0.0, cond_fn=None,
                                 start_index=10, generator=rng.make_generator(0)))


@pytest.mark.parametrize("which", ["ddim", "plms"])
def test_last_step_sample_is_guided_x0(which):
    ac, ts, n = sampler.respaced_alphas_cumprod(10)
    x = torch.full((1, 3, 2, 2), 0.4)
    a, g = 0.5, 0.2
    kwargs = dict(cond_fn=lambda x, k, t: torch.full_like(x, g), start_index=0)
    if which == "ddim":
        out = next(sampler.ddim_sample(lambda x, t: a * x, x, ac, ts, eta=0.9, generator=rng.make_generator(0), **kwargs))
    else:
        out = next(sampler.plms_sample(lambda x, t: a * x, x, ac, ts, **kwargs))
    ab = float(ac[0])
    eps_guided = a * 0.4 - math.sqrt(1 - ab) * g
    guided_x0 = (0.4 - math.sqrt(1 - ab) * eps_guided) / math.sqrt(ab)
    unguided_x0 = (0.4 - math.sqrt(1 - ab) * a * 0.4) / math.sqrt(ab)
    assert out["sample"].flatten()[0].item() == pytest.approx(guided_x0, rel=1e-5)
    assert out["pred_xstart"].flatten()[0].item() == pytest.approx(unguided_x0, rel=1e-5)
