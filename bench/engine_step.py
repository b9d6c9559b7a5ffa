#!/usr/bin/env python3
"""Seconds per sampler step of disco-spec's engine, through the real render path (engine.item.sample_item).

Configurations:
  tiny          specs/smoke.toml: tiny checkpoints (generated, pinned), 64x64, 1 cut batch
  real-small    DD's real architectures with RANDOM weights (512 UNet, secondary, CLIP ViT-B/32),
                256x256, 1 cut batch, DD's default cut schedules -- small enough for a CPU
  real-default  DD 5.2's default still: 1280x768, ViT-B/32 + ViT-B/16 + RN50, 4 cut batches (GPU only)

Speed does not depend on weight values, so random weights measure real speed. Prints one table:
median seconds per step over the measured steps, for the early (t >= 600: 12+4 cuts) and late
(t < 600: 4+12 cuts) phases of the default schedule.

    python bench/engine_step.py --config tiny real-small [--device cpu|cuda] [--steps 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from disco_spec.engine import sampler  # noqa: E402
from disco_spec.engine.item import sample_item  # noqa: E402
from disco_spec.models.loaded import LoadedModels, load_models  # noqa: E402
from disco_spec.plan.resolve import resolve_plan  # noqa: E402
from disco_spec.spec.load import validate_document  # noqa: E402


def _random_real_models(spec, device: torch.device) -> LoadedModels:
    """The real architectures with random weights (built here: no checkpoint files exist offline)."""
    import open_clip

    from disco_spec.models import builders, registry
    from disco_spec.models.clip_common import _bundle

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # bench-only: weights' values do not affect speed
        unet = builders.unet_only(registry.get_entry("512x512_diffusion_uncond_finetune_008100").config)
        secondary = builders.secondary({"c": 64})
        clips = []
        for dd_name, arch in (("ViTB32", "ViT-B-32"), ("ViTB16", "ViT-B-16"), ("RN50", "RN50")):
            if getattr(spec.models, dd_name):
                model = open_clip.create_model(arch, pretrained=None)
                if device.type == "cuda":  # OpenAI CLIP runs in fp16 on GPUs, as in DD
                    open_clip.model.convert_weights_to_fp16(model)
                clips.append(_bundle(dd_name, model.eval().requires_grad_(False).to(device), device, None))
    if device.type == "cuda":
        unet.convert_to_fp16()
    unet = unet.eval().requires_grad_(False).to(device)
    return LoadedModels(unet=unet, secondary=secondary.eval().requires_grad_(False).to(device), clips=clips, lpips=None)


def _spec(config: str, steps: int, overrides: dict | None = None):
    overrides = overrides or {}
    engine = dict(overrides.get("engine", {}))
    if config == "tiny":
        doc = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())
        doc["diffusion"].update(steps=max(steps, 12))
        for section, values in overrides.items():
            doc.setdefault(section, {}).update(values)
        return validate_document(doc)
    common = {"schema_version": 1, "run": {"set_seed": 0, "n_batches": 1}, "init": {"skip_steps": 0}, "engine": engine}
    models = {**({"ViTB16": False, "RN50": False} if config == "real-small" else {}), **overrides.get("models", {})}
    cuts = {**({"cutn_batches": 1} if config == "real-small" else {}), **overrides.get("cuts", {})}
    size = overrides.get("diffusion", {}).get("width_height") or ([256, 256] if config == "real-small" else [1280, 768])
    return validate_document({**common, "diffusion": {"width_height": size, "steps": 250}, "models": models, "cuts": cuts})


def parse_sets(sets: list[str]) -> dict:
    """`section.key=value` overrides (value as TOML: true, 4, "x")."""
    out: dict = {}
    for item in sets:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = tomllib.loads(f"v = {value}")["v"]
    return out


def time_config(config: str, device: torch.device, measure: int, overrides: dict | None = None) -> dict:
    spec = _spec(config, measure, overrides)
    plan = resolve_plan(spec)
    item = plan.items[0]
    if config == "tiny":
        models = load_models(spec, [item], device, spec_dir=str(ROOT / "specs"))
    else:
        models = _random_real_models(spec, device)
    if not spec.models.use_secondary_model:
        models.secondary = None
    ac, timesteps, _ = sampler.respaced_alphas_cumprod(plan.steps)
    phases: dict[str, list[float]] = {"early": [], "late": []}
    # Two starting points: the first steps (t >= 600) and steps past 40% of the schedule (t < 600).
    for phase, start in (("early", item.start_index), ("late", int(plan.steps * 0.55))):
        it = item.__class__(**{**item.__dict__, "start_index": start})
        steps = sample_item(spec, plan, it, models, ac, timesteps, device)
        t0 = time.perf_counter()
        for n, _ in enumerate(steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            if n > 0:  # the first step includes target embedding and warm-up
                phases[phase].append(t1 - t0)
            t0 = t1
            if n >= measure:
                break
    size = f"{plan.width}x{plan.height}"
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"config": config, "device": str(device), "size": size, "peak_gib": peak,
            "secondary": models.secondary is not None, "engine": spec.engine.model_dump(),
            "early": statistics.median(phases["early"]), "late": statistics.median(phases["late"]),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", nargs="+", default=["tiny", "real-small"], choices=["tiny", "real-small", "real-default"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=4, help="measured steps per phase (after one warm-up step)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="spec override, e.g. engine.batch_cut_batches=false, models.use_secondary_model=false")
    ap.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), help="width and height for the real configs")
    ap.add_argument("--json-out", help="append one JSON line per configuration to this file")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.use_deterministic_algorithms(True)
    rows = []
    for config in args.config:
        if config == "real-default" and device.type != "cuda":
            print(f"skipping {config}: needs a GPU", file=sys.stderr)
            continue
        sets = parse_sets(args.set)
        if args.size:
            sets.setdefault("diffusion", {})["width_height"] = list(args.size)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        rows.append(time_config(config, device, args.steps, sets))
        if args.json_out:
            import json

            with open(args.json_out, "a", encoding="utf-8") as f:
                f.write(json.dumps(rows[-1]) + "\n")
    print(f"{'config':<13} {'device':<6} {'size':<9} {'threads':>7} {'s/step t>=600':>14} {'s/step t<600':>13}")
    for r in rows:
        print(f"{r['config']:<13} {r['device']:<6} {r['size']:<9} {r['threads']:>7} {r['early']:>14.3f} {r['late']:>13.3f}")


if __name__ == "__main__":
    main()
