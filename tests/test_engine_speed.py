"""The speed levers compute what the engine computed before, up to float rounding, and stay exact run to run.

- ResizeRight's resize as cached matrices (engine/resize.py) against resize_right itself;
- all of a model's cut batches through CLIP at once: the same cuts (the generator ends in the same state),
  the gradient of DD's cond_fn (tests/test_guidance_dd.py's reference) up to rounding;
- no value read back from the device inside the guidance (the stats are device scalars, read once a step);
- one UNet forward per evaluation with the secondary model off, the same samples as two forwards;
- with every default lever on, the same spec twice gives byte-identical PNGs.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import pytest
import torch
from resize_right import resize as rr_resize
from torch.utils._python_dispatch import TorchDispatchMode

from disco_spec.engine import guidance, resize, sampler
from disco_spec.engine.shared_unet import SharedUnetForward
from disco_spec.run.renderer import render

import test_guidance_dd as dd  # the DD reference cond_fn and its tiny models

from cli_helpers import smoke_spec

pytestmark = pytest.mark.render

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# Resize matrices
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w,out", [(64, 64, 16), (37, 37, 16), (16, 16, 37), (300, 301, 224), (1280, 1280, 224),
                                     (768, 768, 288), (20, 20, 19), (224, 224, 224)])
def test_matrix_resize_equals_resize_right(h, w, out):
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * 7 + w))
    want = rr_resize(x, out_shape=[2, 3, out, out])
    got = resize.resize_cubic_aa_matmul(x, out, out)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-5


def test_resize_matrix_is_made_once_per_size_pair_and_gradients_flow():
    assert resize.resize_matrix(301, 224) is resize.resize_matrix(301, 224)
    x = torch.rand(1, 3, 40, 40, requires_grad=True)
    want_grad = torch.autograd.grad(rr_resize(x, out_shape=[1, 3, 16, 16]).square().sum(), x)[0]
    got_grad = torch.autograd.grad(resize.resize_cubic_aa_matmul(x, 16, 16).square().sum(), x)[0]
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# All cut batches of a model in one forward and one backward
# ---------------------------------------------------------------------------------------------


def _guidance(settings, seed=11, clips=dd.CLIPS):
    model = dd._x0_model()
    x, init = dd._inputs()
    t = sampler.t_model_for(dd.TIMESTEPS, dd.N, dd.K, 1, "cpu")
    targets = [dd._targets(c, 100 + i) for i, c in enumerate(clips)]
    gen = torch.Generator().manual_seed(seed)
    stats: dict[str, torch.Tensor] = {}
    grad = guidance.guidance_gradient(
        x, dd.K, t, x0_fn=lambda xx, kk, tt: model(xx), alphas_cumprod=dd.ALPHAS, clips=targets, settings=settings,
        init=init, lpips_fn=dd._lpips, generator=gen, stats=stats,
    )
    return grad, gen, stats


@pytest.mark.parametrize("limit", [0, 10, 5])  # no limit (4 batches at once), 2 at a time, 1 at a time
def test_batched_cut_batches_draw_the_same_cuts_and_match_dd(limit):
    s = dd._settings(clip_guidance_scale=3000.0, tv_scale=100.0, sat_scale=7.0, init_scale=500.0, cutn_batches=4,
                     clamp_grad=False, batch_cut_batches=True, max_cuts_per_forward=limit)
    got, gen, stats = _guidance(s)
    loop, loop_gen, loop_stats = _guidance(dd._settings(**{**s.__dict__, "batch_cut_batches": False}))
    want = _dd(s)
    assert torch.equal(gen.get_state(), loop_gen.get_state()), "the cuts drawn differ from DD's"
    assert torch.equal(loop, want)  # one batch at a time is DD's loop exactly
    scale = float(want.abs().max())
    assert scale > 0
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6 * scale)  # float rounding of the summation order
    for name in loop_stats:
        torch.testing.assert_close(stats[name], loop_stats[name], rtol=1e-6, atol=1e-7)


def _dd(s, seed=11):
    model = dd._x0_model()
    x, init = dd._inputs()
    t = sampler.t_model_for(dd.TIMESTEPS, dd.N, dd.K, 1, "cpu")
    targets = [dd._targets(c, 100 + i) for i, c in enumerate(dd.CLIPS)]
    return dd.dd_cond_fn(x, dd.K, t, x0_model=model, model_stats=targets, s=s, init=init, lpips_model=dd._lpips,
                         generator=torch.Generator().manual_seed(seed))


def test_cut_batch_groups_follow_the_limit():
    s = dd._settings(cutn_batches=4, batch_cut_batches=True, max_cuts_per_forward=0)
    assert guidance.cut_batch_groups(s, 16) == [4]
    assert guidance.cut_batch_groups(dd._settings(**{**s.__dict__, "max_cuts_per_forward": 48}), 16) == [3, 1]
    assert guidance.cut_batch_groups(dd._settings(**{**s.__dict__, "max_cuts_per_forward": 8}), 16) == [1, 1, 1, 1]
    assert guidance.cut_batch_groups(dd._settings(**{**s.__dict__, "batch_cut_batches": False}), 16) == [1, 1, 1, 1]
    assert guidance.cut_batch_groups(dd._settings(**{**s.__dict__, "cutn_batches": 0}), 16) == []


# ---------------------------------------------------------------------------------------------
# No device value read back inside the guidance
# ---------------------------------------------------------------------------------------------


class HostReads(TorchDispatchMode):
    """Records every read of a tensor's value by the host (.item(), float(), bool(), .tolist()), with the
    engine function that asked.  Reads of host data are allowed: the seeded CPU generator's draws
    (engine/rng.py, and dango_cutouts' inner-cut size, float32 arithmetic on such a draw), the float64
    schedule and the sampler's CPU timestep (cuts_for_step, ic_pow_for_step)."""

    READS = {"aten._local_scalar_dense.default", "aten.is_nonzero.default", "aten.equal.default"}

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) in self.READS:
            callers = [f"{Path(f.filename).name}:{f.function}" for f in inspect.stack()[1:12]]
            timestep = (":cuts_for_step", ":ic_pow_for_step")
            host_data = any(c.startswith("rng.py:") or c.endswith(timestep) for c in callers) or (
                callers[2].endswith("cutouts.py:dango_cutouts") and args[0].ndim == 0 and not args[0].requires_grad)
            if not host_data and args[0].dtype != torch.float64:
                self.reads.append(" < ".join(callers[:4]))
        return func(*args, **(kwargs or {}))


