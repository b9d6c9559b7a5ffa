"""Run plan items through the sampler: one still = one init + per-item values, so a frame is the same call.

Called by disco_spec.render, which owns the run folder; this module owns devices, determinism settings,
the per-item generators and the order of work inside an item.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import torch

from ..plan import PlanItem
from ..spec.models import JobSpec
from . import sampler
from .guidance import GuidanceSettings, make_cond_fn, secondary_x0_fn, unet_x0_fn
from .images import load_init_image, to_pil, write_png_atomic
from .loaded import LoadedModels, load_models
from .perlin import perlin_init_image
from .rng import make_generator
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
        cut_ic_pow=float(plan.cut_ic_pow),
        skip_augs=bool(c.skip_augs),
        aug_mode=plan.animation_mode,
        clamp_grad=bool(g.clamp_grad),
        clamp_max=float(g.clamp_max),
    )


def partial_name(spec: JobSpec, item: PlanItem, j: int) -> str:
    """DD's names (§4.4), numbered by plan item so that partials never overwrite each other (unlike Q13)."""
    stem = f"{spec.run.batch_name}_{item.index:04d}"
    saves = spec.saving.intermediate_saves
    if isinstance(saves, list):
        name = f"{stem}-{j:03d}.png"
    else:
        total_steps = spec.diffusion.steps - spec.init.skip_steps - 1
        name = f"{stem}-{math.ceil(j / max(total_steps, 1) * 100):02d}%.png"
    return f"partials/{name}" if spec.saving.intermediates_in_subfolder else name


def item_init(spec: JobSpec, plan: Any, item: PlanItem, gens: dict[str, torch.Generator], spec_dir: str | None,
              device: torch.device, previous: torch.Tensor | None = None) -> torch.Tensor | None:
    """The init tensor in [-1, 1] for an item (§6.1 step 5, §7.1); Perlin replaces any other init."""
    if item.init.get("perlin"):
        return perlin_init_image(plan.width, plan.height, spec.init.perlin_mode, gens["perlin"]).to(device)
    kind = item.init["kind"]
    if kind == "image":
        return load_init_image(item.init["path"], plan.width, plan.height, base_dir=spec_dir).to(device)
    if kind in ("previous_frame", "video_frame"):  # the frame loop passes the warped frame / video frame
        return previous
    return None


def record_output(result: Any, observers: Sequence[Any], rel: str, kind: str, item: PlanItem) -> Any:
    """Hash a file just written under the run folder, add its OutputRecord and tell the observers."""
    from ..render import OutputRecord, file_sha256

    path = result.run_dir / rel
    rec = OutputRecord(
        path=rel, sha256=file_sha256(path), bytes=path.stat().st_size, kind=kind, item_index=item.index,
        batch_index=item.batch_index, frame=item.frame, seed=item.seed,
    )
    publish_output(result, observers, rec)
    return rec


def publish_output(result: Any, observers: Sequence[Any], rec: Any) -> None:
    result.outputs.append(rec)
    for o in observers:
        o.on_output(result, rec)


def diffuse_item(
    result: Any, item: PlanItem, models: LoadedModels, alphas_cumprod: torch.Tensor, timesteps: Sequence[int],
    device: torch.device, spec_dir: str | None, observers: Sequence[Any], previous: torch.Tensor | None = None,
    save: bool = True,
) -> tuple[Any, list[Any]]:
    """Run the sampler for one item (previews, partials, step events); return (final PIL image, partial records)."""
    from ..render import StepEvent

    spec: JobSpec = result.spec
    final = None
    partials = []
    steps = sample_item(spec, result.plan, item, models, alphas_cumprod, timesteps, device, spec_dir, previous)
    for j, k, pred, stats, is_final in steps:
        preview = None
        if j % spec.run.display_rate == 0 or is_final:
            preview = to_pil(pred)
            write_png_atomic(preview, result.run_dir / "progress.png")
        if save and j in item.intermediate_steps:
            rel = partial_name(spec, item, j)
            write_png_atomic(preview or to_pil(pred), result.run_dir / rel)
            partials.append(record_output(result, observers, rel, "partial", item))
        event = StepEvent(item=item, j=j, k=k, total=item.start_index + 1, stats=stats, preview=preview)
        for o in observers:
            o.on_step(event)
        if is_final:
            final = preview
    assert final is not None
    return final, partials


