#!/usr/bin/env python3
"""Seconds per sampler step of disco-spec's engine, through the real render path (engine.item.sample_item).

Configurations:
  tiny          specs/smoke.toml: tiny checkpoints (generated, pinned), 64x64, 1 cut batch
  real-small    DD's real architectures with RANDOM weights (512 UNet, secondary, CLIP ViT-B/32),
                256x256, 1 cut batch, DD's default cut schedules -- small enough for a CPU
  real-default  DD 5.2's default still: 1280x768, ViT-B/32 + ViT-B/16 + RN50, 4 cut batches

Speed does not depend on weight values, so random weights measure real speed. The real architectures are
built by the render's own loader (models.load.load_models(random_weights=True): seeded random weights in
place of the files, then the same modules, the fp16 UNet torso and CLIP on CUDA, `models.use_checkpoint`,
the attention parameters DD differentiates); the bench has no model construction of its own. `--size WxH`, `--cutn-batches`, `--clips` and `--set KEY=VALUE` (any spec
field, e.g. `--set models.use_secondary_model=false --set engine.batch_cut_batches=false`) change a config.

Timing mode (the default) prints one table: median seconds per step over the measured steps, for the
early (t >= 600: 12+4 cuts) and late (t < 600: 4+12 cuts) phases of the default schedule, and the peak
GPU memory; `--json-out` appends one JSON line per config, `--count-flops` adds the FLOPs of one step of
each phase (torch.utils.flop_counter).

    python bench/engine_step.py --config tiny real-small [--device cpu|cuda] [--steps 4]

`--vs-reference` runs DD 5.2's reference step (../shared/bench/dd_reference_step.py, or `--reference`)
and disco-spec one after the other at the same settings and prints one table (bench/speed_table.py):
s/step of both cut regimes, peak memory, the ratio and the multiple of the FLOP floor. On a CPU it
measures 256x256 with the three CLIP models and 1 cut batch, secondary model on and off:

    python bench/engine_step.py --vs-reference [--rows cpu-secondary-on,cpu-secondary-off]

`--levers` measures each speed lever on and off in one process (bench/levers.py).

Hash mode (bench/gpu_check.sh runs it twice and compares): `--hash-steps N` runs N+1 guided steps of
each config from the item's first step (t >= 600), prints s/step (median of steps 2..N+1; the first
includes warm-up) and the SHA-256 of x̂₀ of the latent the first N guided steps produced (float32
bytes). The weights are seeded, so two runs on one machine must print the same hash:

    python bench/engine_step.py --config real-default --hash-steps 5 --device cuda --json-out r.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
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
sys.path.insert(0, str(ROOT / "bench"))

from disco_spec.engine import sampler  # noqa: E402
from disco_spec.engine.guidance import cuts_for_step  # noqa: E402
from disco_spec.engine.item import compile_unet, configure_determinism, guidance_settings, sample_item  # noqa: E402
from disco_spec.errors import SpecError  # noqa: E402
from disco_spec.models.load import LoadedModels, load_models  # noqa: E402
from disco_spec.plan.resolve import resolve_plan  # noqa: E402
from disco_spec.spec.load import validate_document  # noqa: E402

CLIP_NAMES = ("ViTB32", "ViTB16", "RN50")


def random_real_models(spec, device: torch.device, *, with_secondary: bool | None = None,
                       half: bool | None = None) -> LoadedModels:
    """The spec's real architectures with seeded random weights (no checkpoint files exist offline), built by
    the render's own loader (models.load.load_models with `random_weights`: the same modules, the same
    precision). `with_secondary` overrides `models.use_secondary_model`; `half` forces DD's fp16 rule on or
    off (default: on CUDA), so that a CPU test can build the GPU's precision."""
    if with_secondary is not None:
        spec = spec.model_copy(update={"models": spec.models.model_copy(update={"use_secondary_model": with_secondary})})
    item = resolve_plan(spec).items[0]
    models = load_models(spec, [item], device, spec_dir=None, random_weights=True, half=half)
    if spec.engine.compile:
        models.unet = compile_unet(models.unet)
    return models


def parse_set(pairs: list[str]) -> list[tuple[str, object]]:
    """`KEY=VALUE` pairs; VALUE is read as a TOML value (true, 4, [1, 2], "text"), else kept as text."""
    out = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {pair!r}: expected KEY=VALUE, e.g. engine.batch_cut_batches=false")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out.append((key.strip(), value))
    return out


def _spec(config: str, steps: int, size: tuple[int, int] | None = None, cutn_batches: int | None = None,
          clips: list[str] | None = None, overrides: list[tuple[str, object]] = ()):
    """The config's spec; `size`, `cutn_batches`, `clips` and the dotted `overrides` change it."""
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
    for key, value in overrides:
        *sections, leaf = key.split(".")
        node = doc
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    try:
        return validate_document(doc)
    except SpecError as e:
        raise SystemExit(f"the bench spec is invalid: {e}") from None


