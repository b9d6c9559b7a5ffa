"""DD 5.2's guidance function (disco.py:1232 (cond_fn)): cutouts → CLIP → losses → clamped gradient.

`guidance_gradient` is a function of its explicit inputs; `make_cond_fn` binds the per-image inputs
into the `cond_fn(x, k, t)` the samplers call. Randomness (cut positions, augmentations) comes from
the one `generator` passed in, consumed in a fixed order: models in DD's order, then cut batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..models.types import ClipBundle
from ..spec.schedules import schedule_index
from . import losses
from .cutouts import dango_cutouts

X0Fn = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GuidanceSettings:
    """The constant guidance values for one image (plain numbers from the plan)."""

    clip_guidance_scale: float
    tv_scale: float
    range_scale: float
    sat_scale: float
    init_scale: float
    cutn_batches: int
    cut_overview: Sequence[float]
    cut_innercut: Sequence[float]
    cut_icgray_p: Sequence[float]
    cut_ic_pow: float | Sequence[float]  # one number, or per schedule unit (DD 5.5+)
    skip_augs: bool
    aug_mode: str  # animation mode: selects DD's augmentation pipeline
    clamp_grad: bool
    clamp_max: float
    batch_cut_batches: bool = False  # engine.batch_cut_batches (spec default on): a model's cut batches at once
    max_cuts_per_forward: int = 0  # engine.max_cuts_per_forward: the largest stack in one forward (0 = no limit)


@dataclass
class ClipTargets:
    """One CLIP model with its target embeddings [T, D] and normalised weights [T]."""

    clip: ClipBundle
    embeds: torch.Tensor
    weights: torch.Tensor


def cuts_for_step(settings: GuidanceSettings, t: torch.Tensor) -> tuple[int, int, float]:
    """Overview count, inner count and grey fraction for the 0–1000 timestep t (disco.py:1253-1262 (cond_fn)).

    The sampler passes cond_fn its timestep on the CPU, so this read never waits for the device."""
    idx = schedule_index(float(t.reshape(-1)[0]))
    return int(settings.cut_overview[idx]), int(settings.cut_innercut[idx]), float(settings.cut_icgray_p[idx])


def ic_pow_for_step(settings: GuidanceSettings, t: torch.Tensor) -> float:
    """The inner-cut size exponent for the 0–1000 timestep t: the one number (DD 5.2), or the schedule's
    value at the cut counts' index (DD 5.7 ``disco.py`` cond_fn: ``IC_Size_Pow=args.cut_ic_pow[1000-t_int]``)."""
    if isinstance(settings.cut_ic_pow, (int, float)):
        return float(settings.cut_ic_pow)
    return float(settings.cut_ic_pow[schedule_index(float(t.reshape(-1)[0]))])


