"""The readable per-frame table of a plan (`disco-spec plan`): what every image/frame will use."""

from __future__ import annotations

from pathlib import Path

from ..errors import SpecError
from .resolve import Plan, resolve_plan, with_concrete_seed
from ..spec.load import load_spec


def plan_for_display(spec_file: str | Path, seed: int | None) -> tuple[Plan, str | None]:
    """Load a spec and resolve its plan; a 'random_seed' spec is shown with base seed 0 unless --seed is given."""
    spec = load_spec(spec_file)
    note = None
    if seed is not None:
        if not 0 <= seed < 2**32:
            raise SpecError("--seed out of range", [("--seed", f"must be between 0 and 4294967295 (got {seed})")])
        spec = spec.model_copy(update={"run": spec.run.model_copy(update={"set_seed": seed})})
    elif spec.run.set_seed == "random_seed":
        spec, _ = with_concrete_seed(spec, draw=0)
        note = "note: set_seed = 'random_seed': seeds below are offsets from a base of 0 (the real base is drawn at render; pass --seed N)"
    return resolve_plan(spec), note


def _parse_range(text: str | None, n: int) -> range:
    if not text:
        return range(n)
    try:
        a, _, b = text.partition(":")
        start = int(a) if a else 0
        stop = int(b) if b else n
    except ValueError:
        raise SpecError("--frames", [("--frames", f"expected START:STOP such as 0:20 (got {text!r})")]) from None
    return range(max(0, start), min(n, stop))


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def plan_table(plan: Plan, frames: str | None = None) -> str:
    """One row per item: index, frame, seed, init, scale, skip, motion (changes only), prompts."""
    head = (
        f"{plan.batch_name}: {plan.animation_mode if plan.animation_mode != 'None' else 'still images'}, "
        f"{plan.n_items} item(s), {plan.width}x{plan.height}, {plan.sampler} {plan.steps} steps "
        f"(N={plan.diffusion_steps}, stride {plan.respacing_stride}), eta {plan.eta:g}"
    )
    motion_keys = list(plan.items[0].motion) if plan.items and plan.items[0].motion else []
    cols = ["item", "frame", "seed", "init", "scale", "skip", *motion_keys, "prompts"]
    rows = []
    prev_prompts = None
    for i in _parse_range(frames, plan.n_items):
        it = plan.items[i]
        init = it.init["kind"] + ("+perlin" if it.init.get("perlin") else "")
        if not it.diffuse:
            init = f"turbo-skip b={it.turbo_blend:.3g}"
        prompts = " | ".join(f"{p.text[:40]}{'…' if len(p.text) > 40 else ''} ({p.normalized_weight:.3g})"
                             for p in it.text_prompts + it.image_prompts)
        shown = prompts if prompts != prev_prompts else "〃"
        prev_prompts = prompts
        motion = [_fmt(it.motion[k]) for k in motion_keys] if it.motion else []
        rows.append([str(it.index), str(it.frame), str(it.seed), init, _fmt(it.init_scale), str(it.skip_steps), *motion, shown])
    widths = [max(len(c), *(len(r[j]) for r in rows)) if rows else len(c) for j, c in enumerate(cols)]
    widths[-1] = 0  # prompts column is not padded
    lines = [head, "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
