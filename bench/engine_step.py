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

Hash mode (bench/gpu_check.sh runs it twice and compares): `--hash-steps N` runs N+1 guided steps of
each config from the item's first step (t >= 600), prints s/step (median of steps 2..N+1; the first
includes warm-up) and the SHA-256 of x̂₀ of the latent the first N guided steps produced (float32
bytes). The weights are seeded, so two runs on one machine must print the same hash. `--size WxH`,
`--cutn-batches` and `--clips` shrink a config (e.g. to check the script on a CPU):

    python bench/engine_step.py --config real-default --hash-steps 5 --device cuda --json-out r.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from disco_spec.engine import sampler  # noqa: E402
from disco_spec.engine.item import configure_determinism, sample_item  # noqa: E402
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


CLIP_NAMES = ("ViTB32", "ViTB16", "RN50")


def _spec(config: str, steps: int, size: tuple[int, int] | None = None, cutn_batches: int | None = None,
          clips: list[str] | None = None):
    """The config's spec; `size`, `cutn_batches` and `clips` override it (None keeps the config's)."""
    if config == "tiny":
        doc = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())
        doc["diffusion"].update(steps=max(steps, 12))
    else:
        doc = {"schema_version": 1, "run": {"set_seed": 0, "n_batches": 1}, "init": {"skip_steps": 0},
               "diffusion": {"width_height": [1280, 768], "steps": 250}, "models": {}, "cuts": {}}
        if config == "real-small":
            doc["diffusion"]["width_height"] = [256, 256]
            doc["models"].update(ViTB16=False, RN50=False)
            doc["cuts"]["cutn_batches"] = 1
    if size is not None:
        doc["diffusion"]["width_height"] = list(size)
    if cutn_batches is not None:
        doc.setdefault("cuts", {})["cutn_batches"] = cutn_batches
    if clips is not None and config != "tiny":
        doc["models"].update({name: name in clips for name in CLIP_NAMES})
    return validate_document(doc)


def _models(config: str, spec, item, device: torch.device) -> LoadedModels:
    if config == "tiny":
        return load_models(spec, [item], device, spec_dir=str(ROOT / "specs"))
    return _random_real_models(spec, device)


def hash_config(config: str, device: torch.device, n: int, size=None, cutn_batches=None, clips=None) -> dict:
    """n+1 guided steps from the item's start; s/step of the last n; sha256 of x̂₀ after n guided steps."""
    # As a render with engine.deterministic = true. Without it, even on a CPU, the first run in a process
    # was seen to give another hash than the runs after it (tiny config, torch 2.14.1).
    configure_determinism(True)
    spec = _spec(config, n + 2, size, cutn_batches, clips)
    plan = resolve_plan(spec)
    item = plan.items[0]
    t_build = time.perf_counter()
    models = _models(config, spec, item, device)
    build_s = time.perf_counter() - t_build
    ac, timesteps, _ = sampler.respaced_alphas_cumprod(plan.steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    digest = None
    t0 = time.perf_counter()
    for j, _k, x0, _stats, _final in sample_item(spec, plan, item, models, ac, timesteps, device):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        if j > 0:
            times.append(t1 - t0)
        t0 = t1
        if j == n:  # x̂₀ of x_n: the latent after n guided steps (steps 0..n-1)
            digest = hashlib.sha256(x0.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()
            break
    if digest is None:
        raise SystemExit(f"{config}: the schedule ended before {n} guided steps")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"config": config, "device": str(device), "size": f"{plan.width}x{plan.height}",
            "cutn_batches": spec.cuts.cutn_batches, "clips": [c.name for c in models.clips],
            "hash_steps": n, "sha256": digest, "s_per_step": statistics.median(times),
            "s_per_step_all": [round(t, 4) for t in times], "build_s": round(build_s, 2),
            "peak_mem_gib": None if peak is None else round(peak, 3),
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def time_config(config: str, device: torch.device, measure: int) -> dict:
    spec = _spec(config, measure)
    plan = resolve_plan(spec)
    item = plan.items[0]
    if config == "tiny":
        models = load_models(spec, [item], device, spec_dir=str(ROOT / "specs"))
    else:
        models = _random_real_models(spec, device)
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
    return {"config": config, "device": str(device), "size": size,
            "early": statistics.median(phases["early"]), "late": statistics.median(phases["late"]),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", nargs="+", default=["tiny", "real-small"], choices=["tiny", "real-small", "real-default"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=4, help="measured steps per phase (after one warm-up step)")
    ap.add_argument("--hash-steps", type=int, default=0, metavar="N",
                    help="hash mode: N guided steps, then the sha256 of x̂₀ (see above)")
    ap.add_argument("--size", default=None, metavar="WxH", help="override the configs' width x height")
    ap.add_argument("--cutn-batches", type=int, default=None, help="override the configs' cutn_batches")
    ap.add_argument("--clips", default=None, help="comma-separated subset of ViTB32,ViTB16,RN50 (real configs)")
    ap.add_argument("--json-out", default=None, help="hash mode: append one JSON line per config to this file")
    args = ap.parse_args()
    device = torch.device(args.device)
    configure_determinism(True)  # as a render with engine.deterministic = true (cuBLAS workspace too)
    if args.hash_steps > 0:
        size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
        clips = [c for c in args.clips.split(",") if c] if args.clips is not None else None
        if clips is not None and not set(clips) <= set(CLIP_NAMES):
            ap.error(f"--clips: choose from {','.join(CLIP_NAMES)}")
        for config in args.config:
            r = hash_config(config, device, args.hash_steps, size, args.cutn_batches, clips)
            print(f"{r['config']} {r['device']} {r['size']} cutn_batches {r['cutn_batches']} clips "
                  f"{'+'.join(r['clips'])}: {r['s_per_step']:.3f} s/step (median of {len(r['s_per_step_all'])}), "
                  f"build {r['build_s']} s, sha256 after {r['hash_steps']} guided steps {r['sha256']}", flush=True)
            if args.json_out:
                with open(args.json_out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(r, sort_keys=True) + "\n")
        return
    rows = []
    for config in args.config:
        if config == "real-default" and device.type != "cuda":
            print(f"skipping {config}: needs a GPU", file=sys.stderr)
            continue
        rows.append(time_config(config, device, args.steps))
    print(f"{'config':<13} {'device':<6} {'size':<9} {'threads':>7} {'s/step t>=600':>14} {'s/step t<600':>13}")
    for r in rows:
        print(f"{r['config']:<13} {r['device']:<6} {r['size']:<9} {r['threads']:>7} {r['early']:>14.3f} {r['late']:>13.3f}")


if __name__ == "__main__":
    main()
