"""resolve_plan(spec) -> Plan: every image and frame to render, with what differs between them.

`Plan` and `PlanItem` are plain data (dataclasses of str/int/float/bool/list/dict), JSON-serialisable and
canonical: the same spec always gives the same plan, so `Plan.sha256()` (the manifest's `plan_sha256`)
identifies what will be rendered. The plan holds the run-wide sampling values (size, steps, respacing, cut
schedules) and, per item, what varies by image or frame: seed and named random streams, prompts with DD's
normalised weights, init source, scale and skipped steps, motion values, turbo flags, partial steps and
the output name. Settings equal for every item (guidance scales, augmentations, `[engine]`) the engine
reads from the spec. `with_concrete_seed` first replaces a `random_seed` by a seed drawn from the OS.
No torch import here.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from . import seeds
from ..spec import schedules
from ..spec.keyframe_splines import interpolated_series
from ..errors import SpecError
from ..spec.models import MOTION_FIELDS, JobSpec, cut_schedule_values, keyframe_values, prompt_weight_total

PLAN_VERSION = 1
IMAGE_PROMPT_CUTS = 16  # DD embeds 16 cutouts per image prompt, each with weight w/16


@dataclass(frozen=True)
class PromptTarget:
    source: str  # the prompt as written in the spec, with any ':weight' suffix
    text: str  # what is encoded: the text (or image path) as DD 5.2 uses it
    weight: float  # parsed weight
    normalized_weight: float  # weight of each embedding after DD's normalisation (per image cut for images)


@dataclass(frozen=True)
class PlanItem:
    index: int  # position in the plan; also the order of rendering
    batch_index: int  # still image number (0 in animation modes)
    frame: int  # animation frame (0 for stills)
    seed: int
    rng: dict[str, int]  # named random streams derived from `seed`
    text_prompts: list[PromptTarget]
    image_prompts: list[PromptTarget]
    init: dict[str, Any]  # {"kind": none|image|previous_frame|video_frame, "path": str|None, "perlin": bool}
    init_scale: float  # LPIPS weight toward the init for this item (init_scale or frames_scale)
    skip_steps: int
    start_index: int  # first respaced step index k0 = steps - 1 - skip_steps
    intermediate_steps: list[int]  # loop iterations j whose x0 is saved as a partial
    motion: dict[str, float] | None  # per-frame motion values (2D/3D), None for stills
    diffuse: bool  # False for turbo-skipped frames (warped and blended, not diffused)
    turbo_blend: float | None  # weight of the new warp in a skipped frame / of the diffused image in turbo output
    output: str  # file name of the final image, relative to the run folder


@dataclass(frozen=True)
class Sampling:
    """The plan's run-wide sampling values: the same for every item, known before Video Input counts its
    frames (the resource estimate reads them before the run folder exists)."""

    width: int
    height: int
    requested_width_height: list[int]
    steps: int
    diffusion_steps: int
    timestep_respacing: str
    respacing_stride: int
    sampler: str
    eta: float
    cut_overview: list[float]
    cut_innercut: list[float]
    cut_icgray_p: list[float]
    cut_ic_pow: float | list[float]  # one number (DD 5.2), or per schedule unit as the cut counts (DD 5.5+)


@dataclass(frozen=True)
class Plan(Sampling):
    """Every image/frame of a render, resolved: the run-wide sampling values (Sampling) and each item."""

    plan_version: int
    batch_name: str
    animation_mode: str
    base_seed: int
    n_items: int
    items: list[PlanItem]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:  # keys sorted: the hash does not depend on the fields' order
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()


def resolve_sampling(spec: JobSpec) -> Sampling:
    req_w, req_h = spec.diffusion.width_height
    steps = spec.diffusion.steps
    n_diff = diffusion_steps_for(steps)
    return Sampling(
        width=floor64(req_w),
        height=floor64(req_h),
        requested_width_height=[req_w, req_h],
        steps=steps,
        diffusion_steps=n_diff,
        timestep_respacing=f"ddim{steps}",
        respacing_stride=n_diff // steps,
        sampler=spec.diffusion.diffusion_sampling_mode,
        eta=float(spec.diffusion.eta),
        cut_overview=cut_schedule_values(spec.cuts.cut_overview),
        cut_innercut=cut_schedule_values(spec.cuts.cut_innercut),
        cut_icgray_p=cut_schedule_values(spec.cuts.cut_icgray_p),
        cut_ic_pow=_cut_ic_pow(spec.cuts.cut_ic_pow),
    )


def diffusion_steps_for(steps: int) -> int:
    """Length N of the underlying schedule (disco.py:2402 (DoTheRun cell)): (1000 // steps) * steps below 1000,
    else steps."""
    return (1000 // steps) * steps if steps < 1000 else steps


def floor64(side: int) -> int:
    return max(64, (side // 64) * 64)


def with_concrete_seed(spec: JobSpec, draw: int | None = None) -> tuple[JobSpec, bool]:
    """Replace set_seed='random_seed' by a drawn seed (recorded downstream), as DD draws one per run.

    Returns (spec, drawn). The drawn value comes from the OS, not from any global RNG.
    """
    if spec.run.set_seed != "random_seed":
        return spec, False
    value = secrets.randbelow(seeds.SEED_MODULUS) if draw is None else draw
    run = spec.run.model_copy(update={"set_seed": value})
    return spec.model_copy(update={"run": run}), True


def resolve_plan(spec: JobSpec) -> Plan:
    """Resolve a validated spec into its per-image/per-frame plan."""
    if spec.run.set_seed == "random_seed":
        raise ValueError("resolve_plan needs a concrete seed; call with_concrete_seed(spec) first")
    base_seed = int(spec.run.set_seed)
    warnings: list[str] = []
    sampling = resolve_sampling(spec)
    (req_w, req_h), width, height = sampling.requested_width_height, sampling.width, sampling.height
    if (width, height) != (req_w, req_h):
        warnings.append(f"width_height {req_w}x{req_h} adjusted to {width}x{height} (multiples of 64, as DD does)")

    mode = spec.animation.animation_mode
    steps = sampling.steps
    frames = 1 if mode == "None" else spec.animation.max_frames
    n_batches = spec.run.n_batches if mode == "None" else 1
    if mode != "None" and "n_batches" in spec.run.model_fields_set and spec.run.n_batches != 1:
        warnings.append(f"n_batches = {spec.run.n_batches} ignored: animation modes render one sequence (as DD)")
    if spec.turbo.turbo_mode and mode != "3D":
        warnings.append("turbo_mode ignored: turbo is 3D only (as DD)")
    if spec.vr.vr_mode and mode != "3D":
        warnings.append("vr_mode ignored: VR is 3D only (as DD)")
    if spec.symmetry.enabled() and spec.diffusion.diffusion_sampling_mode != "ddim":
        warnings.append("symmetry ignored: DD 5.7 mirrors the image in DDIM sampling only")

    motion_series = _motion_series(spec, frames) if mode in ("2D", "3D") else None
    frames_skip = schedules.calc_frames_skip_steps(steps, schedules.parse_percent(spec.animation.frames_skip_steps))
    text_by_frame = schedules.prompt_schedule_lookup(spec.prompts.by_frame("text_prompts"))
    image_by_frame = schedules.prompt_schedule_lookup(spec.prompts.by_frame("image_prompts"))

    items: list[PlanItem] = []
    for batch_index in range(n_batches):
        for frame in range(frames):
            if mode == "None":
                seed = seeds.still_seed(base_seed, batch_index)
                output = f"{spec.run.batch_name}_{batch_index:04d}.png"
            else:
                seed = seeds.frame_seed(base_seed, frame, mode, spec.video_input.video_init_seed_continuity)
                output = f"{spec.run.batch_name}_{frame:04d}.png"
            init, init_scale, skip = _frame_init(spec, mode, frame, frames_skip)
            diffuse, blend = _turbo(spec, mode, frame)
            texts, images = _targets(spec, text_by_frame, image_by_frame, frame)
            items.append(
                PlanItem(
                    index=len(items),
                    batch_index=batch_index,
                    frame=frame,
                    seed=seed,
                    rng=seeds.stream_seeds(seed),
                    text_prompts=texts,
                    image_prompts=images,
                    init=init,
                    init_scale=init_scale,
                    skip_steps=skip,
                    start_index=steps - 1 - skip,
                    intermediate_steps=_intermediates(spec, steps, skip),
                    motion=None if motion_series is None else {k: v[frame] for k, v in motion_series.items()},
                    diffuse=diffuse,
                    turbo_blend=blend,
                    output=output,
                )
            )

    return Plan(
        plan_version=PLAN_VERSION,
        batch_name=spec.run.batch_name,
        animation_mode=mode,
        base_seed=base_seed,
        **asdict(sampling),
        n_items=len(items),
        items=items,
        warnings=warnings,
    )


def _cut_ic_pow(value: Any) -> float | list[float]:
    """A number stays a number (the plan, hence its hash, of every DD 5.2 spec is unchanged); a schedule
    becomes its 1000 values, indexed per step as DD 5.7 does (``IC_Size_Pow=args.cut_ic_pow[1000-t_int]``)."""
    if isinstance(value, (int, float)):
        return float(value)
    return [float(x) for x in cut_schedule_values(value)]


def _motion_series(spec: JobSpec, frames: int) -> dict[str, list[float]]:
    return {
        name: interpolated_series(keyframe_values(getattr(spec.animation, name)), frames, spec.animation.interp_spline)
        for name in MOTION_FIELDS
    }


def _frame_init(spec: JobSpec, mode: str, frame: int, frames_skip: int) -> tuple[dict[str, Any], float, int]:
    """Init source, LPIPS scale and skipped steps for one frame (disco.py:1041-1138 (do_run))."""
    perlin = spec.init.perlin_init
    if mode == "Video Input":
        init = {"kind": "video_frame", "path": None, "video_frame": frame + 1, "perlin": perlin}
        return init, float(spec.animation.frames_scale), frames_skip
    if mode in ("2D", "3D") and frame > 0:
        init = {"kind": "previous_frame", "path": None, "perlin": perlin}
        return init, float(spec.animation.frames_scale), frames_skip
    path = spec.init.init_image
    init = {"kind": "image" if path else "none", "path": path, "perlin": perlin}
    if path and spec.init.init_image_sha256:
        init["sha256"] = spec.init.init_image_sha256
    return init, float(spec.init.init_scale), spec.init.skip_steps


def _turbo(spec: JobSpec, mode: str, frame: int) -> tuple[bool, float | None]:
    """Whether a frame is diffused, and its turbo blend weight (disco.py:1102-1127 (do_run))."""
    if mode != "3D" or not spec.turbo.turbo_mode or frame == 0:
        return True, None
    n = int(spec.turbo.turbo_steps)
    if frame > spec.turbo.turbo_preroll and frame % n != 0:
        return False, ((frame % n) + 1) / n
    return True, 1.0 / n  # diffused frames are saved as 1/n diffused + (1 - 1/n) warp (quirk Q21)


def _intermediates(spec: JobSpec, steps: int, skip: int) -> list[int]:
    saves = spec.saving.intermediate_saves
    # DD spaces partials with the still-image skip_steps even for frames that skip more
    # (disco.py:2315 (ExtraSettings cell)).
    per = schedules.steps_per_checkpoint(steps, spec.init.skip_steps, saves)
    iterations = steps - skip
    return [j for j in range(iterations) if schedules.is_intermediate_step(j, per, saves)]


def _targets(
    spec: JobSpec, text_by_frame: Callable[[int], list[str]], image_by_frame: Callable[[int], list[str]], frame: int
) -> tuple[list[PromptTarget], list[PromptTarget]]:
    """Prompts for a frame with DD's weight normalisation over all embeddings (disco.py:1205-1207 (do_run))."""
    texts = [(p, *schedules.parse_prompt(p)) for p in text_by_frame(frame)]
    images = [(p, *schedules.parse_prompt(p)) for p in image_by_frame(frame)]
    total = prompt_weight_total([w for *_, w in texts], [w for *_, w in images], spec.guidance.fuzzy_prompt)
    if abs(total) < 1e-3:  # validation catches this for every key frame; kept as a guard for direct callers
        raise SpecError(f"prompts: frame {frame}: weights sum to 0", [("prompts", f"frame {frame}: weights sum to 0")])
    keep_suffix = spec.guidance.text_prompt_weight_suffix_in_text
    text_targets = [
        PromptTarget(source=src, text=src if keep_suffix else txt, weight=w, normalized_weight=w / abs(total))
        for src, txt, w in texts
    ]
    image_targets = [
        PromptTarget(source=src, text=txt, weight=w, normalized_weight=(w / IMAGE_PROMPT_CUTS) / abs(total))
        for src, txt, w in images
    ]
    return text_targets, image_targets