@pytest.mark.slow
def test_guidance_reads_nothing_back_from_the_device_and_the_stats_in_one_read():
    s = dd._settings(clip_guidance_scale=3000.0, tv_scale=100.0, sat_scale=7.0, init_scale=500.0, cutn_batches=2,
                     clamp_grad=True, batch_cut_batches=True, cut_ic_pow=[1.0] * 500 + [2.0] * 500)
    with HostReads() as mode:
        grad, _, stats = _guidance(s)
    assert mode.reads == []
    assert all(isinstance(v, torch.Tensor) for v in stats.values())
    floats = guidance.read_stats(stats)  # the step's one read (one stacked .cpu())
    assert set(floats) == set(stats) and floats["nan_guard"] == 0.0
    assert floats["grad_rms"] == pytest.approx(float(stats["grad_rms"]))


def test_nan_guard_on_the_device_zeroes_the_gradient_and_sets_the_flag():
    nan_clip = dd.ClipBundle(name="nan", input_resolution=dd.RES, encode_text=dd.CLIPS[0].encode_text,
                             encode_image=lambda x: dd.CLIPS[0].encode_image(x) * float("nan"))
    grad, _, stats = _guidance(dd._settings(clip_guidance_scale=5000.0, tv_scale=10.0, clamp_grad=True), clips=[nan_clip])
    assert torch.equal(grad, torch.zeros_like(grad)) and guidance.read_stats(stats)["nan_guard"] == 1.0


# ---------------------------------------------------------------------------------------------
# One UNet forward serves the sampler and the guidance (secondary model off)
# ---------------------------------------------------------------------------------------------


