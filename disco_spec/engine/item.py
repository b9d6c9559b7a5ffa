"""One plan item through the sampler: the per-item generators, targets, guidance and DDIM/PLMS steps.

Takes tensors (the init, the image prompts) and plan items; yields step states. Devices and the
determinism settings are chosen here too, since every kernel the engine runs depends on them.
"""

from __future__ import annotations

import contextlib
import os
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import torch

from ..models.load import LoadedModels
from ..plan.resolve import PlanItem
from ..spec.models import JobSpec
from . import sampler
from .checksum import tensor_checksum
from .guidance import GuidanceSettings, make_cond_fn, read_stats, read_step, secondary_x0_fn, unet_x0_fn
from .perlin import perlin_init_image
from .rng import make_generator
from .shared_unet import SharedUnetForward
from .symmetry import mirror_halves, symmetry_step_indices
from .targets import build_targets


def select_device(preference: str) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from ..errors import RenderError

            raise RenderError("engine.device = 'cuda' but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def configure_determinism(deterministic: bool) -> None:
    """Deterministic kernels everywhere (cuBLAS needs its workspace setting before the first call)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic


@contextlib.contextmanager
def deterministic_kernels(deterministic: bool) -> Iterator[None]:
    """configure_determinism for the length of a render, then torch's previous settings again: a render leaves
    no process-wide state behind (the cuBLAS workspace variable stays: it is read once, at cuBLAS's start)."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    configure_determinism(deterministic)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]


def guidance_settings(spec: JobSpec, plan: Any, item: PlanItem) -> GuidanceSettings:
    g, c = spec.guidance, spec.cuts
    return GuidanceSettings(
        clip_guidance_scale=float(g.clip_guidance_scale),
        tv_scale=float(g.tv_scale),
        range_scale=float(g.range_scale),
        sat_scale=float(g.sat_scale),
        init_scale=float(item.init_scale),
        cutn_batches=int(c.cutn_batches),
        cut_overview=plan.cut_overview,
        cut_innercut=plan.cut_innercut,
        cut_icgray_p=plan.cut_icgray_p,
        cut_ic_pow=plan.cut_ic_pow if isinstance(plan.cut_ic_pow, list) else float(plan.cut_ic_pow),
        skip_augs=bool(c.skip_augs),
        aug_mode=plan.animation_mode,
        clamp_grad=bool(g.clamp_grad),
        clamp_max=float(g.clamp_max),
        batch_cut_batches=bool(spec.engine.batch_cut_batches),
        max_cuts_per_forward=int(spec.engine.max_cuts_per_forward),
    )


def compile_unet(unet: torch.nn.Module) -> torch.nn.Module:
    """``engine.compile``: the UNet through torch.compile, with Inductor's random ops falling back to
    eager (so a compiled render draws what an eager one draws) and no autotuning (which picks kernels by
    timing, hence differently run to run); deterministic algorithms stay on."""
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    return torch.compile(unet, mode="default", dynamic=False)


def item_init(spec: JobSpec, plan: Any, item: PlanItem, gens: dict[str, torch.Generator], device: torch.device, *,
              init_image: torch.Tensor | None = None, previous: torch.Tensor | None = None) -> torch.Tensor | None:
    """The init tensor in [-1, 1] for an item (disco.py:1210-1228 (do_run)); Perlin replaces any other init."""
    if item.init.get("perlin"):
        return perlin_init_image(plan.width, plan.height, spec.init.perlin_mode, gens["perlin"]).to(device)
    kind = item.init["kind"]
    if kind == "image":
        return None if init_image is None else init_image.to(device)
    if kind in ("previous_frame", "video_frame"):  # the frame loop passes the warped frame / video frame
        return previous
    return None


def sample_item(
    spec: JobSpec,
    plan: Any,
    item: PlanItem,
    models: LoadedModels,
    alphas_cumprod: torch.Tensor,
    timesteps: Sequence[int],
    device: torch.device,
    *,
    init_image: torch.Tensor | None = None,
    image_prompt_images: Sequence[torch.Tensor] = (),
    previous: torch.Tensor | None = None,
    on_checksums: Callable[[dict[str, int]], None] | None = None,
):
    """Yield (j, k, unguided x̂₀, guidance stats, is_final) for every sampler step of one item.

    `on_checksums` (the run's journal) gets each step's {"x_t": checksum of the sample after the step,
    "x0": checksum of x̂₀} (engine.checksum), read with the stats in the step's one device read.

    `init_image` is the item's init file as a tensor (when its init kind is "image"), `image_prompt_images`
    its image prompts in order, `previous` the frame loop's warped previous frame or video frame.
    """
    gens = {name: make_generator(seed) for name, seed in item.rng.items()}
    init = item_init(spec, plan, item, gens, device, init_image=init_image, previous=previous)
    clips = [
        build_targets(
            clip, item.text_prompts, item.image_prompts, fuzzy=spec.guidance.fuzzy_prompt, rand_mag=spec.guidance.rand_mag,
            skip_augs=spec.cuts.skip_augs, images=image_prompt_images,
            fuzzy_generator=gens["fuzzy"], image_generator=gens["image_prompts"], device=device,
        )
        for clip in models.clips
    ]
    unet = models.unet

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return unet(x, t.expand(x.shape[0]))[:, :3].float()

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return eps_fn(x, t)

    leaf_fn = None
    if models.secondary is not None:
        x0_fn = secondary_x0_fn(models.secondary, alphas_cumprod)
    elif spec.engine.share_unet_forward:
        shared = SharedUnetForward(eps_fn, alphas_cumprod, timesteps, plan.diffusion_steps)
        model_fn, x0_fn, leaf_fn = shared.model_fn, shared.x0_fn, shared.leaf_fn
    else:
        x0_fn = unet_x0_fn(eps_fn, alphas_cumprod, timesteps, plan.diffusion_steps)
    last_stats: dict[str, torch.Tensor] = {}  # device scalars, read once per step below
    cond_fn = make_cond_fn(
        x0_fn=x0_fn, alphas_cumprod=alphas_cumprod, clips=clips, settings=guidance_settings(spec, plan, item),
        init=init, lpips_fn=models.lpips, generator=gens["cutouts"],
        on_stats=lambda k, s: (last_stats.clear(), last_stats.update(s)), leaf_fn=leaf_fn,
    )

    x_start = sampler.initial_latent(
        (1, 3, plan.height, plan.width), alphas_cumprod, item.start_index, init=init, generator=gens["noise"], device=device
    )
    sample = sampler.plms_sample if plan.sampler == "plms" else sampler.ddim_sample
    kwargs: dict[str, Any] = dict(
        cond_fn=cond_fn, start_index=item.start_index, generator=gens["noise"], clip_denoised=spec.diffusion.clip_denoised
    )
    if plan.sampler == "ddim":
        kwargs["eta"] = plan.eta
        symmetry = spec.symmetry
        if symmetry.enabled():  # DD 5.7 passes its symmetry to DDIM only (the plan warns for PLMS)
            kwargs["transform"] = partial(mirror_halves, horizontal=symmetry.use_horizontal_symmetry,
                                          vertical=symmetry.use_vertical_symmetry)
            kwargs["transform_at"] = symmetry_step_indices(item.start_index + 1, symmetry.transformation_percent)
    for j, out in enumerate(sample(model_fn, x_start, alphas_cumprod, timesteps, **kwargs)):
        k = int(out["index"])
        # the step's one device-to-host read: its stats, for the progress bar, MLflow and the NaN-guard flag,
        # and with them the checksums that say where two renders part
        if on_checksums is None:
            stats = read_stats(last_stats)
        else:
            stats, sums = read_step(last_stats, {"x_t": tensor_checksum(out["sample"]),
                                                 "x0": tensor_checksum(out["pred_xstart"])})
            on_checksums(sums)
        yield j, k, out["pred_xstart"], stats, k == 0
