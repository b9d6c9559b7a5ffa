"""DDIM and PLMS sampling loops over plain tensors (DD calls them at disco.py:1293-1341 (do_run); the
schedule is set at disco.py:2401-2406 (DoTheRun cell)).

Written in the style of k-diffusion's ``sampling.py``: generator functions with explicit inputs and
no hidden state.  They reproduce the arithmetic of guided-diffusion's ``ddim_sample`` /
``plms_sample`` (crowsonkb fork, as DD 5.2 ran it) with score-route guidance, but draw their noise
from an explicit CPU ``torch.Generator`` instead of torch's global RNG.

Conventions
-----------
* ``alphas_cumprod`` is the respaced ᾱ as a float64 tensor [K]; index k counts down from the start
  index to 0.  ``timesteps[k]`` = τ_k is the original timestep kept by respacing and ``N`` the length
  of the original schedule; the model and cond_fn get ``t_model = τ_k · 1000 / N`` as a float32
  tensor of shape [B].
* ``model_fn(x, t_model) -> eps`` returns the ε prediction with x's shape (guided-diffusion's UNet
  outputs 6 channels: the caller keeps the first 3).  It is called under ``torch.no_grad()``.
* ``cond_fn(x, k, t_model) -> grad``: gradient of −loss with respect to x, already clamped; called
  under ``torch.enable_grad()`` (it differentiates through its own models); the result is detached.
  ``k`` is the respaced index DD's ``cur_t`` holds, which in PLMS' first step stays at k for the
  second evaluation at k−1 (quirk Q23), while ``t_model`` is that of k−1.  cond_fn's ``t_model`` is
  on the CPU (it only picks the cut schedule, and reading a device tensor would wait for the device).
* No step reads a device value back: the schedule's coefficients are 0-dim CPU float32 tensors, which
  device kernels take as scalars, and the noise moves to the device through pinned memory.
* Coefficients are computed in float64 and cast to float32 where they are used, exactly as
  guided-diffusion's ``_extract_into_tensor`` does, and every update follows guided-diffusion's
  order of operations, so the results agree with it to float32 rounding.

Each step yields ``{"index": k, "sample": x_{k-1}, "pred_xstart": x̂₀ (unguided), "t_model": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator

import numpy as np
import torch

from . import rng

__all__ = [
    "ModelFn",
    "CondFn",
    "diffusion_steps_for",
    "ddim_stride",
    "respaced_alphas_cumprod",
    "t_model_for",
    "initial_latent",
    "ddim_sample",
    "plms_sample",
]

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CondFn = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------
# Schedule
# ---------------------------------------------------------------------------------------------


def diffusion_steps_for(steps: int) -> int:
    """N, the length of the underlying schedule DD uses for ``steps``: (1000//steps)*steps below 1000."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return (1000 // steps) * steps if steps < 1000 else steps


def ddim_stride(n: int, k: int) -> int:
    """Smallest stride d in 1..N−1 with len(range(0, N, d)) == K (guided-diffusion's "ddim{K}")."""
    for d in range(1, n):
        if len(range(0, n, d)) == k:
            return d
    raise ValueError(f"cannot create exactly {k} steps with an integer stride from {n}")


def respaced_alphas_cumprod(steps: int) -> tuple[torch.Tensor, list[int], int]:
    """(ᾱ respaced [K] float64, kept timesteps τ_k [K], N) for DD's ``steps`` (K = steps).

    betas = linspace(0.0001·s, 0.02·s, N), s = 1000/N ("linear"); respacing keeps τ_k = k·d and, as
    guided-diffusion does, rebuilds betas β'_k = 1 − ᾱ(τ_k)/ᾱ(τ_{k−1}) and takes their cumulative
    product again (so ᾱ'_k = ᾱ(τ_k) up to float64 rounding, bit-identical to guided-diffusion).
    """
    n = diffusion_steps_for(steps)
    scale = 1000 / n
    betas = np.linspace(scale * 0.0001, scale * 0.02, n, dtype=np.float64)
    base = np.cumprod(1.0 - betas, axis=0)
    d = ddim_stride(n, steps)
    timesteps = list(range(0, n, d))
    new_betas = []
    last = 1.0
    for tau in timesteps:
        new_betas.append(1 - base[tau] / last)
        last = base[tau]
    respaced = np.cumprod(1.0 - np.array(new_betas, dtype=np.float64), axis=0)
    return torch.from_numpy(respaced), timesteps, n


def t_model_for(timesteps: list[int], n: int, k: int, batch: int, device) -> torch.Tensor:
    """The model/cond_fn time input τ_k·1000/N as float32 [batch] (guided-diffusion's rescaling)."""
    return torch.full((batch,), int(timesteps[k]), dtype=torch.int64, device=device).float() * (1000.0 / n)


class _Coefs:
    """float32 scalars of the schedule at index k on a device (values computed in float64)."""

    def __init__(self, alphas_cumprod: torch.Tensor, device):
        ac = alphas_cumprod.to(torch.float64).cpu()
        self._ac = ac
        self._prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        self._recip = torch.sqrt(1.0 / ac)
        self._recipm1 = torch.sqrt(1.0 / ac - 1)
        self._sqrt_ac = torch.sqrt(ac)
        self._sqrt_1m = torch.sqrt(1.0 - ac)
        self._device = device

    def _get(self, arr: torch.Tensor, k: int) -> torch.Tensor:
        # a 0-dim CPU float32 tensor: the same float32 value on every device, without a host-to-device copy
        return arr[k].to(torch.float32)

    def ac(self, k):
        return self._get(self._ac, k)

    def ac_prev(self, k):
        return self._get(self._prev, k)

    def recip(self, k):
        return self._get(self._recip, k)

    def recipm1(self, k):
        return self._get(self._recipm1, k)

    def sqrt_ac(self, k):
        return self._get(self._sqrt_ac, k)

    def sqrt_1m(self, k):
        return self._get(self._sqrt_1m, k)


def _check_start(alphas_cumprod: torch.Tensor, timesteps: list[int], start_index: int) -> None:
    if alphas_cumprod.ndim != 1 or len(timesteps) != alphas_cumprod.shape[0]:
        raise ValueError("alphas_cumprod and timesteps must be 1-D and of equal length")
    if not 0 <= start_index < alphas_cumprod.shape[0]:
        raise ValueError(f"start_index {start_index} outside 0..{alphas_cumprod.shape[0] - 1}")


# ---------------------------------------------------------------------------------------------
# Initial latent
# ---------------------------------------------------------------------------------------------


def initial_latent(
    shape,
    alphas_cumprod: torch.Tensor,
    start_index: int,
    *,
    init: torch.Tensor | None,
    generator: torch.Generator,
    device=None,
) -> torch.Tensor:
    """x at k₀ = ``start_index`` (DD's ``skip_timesteps``, disco.py:1324 (do_run)); z ~ N(0, I) drawn on the CPU in
    float32 from ``generator``.

    no init, k₀ = K−1: z;   no init, k₀ < K−1: √(1−ᾱ_k₀)·z (all-zero init);   init: √ᾱ_k₀·init + √(1−ᾱ_k₀)·z.
    """
    k_count = alphas_cumprod.shape[0]
    if not 0 <= start_index < k_count:
        raise ValueError(f"start_index {start_index} outside 0..{k_count - 1}")
    device = torch.device(device) if device is not None else (init.device if init is not None else torch.device("cpu"))
    z = rng.randn(shape, generator, device=device)
    if init is None and start_index == k_count - 1:
        return z
    c = _Coefs(alphas_cumprod, device)
    if init is None:
        return c.sqrt_1m(start_index) * z
    init = init.to(device=device, dtype=torch.float32)
    if init.shape != z.shape:
        init = init.expand(z.shape)
    return c.sqrt_ac(start_index) * init + c.sqrt_1m(start_index) * z


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------


def _eval(model_fn, cond_fn, c: _Coefs, x, k_model: int, k_cond: int, t_model, t_host, clip_denoised):
    """One model (+ guidance) evaluation at schedule index k_model (t_host: t_model made on the CPU).

    Returns (eps', x̂₀', x̂₀): the guided ε re-derived from the guided x̂₀', the guided x̂₀' and the
    unguided x̂₀ (clamped to [-1, 1] first when clip_denoised), as guided-diffusion's
    p_mean_variance + condition_score + _predict_eps_from_xstart.
    """
    recip, recipm1 = c.recip(k_model), c.recipm1(k_model)
    with torch.no_grad():
        eps = model_fn(x, t_model)
    if eps.shape != x.shape:
        raise ValueError(f"model_fn returned shape {tuple(eps.shape)}, expected {tuple(x.shape)}")
    eps = eps.detach()
    x0 = recip * x - recipm1 * eps
    if clip_denoised:
        x0 = x0.clamp(-1, 1)
    x0_guided = x0
    if cond_fn is not None:
        with torch.enable_grad():
            grad = cond_fn(x.detach(), k_cond, t_host)
        grad = grad.detach()
        eps_g = (recip * x - x0) / recipm1
        eps_g = eps_g - (1 - c.ac(k_model)).sqrt() * grad
        x0_guided = recip * x - recipm1 * eps_g
    eps_out = (recip * x - x0_guided) / recipm1
    return eps_out, x0_guided, x0


# ---------------------------------------------------------------------------------------------
# DDIM
# ---------------------------------------------------------------------------------------------


def ddim_sample(
    model_fn: ModelFn,
    x_start: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    timesteps: list[int],
    *,
    eta: float,
    cond_fn: CondFn | None,
    start_index: int,
    generator: torch.Generator,
    clip_denoised: bool = False,
    n_original: int | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    transform_at: Collection[int] = (),
) -> Iterator[dict]:
    """DDIM from ``x_start`` at k = start_index down to k = 0, one dict per step.

    σ_k = η·√((1−ᾱ_{k−1})/(1−ᾱ_k))·√(1−ᾱ_k/ᾱ_{k−1}) (ᾱ_{−1} = 1);
    x_{k−1} = √ᾱ_{k−1}·x̂₀' + √(1−ᾱ_{k−1}−σ_k²)·ε' + σ_k·z_k, no noise term at k = 0.
    One z_k ~ N(0, I) is drawn from ``generator`` (CPU, float32) per step with k > 0 when η ≠ 0.
    ``n_original`` (N) defaults to the value DD derives from K = len(timesteps). ``transform`` replaces
    x before each step k in ``transform_at`` (DD 5.7's guided-diffusion ``transformation_fn``: symmetry).
    """
    _check_start(alphas_cumprod, timesteps, start_index)
    n = n_original if n_original is not None else diffusion_steps_for(len(timesteps))
    x = x_start.detach()
    c = _Coefs(alphas_cumprod, x.device)
    for k in range(start_index, -1, -1):
        if transform is not None and k in transform_at:
            x = transform(x)
        t_model = t_model_for(timesteps, n, k, x.shape[0], x.device)
        t_host = t_model_for(timesteps, n, k, x.shape[0], "cpu")
        eps, x0_guided, x0 = _eval(model_fn, cond_fn, c, x, k, k, t_model, t_host, clip_denoised)
        ab, ab_prev = c.ac(k), c.ac_prev(k)
        sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
        mean = x0_guided * torch.sqrt(ab_prev) + torch.sqrt(1 - ab_prev - sigma**2) * eps
        if k > 0 and eta != 0:
            sample = mean + sigma * rng.randn(x.shape, generator, device=x.device, dtype=x.dtype)
        else:
            sample = mean
        yield {"index": k, "sample": sample, "pred_xstart": x0, "t_model": t_model}
        x = sample


# ---------------------------------------------------------------------------------------------
# PLMS (order 2)
# ---------------------------------------------------------------------------------------------


def plms_sample(
    model_fn: ModelFn,
    x_start: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    timesteps: list[int],
    *,
    cond_fn: CondFn | None,
    start_index: int,
    generator: torch.Generator | None = None,
    clip_denoised: bool = False,
    n_original: int | None = None,
) -> Iterator[dict]:
    """Order-2 pseudo linear multistep (guided-diffusion's ``plms_sample``), deterministic.

    First step (pseudo improved Euler): ε'_k from (x, k); provisional
    x_p = √ᾱ_{k−1}·x̂₀' + √(1−ᾱ_{k−1})·ε'_k; ε'_p from (x_p, k−1) with cond_fn told index k (Q23);
    ε'' = (ε'_k + ε'_p)/2.  Later steps: ε'' = (3ε'_k − ε'_{k+1})/2.  Then
    x_{k−1} = √ᾱ_{k−1}·x̂₀(ε'') + √(1−ᾱ_{k−1})·ε'' with x̂₀(ε'') = (x − √(1−ᾱ_k)ε'')/√ᾱ_k; at k = 0
    the sample is the guided x̂₀' of the step.  ``generator`` is accepted for a uniform signature and
    never used (PLMS draws nothing).  When the first step is already k = 0 the second evaluation is
    skipped: guided-diffusion evaluates at index −1 and then discards that result.
    """
    _check_start(alphas_cumprod, timesteps, start_index)
    n = n_original if n_original is not None else diffusion_steps_for(len(timesteps))
    x = x_start.detach()
    c = _Coefs(alphas_cumprod, x.device)
    prev_eps: torch.Tensor | None = None
    for k in range(start_index, -1, -1):
        t_model = t_model_for(timesteps, n, k, x.shape[0], x.device)
        t_host = t_model_for(timesteps, n, k, x.shape[0], "cpu")
        eps, x0_guided, x0 = _eval(model_fn, cond_fn, c, x, k, k, t_model, t_host, clip_denoised)
        ab_prev = c.ac_prev(k)
        recip, recipm1 = c.recip(k), c.recipm1(k)
        if k == 0:
            sample = x0_guided
        else:
            if prev_eps is None:
                provisional = x0_guided * torch.sqrt(ab_prev) + torch.sqrt(1 - ab_prev) * eps
                t_prev = t_model_for(timesteps, n, k - 1, x.shape[0], x.device)
                t_prev_host = t_model_for(timesteps, n, k - 1, x.shape[0], "cpu")
                eps_2, _, _ = _eval(model_fn, cond_fn, c, provisional, k - 1, k, t_prev, t_prev_host, clip_denoised)
                eps_prime = (eps + eps_2) / 2
            else:
                eps_prime = (3 * eps - prev_eps) / 2
            pred_prime = recip * x - recipm1 * eps_prime
            sample = pred_prime * torch.sqrt(ab_prev) + torch.sqrt(1 - ab_prev) * eps_prime
        prev_eps = eps
        yield {"index": k, "sample": sample, "pred_xstart": x0, "t_model": t_model}
        x = sample