class CountingUnet(torch.nn.Module):
    """A tiny ε-model (6 output channels like guided-diffusion's) that counts its forwards."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)  # test-only weights
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.calls = 0

    def forward(self, x, t):
        self.calls += 1
        return torch.tanh(self.conv(x)) * (1 + t.view(-1, 1, 1, 1) / 1000)


def _sample(mode: str, share: bool):
    ac, ts, n = sampler.respaced_alphas_cumprod(10)
    unet = CountingUnet()

    def eps_fn(x, t):
        return unet(x, t.expand(x.shape[0]))[:, :3].float()

    def model_fn(x, t):
        with torch.no_grad():
            return eps_fn(x, t)

    leaf_fn = None
    if share:
        shared = SharedUnetForward(eps_fn, ac, ts, n)
        model_fn, x0_fn, leaf_fn = shared.model_fn, shared.x0_fn, shared.leaf_fn
    else:
        x0_fn = guidance.unet_x0_fn(eps_fn, ac, ts, n)
    targets = [dd._targets(c, 100 + i) for i, c in enumerate(dd.CLIPS)]
    s = dd._settings(clip_guidance_scale=3000.0, tv_scale=50.0, cutn_batches=2, clamp_grad=True, batch_cut_batches=True)
    cond_fn = guidance.make_cond_fn(x0_fn=x0_fn, alphas_cumprod=ac, clips=targets, settings=s, init=None, lpips_fn=None,
                                    generator=torch.Generator().manual_seed(4), leaf_fn=leaf_fn)
    x = torch.randn(1, 3, dd.SIDE, dd.SIDE, generator=torch.Generator().manual_seed(2))
    kw = dict(cond_fn=cond_fn, start_index=6, generator=torch.Generator().manual_seed(9))
    run = sampler.plms_sample if mode == "plms" else sampler.ddim_sample
    if mode == "ddim":
        kw["eta"] = 0.8
    samples = [o["sample"] for o in run(model_fn, x, ac, ts, **kw)]
    return samples, unet.calls


@pytest.mark.parametrize("mode", ["ddim", "plms"])
def test_one_unet_forward_per_evaluation_gives_the_same_samples(mode):
    two, calls_two = _sample(mode, share=False)
    one, calls_one = _sample(mode, share=True)
    steps = 7  # start_index 6 down to 0
    # DD: two forwards per evaluation; PLMS' first step has two evaluations, the second at k-1 with cur_t = k
    # (Q23: a different timestep, so its guidance runs the UNet again)
    assert calls_two == 2 * steps + (2 if mode == "plms" else 0)
    assert calls_one == steps + (2 if mode == "plms" else 0)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


# ---------------------------------------------------------------------------------------------
# Every default lever on: the same spec twice, byte-identical PNGs
# ---------------------------------------------------------------------------------------------


def test_defaults_turn_the_exact_levers_on_and_compile_off():
    from disco_spec.spec.engine import EngineSection

    engine = EngineSection()
    assert engine.share_unet_forward and engine.max_cuts_per_forward == 0
    # batch_cut_batches trades memory for speed, unmeasured on a GPU: opt-in (run/resources.py, README Performance)
    assert not engine.compile and not engine.batch_cut_batches


@pytest.fixture
def keep_determinism_setting():
    """render() turns torch's deterministic mode on for the process; later tests expect it as it was."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddim", "plms"])
def test_every_default_lever_on_renders_byte_identical_twice(tmp_path: Path, mode: str, keep_determinism_setting):
    spec = smoke_spec(models={"use_secondary_model": False, "extra_clip_models": [{"name": "tiny-clip"}, {"name": "tiny-clip-rn"}]},
                 cuts={"cutn_batches": 3}, diffusion={"diffusion_sampling_mode": mode, "steps": 6},
                 engine={"batch_cut_batches": True})  # the opt-in lever too
    a = render(spec, tmp_path / "a", progress=False)
    b = render(spec, tmp_path / "b", progress=False)
    sha = [hashlib.sha256((r.run_dir / "smoke_0000.png").read_bytes()).hexdigest() for r in (a, b)]
    assert sha[0] == sha[1]