def _models(config: str, spec, item, device: torch.device) -> LoadedModels:
    if config == "tiny":
        return load_models(spec, [item], device, spec_dir=str(ROOT / "specs"))
    return random_real_models(spec, device)


def phase_starts(spec, plan, item, timesteps) -> dict[str, int]:
    """The sampler index each phase starts at: the item's first step (t >= 600 by default) and the first
    step of the second cut regime (4 overview + 12 inner cuts by default), as the reference's phases."""
    settings = guidance_settings(spec, plan, item)
    n = plan.diffusion_steps

    def regime(k: int) -> tuple[int, int, float]:
        return cuts_for_step(settings, sampler.t_model_for(timesteps, n, k, 1, "cpu"))

    first = regime(item.start_index)
    late = [k for k in range(item.start_index, -1, -1) if regime(k) != first]
    return {"early": item.start_index, "late": late[0] if late else item.start_index}


def _x0_digest(x0: torch.Tensor) -> str:
    return hashlib.sha256(x0.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def run_phase(spec, plan, item, models, ac, timesteps, device, start: int, measure: int, *, warmup: int = 1,
              count_flops: bool = False) -> dict:
    """`warmup` + `measure` steps from sampler index `start`; with `count_flops` one more step, counted.
    Returns the measured steps' seconds, the FLOPs, and x̂₀ of the last timed step (and its SHA-256)."""
    from step_flops import count_flops as counted

    it = item.__class__(**{**item.__dict__, "start_index": start})
    steps = sample_item(spec, plan, it, models, ac, timesteps, device)
    times: list[float] = []
    x0 = None
    nan_guard, x0_not_finite = 0.0, 0
    try:
        for n in range(warmup + measure):
            t0 = time.perf_counter()
            _j, _k, x0, stats, final = next(steps)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if n >= warmup:
                times.append(time.perf_counter() - t0)
            # a NaN render hashes the same twice: every x̂₀ finite, the NaN guard (DD's zeroed gradient) never fired
            nan_guard += float(stats.get("nan_guard", 0.0))
            x0_not_finite += int(not bool(torch.isfinite(x0).all()))
            if final:
                break
        flops = None
        if count_flops:
            flops, _ = counted(lambda: next(steps), device)
    finally:
        steps.close()
    return {"times": times, "flops": flops, "sha256": _x0_digest(x0), "x0": x0.detach().float().cpu(),
            "nan_guard": nan_guard, "x0_not_finite": x0_not_finite}


def time_config(config: str, device: torch.device, measure: int, *, size=None, cutn_batches=None, clips=None,
                overrides=(), phases=("early", "late"), warmup: int = 1, count_flops: bool = False,
                models: LoadedModels | None = None) -> dict:
    """Median s/step of each phase (after `warmup` steps), peak GPU memory, optionally FLOPs per step."""
    spec = _spec(config, measure + warmup + 2, size, cutn_batches, clips, list(overrides))
    plan = resolve_plan(spec)
    item = plan.items[0]
    if models is None:
        models = _models(config, spec, item, device)
    elif not spec.models.use_secondary_model:
        models = dataclasses.replace(models, secondary=None)
    ac, timesteps, _ = sampler.respaced_alphas_cumprod(plan.steps)
    starts = phase_starts(spec, plan, item, timesteps)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    result = {"config": config, "device": str(device), "size": f"{plan.width}x{plan.height}",
              "cutn_batches": spec.cuts.cutn_batches, "clips": [c.name for c in models.clips],
              "secondary": models.secondary is not None, "set": dict(overrides),
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None}
    for phase in phases:
        r = run_phase(spec, plan, item, models, ac, timesteps, device, starts[phase], measure, warmup=warmup,
                      count_flops=count_flops)
        result[phase] = statistics.median(r["times"]) if r["times"] else None
        result[f"{phase}_all"] = [round(t, 4) for t in r["times"]]
        result[f"{phase}_flops"] = r["flops"]
        result[f"{phase}_sha256"] = r["sha256"]
    result["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3) if device.type == "cuda" else None
    return result


def hash_config(config: str, device: torch.device, n: int, size=None, cutn_batches=None, clips=None,
                overrides=()) -> dict:
    """n+1 guided steps from the item's start; s/step of the last n; sha256 of x̂₀ after n guided steps."""
    # As a render with engine.deterministic = true. Without it, even on a CPU, the first run in a process
    # was seen to give another hash than the runs after it (tiny config, torch 2.14.1).
    configure_determinism(True)
    spec = _spec(config, n + 2, size, cutn_batches, clips, list(overrides))
    plan = resolve_plan(spec)
    item = plan.items[0]
    t_build = time.perf_counter()
    models = _models(config, spec, item, device)
    build_s = time.perf_counter() - t_build
    ac, timesteps, _ = sampler.respaced_alphas_cumprod(plan.steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # one warm-up step, then n timed: x̂₀ of the last is that of x_n, the latent after n guided steps
    r = run_phase(spec, plan, item, models, ac, timesteps, device, item.start_index, n, warmup=1)
    times, digest = r["times"], r["sha256"]
    if len(times) < n:
        raise SystemExit(f"{config}: the schedule ended before {n} guided steps")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    from disco_spec.run.resources import estimate_resources

    estimate = estimate_resources(spec, plan, "cuda", with_errors=False).peak_bytes / 2**30
    return {"config": config, "device": str(device), "size": f"{plan.width}x{plan.height}",
            "cutn_batches": spec.cuts.cutn_batches, "clips": [c.name for c in models.clips],
            "secondary": models.secondary is not None, "set": dict(overrides),
            "nan_guard": r["nan_guard"], "x0_not_finite": r["x0_not_finite"],
            "x0_finite": r["x0_not_finite"] == 0 and bool(torch.isfinite(r["x0"]).all()),
            "estimate_gib": round(estimate, 3),
            "hash_steps": n, "sha256": digest, "s_per_step": statistics.median(times),
            "s_per_step_all": [round(t, 4) for t in times], "build_s": round(build_s, 2),
            "peak_mem_gib": None if peak is None else round(peak, 3),
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def _append_json(path: str | None, record: dict) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", nargs="+", default=["tiny", "real-small"], choices=["tiny", "real-small", "real-default"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=4, help="measured steps per phase (after the warm-up steps)")
    ap.add_argument("--warmup", type=int, default=1, help="steps per phase run before the measured ones")
    ap.add_argument("--phases", nargs="+", default=["early", "late"], choices=["early", "late"])
    ap.add_argument("--hash-steps", type=int, default=0, metavar="N",
                    help="hash mode: N guided steps, then the sha256 of x̂₀ (see above)")
    ap.add_argument("--size", default=None, metavar="WxH", help="override the configs' width x height")
    ap.add_argument("--cutn-batches", type=int, default=None, help="override the configs' cutn_batches")
    ap.add_argument("--clips", default=None, help="comma-separated subset of ViTB32,ViTB16,RN50 (real configs)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a spec field, e.g. engine.compile=true")
    ap.add_argument("--count-flops", action="store_true", help="timing mode: FLOPs of one step per phase")
    ap.add_argument("--json-out", default=None, help="append one JSON line per config to this file")
    ap.add_argument("--vs-reference", action="store_true", help="the table against DD 5.2's reference step")
    ap.add_argument("--levers", action="store_true", help="each speed lever on and off (bench/levers.py)")
    ap.add_argument("--rows", default=None, help="--vs-reference: rows of bench/speed_table.py; --levers: levers of bench/levers.py (comma-separated)")
    ap.add_argument("--reference", default=None, help="--vs-reference: path of dd_reference_step.py")
    ap.add_argument("--child-timeout", type=float, default=1800, help="--vs-reference: seconds per process")
    ap.add_argument("--workdir", default=None, help="--vs-reference: folder for the processes' logs (default: a temp folder)")
    ap.add_argument("--rounds", type=int, default=3, help="--levers: on/off pairs per lever")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.vs_reference:
        import speed_table

        raise SystemExit(speed_table.main_vs_reference(args))
    if args.levers:
        import levers

        raise SystemExit(levers.main(args))
    configure_determinism(True)  # as a render with engine.deterministic = true (cuBLAS workspace too)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    clips = [c for c in args.clips.split(",") if c] if args.clips is not None else None
    if clips is not None and not set(clips) <= set(CLIP_NAMES):
        ap.error(f"--clips: choose from {','.join(CLIP_NAMES)}")
    overrides = parse_set(args.set)
    if args.hash_steps > 0:
        for config in args.config:
            r = hash_config(config, device, args.hash_steps, size, args.cutn_batches, clips, overrides)
            print(f"{r['config']} {r['device']} {r['size']} cutn_batches {r['cutn_batches']} clips "
                  f"{'+'.join(r['clips'])}: {r['s_per_step']:.3f} s/step (median of {len(r['s_per_step_all'])}), "
                  f"build {r['build_s']} s, sha256 after {r['hash_steps']} guided steps {r['sha256']}", flush=True)
            _append_json(args.json_out, r)
        return
    rows = []
    for config in args.config:
        if config == "real-default" and device.type != "cuda" and size is None:
            print(f"skipping {config}: needs a GPU at 1280x768 (give --size to shrink it)", file=sys.stderr)
            continue
        r = time_config(config, device, args.steps, size=size, cutn_batches=args.cutn_batches, clips=clips,
                        overrides=overrides, phases=args.phases, warmup=args.warmup, count_flops=args.count_flops)
        _append_json(args.json_out, r)
        rows.append(r)
    print(f"{'config':<13} {'device':<6} {'size':<9} {'threads':>7} {'s/step t>=600':>14} {'s/step t<600':>13} {'peak GiB':>9}")
    for r in rows:
        print(f"{r['config']:<13} {r['device']:<6} {r['size']:<9} {r['threads']:>7} {_fmt(r.get('early')):>14} "
              f"{_fmt(r.get('late')):>13} {_fmt(r['peak_mem_gib']):>9}")


if __name__ == "__main__":
    main()