def run_plan(
    result: Any, selected: Sequence[int], *, observers: Sequence[Any], spec_dir: str | None, fetch: bool,
    resume: Any = None,
) -> None:
    from ..animation.resume import Journal
    from ..render import png_metadata

    spec: JobSpec = result.spec
    plan = result.plan
    device = select_device(spec.engine.device)
    configure_determinism(spec.engine.deterministic)
    items = [plan.items[i] for i in selected]
    animation = None
    if plan.animation_mode != "None":
        from ..animation import frames

        items = frames.items_to_compute(plan, selected)
    models = load_models(spec, items, device, spec_dir=spec_dir, fetch=fetch)
    result.weights = models.weights
    result.device = str(device)
    if plan.animation_mode != "None":
        animation = frames.Animation(result, selected, models, device, spec_dir=spec_dir, fetch=fetch)
    journal = Journal.begin(result, selected, resume)  # run_state.json; on resume, checks the weights
    for o in observers:
        o.on_start(result)

    alphas_cumprod, timesteps, n_diff = sampler.respaced_alphas_cumprod(plan.steps)
    if animation is not None:
        animation.run(journal, observers, alphas_cumprod, timesteps)
        return

    for item in items:
        done = journal.verified_records(item) if journal.resumed else None
        if done is not None:  # rendered before the interruption, files intact
            for rec in done:
                publish_output(result, observers, rec)
            continue
        final, recs = diffuse_item(result, item, models, alphas_cumprod, timesteps, device, spec_dir, observers)
        write_png_atomic(final, result.run_dir / item.output, png_metadata(result, item))
        recs.append(record_output(result, observers, item.output, "image", item))
        journal.append(item, recs)


def sample_item(
    spec: JobSpec,
    plan: Any,
    item: PlanItem,
    models: LoadedModels,
    alphas_cumprod: torch.Tensor,
    timesteps: Sequence[int],
    device: torch.device,
    spec_dir: str | None,
    previous: torch.Tensor | None = None,
):
    """Yield (j, k, unguided x̂₀, guidance stats, is_final) for every sampler step of one item."""
    gens = {name: make_generator(seed) for name, seed in item.rng.items()}
    init = item_init(spec, plan, item, gens, spec_dir, device, previous)
    clips = [
        build_targets(
            clip, item.text_prompts, item.image_prompts, fuzzy=spec.guidance.fuzzy_prompt, rand_mag=spec.guidance.rand_mag,
            side_x=plan.width, side_y=plan.height, skip_augs=spec.cuts.skip_augs, base_dir=spec_dir,
            fuzzy_generator=gens["fuzzy"], image_generator=gens["image_prompts"], device=device,
        )
        for clip in models.clips
    ]
    unet = models.unet

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return unet(x, t.expand(x.shape[0]))[:, :3].float()

    if models.secondary is not None:
        x0_fn = secondary_x0_fn(models.secondary, alphas_cumprod)
    else:
        x0_fn = unet_x0_fn(eps_fn, alphas_cumprod, timesteps, plan.diffusion_steps)
    last_stats: dict[str, float] = {}
    cond_fn = make_cond_fn(
        x0_fn=x0_fn, alphas_cumprod=alphas_cumprod, clips=clips, settings=guidance_settings(spec, plan, item),
        init=init, lpips_fn=models.lpips, generator=gens["cutouts"],
        on_stats=lambda k, s: (last_stats.clear(), last_stats.update(s)),
    )

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return eps_fn(x, t)

    x_start = sampler.initial_latent(
        (1, 3, plan.height, plan.width), alphas_cumprod, item.start_index, init=init, generator=gens["noise"], device=device
    )
    sample = sampler.plms_sample if plan.sampler == "plms" else sampler.ddim_sample
    kwargs: dict[str, Any] = dict(
        cond_fn=cond_fn, start_index=item.start_index, generator=gens["noise"], clip_denoised=spec.diffusion.clip_denoised
    )
    if plan.sampler == "ddim":
        kwargs["eta"] = plan.eta
    for j, out in enumerate(sample(model_fn, x_start, alphas_cumprod, timesteps, **kwargs)):
        k = int(out["index"])
        yield j, k, out["pred_xstart"], dict(last_stats), k == 0