def cut_batch_groups(settings: GuidanceSettings, cuts_per_batch: int) -> list[int]:
    """How many cut batches go through CLIP together, group by group (they always sum to cutn_batches).

    All of them in one forward and one backward when ``batch_cut_batches`` and the stack stays within
    ``max_cuts_per_forward`` cuts (memory grows with the stack); otherwise as many as fit, one at a time
    at worst (DD's loop)."""
    n = settings.cutn_batches
    if n <= 0:
        return []
    per = 1
    if settings.batch_cut_batches:
        limit = settings.max_cuts_per_forward
        per = n if limit <= 0 else max(1, min(n, limit // max(1, cuts_per_batch)))
    return [min(per, n - start) for start in range(0, n, per)]


def secondary_x0_fn(secondary: torch.nn.Module, alphas_cumprod: torch.Tensor) -> X0Fn:
    """x̂₀ from the secondary v-model at DD's cosine time t = (2/π)·atan2(σ, α)."""

    def x0(x: torch.Tensor, k: int, t: torch.Tensor) -> torch.Tensor:
        ac = float(alphas_cumprod[k])
        # torch.full fills on the device (torch.tensor would copy from the host and wait for the device)
        t_cos = torch.full((1,), 2 / math.pi * math.atan2(math.sqrt(1 - ac), math.sqrt(ac)), dtype=x.dtype, device=x.device)
        return secondary(x, t_cos).pred

    return x0


def unet_x0_fn(
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    alphas_cumprod: torch.Tensor,
    timesteps: Sequence[int],
    n_original: int,
) -> X0Fn:
    """x̂₀ from the main UNet's ε at index k, gradients through the UNet (DD's cond_fn without the secondary model).

    DD calls ``p_mean_variance(model, x, cur_t, clip_denoised=False)``: the UNet runs at k's own timestep
    τ_k, whatever ``t`` the sampler passed, so in PLMS' first step the second evaluation (sampler at k−1)
    runs it at τ_k with ᾱ_k (quirk Q23, whole). x̂₀ = √(1/ᾱ_k)·x − √(1/ᾱ_k − 1)·ε, never clamped, with
    guided-diffusion's float64 coefficients cast to float32.
    """
    ac = alphas_cumprod.to(torch.float64).cpu()
    recip, recipm1 = torch.sqrt(1.0 / ac), torch.sqrt(1.0 / ac - 1)
    scale = 1000.0 / n_original

    def x0(x: torch.Tensor, k: int, t: torch.Tensor) -> torch.Tensor:
        t_k = torch.full((x.shape[0],), int(timesteps[k]), dtype=torch.int64, device=x.device).float() * scale
        eps = eps_fn(x, t_k)
        # 0-dim CPU scalars: used as such by device kernels, no host-to-device copy (which would sync)
        return recip[k].to(torch.float32) * x - recipm1[k].to(torch.float32) * eps

    return x0


def _add_clip_term(
    x_in_grad: torch.Tensor, x_in: torch.Tensor, target: ClipTargets, settings: GuidanceSettings,
    cuts: tuple[int, int, float], ic_pow: float, generator: torch.Generator,
) -> torch.Tensor | None:
    """Add one CLIP model's share of ∂loss/∂x_in to ``x_in_grad`` (in place, in DD's order of additions);
    return its mean loss over the cut batches (a device scalar), None for no batch.

    The cut batches are drawn one after the other from ``generator``, in DD's order, so every cut is the
    cut DD draws; a group of batches goes through CLIP as one stack (one forward, one backward), each
    batch's loss computed on its own rows and the gradients averaged as DD does."""
    overview, inner, gray_p = cuts
    total: torch.Tensor | None = None
    for group in cut_batch_groups(settings, overview + inner):
        stacks = [
            dango_cutouts(x_in.add(1).div(2), target.clip.input_resolution, overview, inner, ic_pow, gray_p,
                          generator, aug_mode=settings.aug_mode, skip_augs=settings.skip_augs)
            for _ in range(group)
        ]
        embeds = target.clip.encode_image(target.clip.normalize(torch.cat(stacks))).float()
        per_batch = [losses.clip_loss(e, target.embeds, target.weights) for e in embeds.split(stacks[0].shape[0])]
        loss = torch.stack(per_batch).sum()
        x_in_grad += torch.autograd.grad(loss * settings.clip_guidance_scale, x_in)[0] / settings.cutn_batches
        total = loss.detach() if total is None else total + loss.detach()
    return None if total is None else total / settings.cutn_batches


def guidance_gradient(
    x: torch.Tensor,
    k: int,
    t: torch.Tensor,
    *,
    x0_fn: X0Fn,
    alphas_cumprod: torch.Tensor,
    clips: Sequence[ClipTargets],
    settings: GuidanceSettings,
    init: torch.Tensor | None,
    lpips_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    generator: torch.Generator,
    stats: dict[str, torch.Tensor] | None = None,
    leaf_fn: Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """∇ₓ of −loss for one step, clamped to RMS ≤ clamp_max; zero when a NaN appears
    (disco.py:1281-1291 (cond_fn)).

    Nothing here reads a device value back to the host: ``stats`` receives detached device scalars
    (the caller reads them once per step) and the NaN guard selects with ``torch.where``. ``leaf_fn``
    gives the tensor to differentiate with respect to (a UNet forward shared with the sampler brings
    its own); by default a fresh leaf of ``x``.
    """
    with torch.enable_grad():
        x = leaf_fn(x, k, t) if leaf_fn is not None else x.detach().requires_grad_()
        x0 = x0_fn(x, k, t)
        fac = math.sqrt(1 - float(alphas_cumprod[k]))
        x_in = x0 * fac + x * (1 - fac)
        x_in_grad = torch.zeros_like(x_in)
        cuts, ic_pow = cuts_for_step(settings, t), ic_pow_for_step(settings, t)
        for target in clips:
            clip_loss = _add_clip_term(x_in_grad, x_in, target, settings, cuts, ic_pow, generator)
            if stats is not None and clip_loss is not None:  # 0 batches: DD's loop never runs, no CLIP loss
                stats[f"clip_loss/{target.clip.name}"] = clip_loss
        tv = losses.tv_loss(x_in)
        # DD penalises x0's range, but differentiates w.r.t. x_in, which x0 does not depend on: in DD 5.2
        # range_scale therefore contributes no gradient. Reproduced, not fixed (see docs/departures.md).
        rng_l = losses.range_loss(x0)
        sat = losses.sat_loss(x_in)
        aux = tv.sum() * settings.tv_scale + rng_l.sum() * settings.range_scale + sat * settings.sat_scale
        init_l = None
        if init is not None and settings.init_scale and lpips_fn is not None:
            init_l = lpips_fn(x_in, init)
            aux = aux + init_l.sum() * settings.init_scale
        x_in_grad += torch.autograd.grad(aux, x_in)[0]
        nan = torch.isnan(x_in_grad).any()
        # DD skips this backward when a NaN appeared and returns zeros; selecting on the device gives the
        # same gradient without reading the flag back to the host
        grad = -torch.autograd.grad(x_in, x, x_in_grad)[0]
        grad = torch.where(nan, torch.zeros_like(grad), grad)
    if stats is not None:
        stats.update(tv_loss=tv.detach().sum(), range_loss=rng_l.detach().sum(), sat_loss=sat.detach())
        if init_l is not None:
            stats["init_loss"] = init_l.detach().sum()
        stats["grad_rms"] = grad.detach().pow(2).mean().sqrt()
        stats["nan_guard"] = nan.to(torch.float32)
    if settings.clamp_grad:  # a zeroed (NaN) gradient has RMS 0 and is left as it is, as DD leaves it
        grad = losses.clamp_grad_rms(grad, settings.clamp_max)
    return grad.detach()


def read_stats(stats: dict[str, torch.Tensor]) -> dict[str, float]:
    """The step's device scalars as floats, in one device-to-host read."""
    if not stats:
        return {}
    values = torch.stack([v.detach().reshape(()).to(torch.float32) for v in stats.values()]).cpu().tolist()
    return dict(zip(stats.keys(), values))


def read_step(stats: dict[str, torch.Tensor], checksums: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, int]]:
    """The step's device scalars as floats and its int64 checksums (engine.checksum) as ints, in one
    device-to-host read: the float32 stats and the checksums travel as one int32 tensor, reinterpreted here."""
    parts = []  # the int64 checksums first: each int64 then starts at an even int32 offset
    if checksums:
        parts.append(torch.stack([v.reshape(()) for v in checksums.values()]).view(torch.int32))
    if stats:
        parts.append(torch.stack([v.detach().reshape(()).to(torch.float32) for v in stats.values()]).view(torch.int32))
    if not parts:
        return {}, {}
    host = torch.cat(parts).cpu()  # the one read
    n = 2 * len(checksums)
    ints = host[:n].view(torch.int64).tolist()
    floats = host[n:].view(torch.float32).tolist()
    return dict(zip(stats.keys(), floats)), dict(zip(checksums.keys(), ints))


def make_cond_fn(
    *,
    x0_fn: X0Fn,
    alphas_cumprod: torch.Tensor,
    clips: Sequence[ClipTargets],
    settings: GuidanceSettings,
    init: torch.Tensor | None,
    lpips_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    generator: torch.Generator,
    on_stats: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    leaf_fn: Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor] | None = None,
) -> Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]:
    """Bind one image's inputs into the sampler's `cond_fn(x, k, t)`; `on_stats` gets device scalars."""

    def cond_fn(x: torch.Tensor, k: int, t: torch.Tensor) -> torch.Tensor:
        stats: dict[str, torch.Tensor] = {}
        grad = guidance_gradient(
            x, k, t, x0_fn=x0_fn, alphas_cumprod=alphas_cumprod, clips=clips, settings=settings, init=init,
            lpips_fn=lpips_fn, generator=generator, stats=stats, leaf_fn=leaf_fn,
        )
        if on_stats is not None:
            on_stats(k, stats)
        return grad

    return cond_fn
