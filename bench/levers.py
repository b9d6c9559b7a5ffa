"""`engine_step.py --levers`: each speed lever of the engine on and off, in one process, with one set of models.

For every lever the two settings alternate (on, off, on, off, ...: `--rounds` pairs), each run taking one
warm-up step and `--steps` timed steps from the item's first step, so a machine that drifts slows both
alike. The table gives the median s/step of each setting, their ratio (off / on: above 1 means the lever
wins) and whether x̂₀ after the timed steps is byte-identical between the two (else the largest
difference): a lever that changes pixels beyond float rounding must be a spec option, off by default.

Spec levers are switched with their spec fields; the others are switched here, for the measurement only:
  resize_matrices  off: ResizeRight itself on every cut (as DD), instead of the cached matrices
  channels_last    on: the UNet's weights in channels-last memory format (not an engine option)
Defaults: real architectures (random weights) at 128x128, ViT-B/32, 4 cut batches -- a step of a few
seconds on a CPU. `--size`, `--cutn-batches`, `--clips` and `--device` change it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

import engine_step
from disco_spec.engine import cutouts, sampler
from disco_spec.engine.item import compile_unet, configure_determinism
from disco_spec.plan.resolve import resolve_plan


@dataclass(frozen=True)
class Lever:
    name: str
    what: str
    on: tuple = ()  # spec overrides with the lever on
    off: tuple = ()
    base: tuple = ()  # overrides both settings share (e.g. the secondary model off)
    patch: Callable[[bool, object], contextlib.AbstractContextManager] | None = None  # (on, models) -> context


@contextlib.contextmanager
def _resize_right_when_off(on: bool, models) -> Iterator[None]:
    if on:
        yield
        return
    from resize_right import resize as rr_resize

    cached = cutouts.resize_cubic_aa
    cutouts.resize_cubic_aa = lambda x, size: rr_resize(x, out_shape=(*x.shape[:-2], size, size))
    try:
        yield
    finally:
        cutouts.resize_cubic_aa = cached


@contextlib.contextmanager
def _channels_last_when_on(on: bool, models) -> Iterator[None]:
    if not on:
        yield
        return
    models.unet.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        models.unet.to(memory_format=torch.contiguous_format)


LEVERS = {
    "batch_cut_batches": Lever("batch_cut_batches", "a CLIP model's cut batches in one forward and one backward",
                               on=(("engine.batch_cut_batches", True),), off=(("engine.batch_cut_batches", False),)),
    "share_unet_forward": Lever("share_unet_forward", "secondary model off: one UNet forward for sampler and guidance",
                                on=(("engine.share_unet_forward", True),), off=(("engine.share_unet_forward", False),),
                                base=(("models.use_secondary_model", False),)),
    "resize_matrices": Lever("resize_matrices", "ResizeRight's weights cached per size pair, applied as matmuls",
                             patch=_resize_right_when_off),
    "channels_last": Lever("channels_last", "UNet weights in channels-last memory format (not an option)",
                           patch=_channels_last_when_on),
    "compile": Lever("compile", "torch.compile of the UNet (engine.compile; slow to build on a CPU)",
                     on=(("engine.compile", True),), off=(("engine.compile", False),)),
}
DEFAULT_LEVERS = ("batch_cut_batches", "share_unet_forward", "resize_matrices", "channels_last")


def measure_lever(lever: Lever, base_models, device: torch.device, *, size, cutn_batches, clips, steps: int,
                  rounds: int) -> dict:
    times: dict[bool, list[float]] = {True: [], False: []}
    x0: dict[bool, torch.Tensor] = {}
    compiled = None
    for _ in range(rounds):
        for on in (True, False):
            overrides = list(lever.base) + list(lever.on if on else lever.off)
            spec = engine_step._spec("real-default", steps + 2, size, cutn_batches, clips, overrides)
            plan = resolve_plan(spec)
            item = plan.items[0]
            models = dataclasses.replace(base_models, secondary=base_models.secondary
                                         if spec.models.use_secondary_model else None)
            if spec.engine.compile:
                compiled = compiled or compile_unet(base_models.unet)
                models = dataclasses.replace(models, unet=compiled)
            ac, timesteps, _ = sampler.respaced_alphas_cumprod(plan.steps)
            patch = lever.patch(on, models) if lever.patch else contextlib.nullcontext()
            with patch:
                r = engine_step.run_phase(spec, plan, item, models, ac, timesteps, device, item.start_index, steps)
            times[on] += r["times"]
            if on in x0 and not torch.equal(x0[on], r["x0"]):
                raise SystemExit(f"{lever.name} {'on' if on else 'off'}: two runs of the same setting differ")
            x0[on] = r["x0"]
    t_on, t_off = statistics.median(times[True]), statistics.median(times[False])
    diff = (x0[True] - x0[False]).abs().max().item()
    return {"lever": lever.name, "what": lever.what, "on": t_on, "off": t_off, "speedup": t_off / t_on,
            "on_all": times[True], "off_all": times[False],
            "identical": bool(torch.equal(x0[True], x0[False])), "max_abs_diff": diff}


def format_levers(rows: list[dict], header: str) -> str:
    lines = [header, "", "| lever | what it does | s/step on | s/step off | off / on | x̂₀ on vs off |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        same = "byte-identical" if r["identical"] else f"max abs diff {r['max_abs_diff']:.2e}"
        lines.append(f"| {r['lever']} | {r['what']} | {r['on']:.3f} | {r['off']:.3f} | {r['speedup']:.3f} | {same} |")
    return "\n".join(lines)


def main(args) -> int:
    device = torch.device(args.device)
    configure_determinism(True)
    names = args.rows.split(",") if args.rows else list(DEFAULT_LEVERS)
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        print(f"--rows: unknown levers {unknown}; choose from {', '.join(LEVERS)}", file=sys.stderr)
        return 2
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else (128, 128)
    cutn_batches = args.cutn_batches or 4
    clips = [c for c in args.clips.split(",") if c] if args.clips else ["ViTB32"]
    spec = engine_step._spec("real-default", args.steps + 2, size, cutn_batches, clips)
    base_models = engine_step.random_real_models(spec, device, with_secondary=True)
    rows = []
    for name in names:
        print(f"measuring {name} ({args.rounds} on/off pairs of {args.steps} steps)", file=sys.stderr, flush=True)
        rows.append(measure_lever(LEVERS[name], base_models, device, size=size, cutn_batches=cutn_batches,
                                  clips=clips, steps=args.steps, rounds=args.rounds))
    header = (f"Speed levers on {device.type} ({torch.get_num_threads()} threads, torch {torch.__version__}): "
              f"{size[0]}x{size[1]}, {'+'.join(clips)}, {cutn_batches} cut batches, t >= 600; median of "
              f"{args.rounds} x {args.steps} steps per setting, settings alternating")
    print(format_levers(rows, header))
    if args.json_out:
        with open(args.json_out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"header": header, "rows": rows}, sort_keys=True) + "\n")
    return 0
