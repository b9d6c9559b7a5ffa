#!/usr/bin/env python3
"""The Python steps of bench/gpu_check.sh (each prints its result lines and one JSON line; exit 0 = passed).

    python bench/gpu_check.py probes --device cuda [--quick]
        the kernels the guidance differentiates, each run twice in deterministic mode and compared bitwise
        (outputs and gradients), all values finite: attention forward + backward at CLIP's token counts (50,
        197 and 77 causal), index_select's backward at cutout sizes, the convolution backward of the ViT patch
        embeddings, RN50's stem and the secondary model's convolutions, average and max pooling, nearest
        upsampling; and which attention kernel ran (the profiler's kernel names).
    python bench/gpu_check.py modes --device cuda --out DIR [--quick]
        every mode of the tiny specs rendered twice: still with and without the secondary model, PLMS with 2
        cut batches, image prompts, init image + LPIPS, Perlin, 2D and 3D (2 frames each). Per mode: the PNGs'
        pixel hashes equal, every x̂₀ finite, every step's statistics finite and the NaN guard never fired.

On a CUDA device the precision is DD's (fp16 where a render uses it); `--device cpu` runs the same at tiny sizes.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
import tomllib
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------
# kernel probes
# ---------------------------------------------------------------------------------------------


def _probe_cases(device: torch.device, quick: bool) -> dict:
    """name -> function(generator) returning (outputs, inputs needing a gradient)."""
    half = torch.float16 if device.type == "cuda" else torch.float32
    s = 4 if device.type == "cpu" else 1  # tiny sizes on a CPU
    n_cuts = 2 if device.type == "cpu" else 16

    def rand(*shape, dtype=torch.float32, gen):
        return torch.randn(*shape, generator=gen, device="cpu").to(device=device, dtype=dtype).requires_grad_()

    def attention(tokens: int, causal: bool):
        def run(gen):
            q, k, v = (rand(n_cuts, 12, tokens, 64, dtype=half, gen=gen) for _ in range(3))
            mask = None
            if causal:  # open_clip's text mask: -inf above the diagonal, in the query's dtype
                mask = torch.full((tokens, tokens), float("-inf"), device=device).triu(1).to(half)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), (q, k, v)
        return run

    def index_select(gen):
        h, w = 768 // s, 1280 // s
        x = rand(1, 3, h, w, gen=gen)
        r = 224 // s
        idx = torch.randint(0, h * w, (n_cuts * r * r,), generator=gen).to(device)
        return x.flatten(2).index_select(2, idx), (x,)

    def conv(cin: int, cout: int, k: int, stride: int, size: int, batch: int, dtype):
        def run(gen):
            x = rand(batch, cin, size // s, size // s, dtype=dtype, gen=gen)
            w = rand(cout, cin, k, k, dtype=dtype, gen=gen)
            return F.conv2d(x, w, stride=stride, padding=k // 2 if stride == 1 else 0), (x, w)
        return run

    def pooling(gen):
        x = rand(n_cuts, 64, 112 // s, 112 // s, dtype=half, gen=gen)
        return F.avg_pool2d(x, 2).sum() + F.max_pool2d(x.float(), 2).sum(), (x,)

    def upsample(gen):
        x = rand(1, 256, 48 // s, 80 // s, dtype=half, gen=gen)
        return F.interpolate(x, scale_factor=2, mode="nearest"), (x,)

    cases = {
        "attention ViT-B/32 (50 tokens)": attention(50, False),
        "attention ViT-B/16 (197 tokens)": attention(197, False),
        "attention text (77 tokens, causal)": attention(77, True),
        "index_select backward (cutouts)": index_select,
        "conv backward ViT-B/32 patches": conv(3, 768, 32, 32, 224, n_cuts, half),
        "conv backward ViT-B/16 patches": conv(3, 768, 16, 16, 224, n_cuts, half),
        "conv backward RN50 stem": conv(3, 32, 3, 2, 224, n_cuts, half),
        "conv backward secondary model": conv(64, 64, 3, 1, 384, 1, torch.float32),
        "pooling backward": pooling,
        "nearest upsample backward": upsample,
    }
    if quick:
        cases = {k: v for i, (k, v) in enumerate(cases.items()) if i in (0, 3, 4, 9)}
    return cases


def _run_case(fn, device: torch.device, seed: int):
    gen = torch.Generator().manual_seed(seed)
    out, inputs = fn(gen)
    grads = torch.autograd.grad(out.float().square().sum(), inputs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return [out.detach(), *(g.detach() for g in grads)]


def probes(device: torch.device, quick: bool) -> int:
    torch.use_deterministic_algorithms(True)
    ok_all, rows = True, []
    for i, (name, fn) in enumerate(_probe_cases(device, quick).items()):
        try:
            a, b = _run_case(fn, device, i), _run_case(fn, device, i)
            same = all(torch.equal(x, y) for x, y in zip(a, b))
            finite = all(bool(torch.isfinite(x).all()) for x in a)
            detail = ("bitwise equal" if same else "DIFFERENT") + (", finite" if finite else ", NOT FINITE")
            ok = same and finite
        except Exception as exc:  # noqa: BLE001 - a kernel that throws is this probe's failure
            ok, detail = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ok_all &= ok
        rows.append({"probe": name, "ok": ok, "detail": detail})
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    kernels = attention_kernels(device)
    print(f"  attention kernels: {', '.join(kernels) or '(none seen)'}", flush=True)
    print(json.dumps({"step": "probes", "ok": ok_all, "probes": rows, "attention_kernels": kernels}))
    return 0 if ok_all else 1


def attention_kernels(device: torch.device) -> list[str]:
    """Names of the attention kernels the profiler saw for one forward + backward at ViT-B/16's token count."""
    from torch.profiler import ProfilerActivity, profile

    fn = _probe_cases(device, False)["attention ViT-B/16 (197 tokens)"]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        _run_case(fn, device, 0)
    names = {e.name for e in prof.events()}
    wanted = ("attention", "flash", "fmha", "efficient", "cudnn", "sdpa")
    return sorted(n[:80] for n in names if any(w in n.lower() for w in wanted) and not n.startswith("autograd::"))[:12]


# ---------------------------------------------------------------------------------------------
# every tiny mode, twice
# ---------------------------------------------------------------------------------------------

INIT = "assets/init-gradient.png"
MODES = {
    "still": {},
    "still, secondary off": {"models": {"use_secondary_model": False}},
    "PLMS, 2 cut batches": {"diffusion": {"diffusion_sampling_mode": "plms"}, "cuts": {"cutn_batches": 2}},
    "image prompts": {"prompts": {"image_prompts": {"0": [INIT + ":0.5"]}}},
    "init image + LPIPS": {"init": {"init_image": INIT, "init_scale": 1000}},
    "Perlin": {"init": {"perlin_init": True, "perlin_mode": "mixed"}},
    "2D, 2 frames": {"animation": {"animation_mode": "2D", "max_frames": 2}},
    "3D, 2 frames": {"animation": {"animation_mode": "3D", "max_frames": 2}},
}


def _mode_spec(patch: dict, device: torch.device, steps: int, skip: int):
    from disco_spec.spec.load import validate_document

    doc = copy.deepcopy(tomllib.loads((ROOT / "specs" / "smoke.toml").read_text()))
    doc["diffusion"]["steps"] = steps
    doc["init"]["skip_steps"] = skip
    doc.setdefault("engine", {})["device"] = device.type
    for section, values in patch.items():
        doc.setdefault(section, {}).update(values)
    return validate_document(doc)


class _Watch:
    """Every step's statistics and every x̂₀ of a render (BaseObserver + a wrapper of the sampler's steps)."""

    def __init__(self) -> None:
        self.stats: list[dict] = []
        self.x0_steps = 0
        self.x0_not_finite = 0

    def on_start(self, result) -> None: ...
    def on_output(self, result, record) -> None: ...
    def on_end(self, result) -> None: ...

    def on_step(self, event) -> None:
        self.stats.append(dict(event.stats))

    def wrap(self, sample_item):
        def watched(*args, **kwargs):
            for state in sample_item(*args, **kwargs):
                self.x0_steps += 1
                self.x0_not_finite += int(not bool(torch.isfinite(state[2]).all()))
                yield state
        return watched


def _render_once(spec, out: Path) -> tuple[list[str], _Watch]:
    from disco_spec.record.pngmeta import pixels_sha256
    from disco_spec.run import diffuse
    from disco_spec.run.renderer import render

    watch = _Watch()
    real = diffuse.sample_item
    diffuse.sample_item = watch.wrap(real)
    try:
        result = render(spec, run_dir=out, progress=False, spec_dir=str(ROOT / "specs"))
    finally:
        diffuse.sample_item = real
    return [pixels_sha256(result.run_dir / o.path) for o in result.outputs], watch


def modes(device: torch.device, out: Path, quick: bool) -> int:
    steps, skip = (3, 2) if quick else (4, 2)  # 1 (quick) or 2 guided steps per image / frame
    chosen = {"still": MODES["still"]} if quick else MODES
    ok_all, rows = True, []
    for i, (name, patch) in enumerate(chosen.items()):
        t0 = time.perf_counter()
        try:
            spec = _mode_spec(patch, device, steps, skip)
            (h1, w1), (h2, _) = (_render_once(spec, out / f"mode{i}-{run}") for run in (1, 2))
            same = bool(h1) and h1 == h2
            finite = all(math.isfinite(v) for s in w1.stats for v in s.values())
            guard = sum(s.get("nan_guard", 0.0) for s in w1.stats)
            ok = same and finite and guard == 0 and w1.x0_steps > 0 and w1.x0_not_finite == 0
            detail = (f"{len(h1)} image(s) {'identical' if same else 'DIFFERENT'}, x̂₀ finite in "
                      f"{w1.x0_steps - w1.x0_not_finite}/{w1.x0_steps} steps, statistics "
                      f"{'finite' if finite else 'NOT FINITE'}, NaN guard fired {int(guard)}x")
        except Exception as exc:  # noqa: BLE001 - a mode that crashes is this mode's failure
            ok, detail = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        ok_all &= ok
        rows.append({"mode": name, "ok": ok, "detail": detail, "seconds": round(time.perf_counter() - t0, 1)})
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(json.dumps({"step": "modes", "ok": ok_all, "modes": rows}))
    return 0 if ok_all else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["probes", "modes"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None, help="modes: the folder for the renders")
    ap.add_argument("--quick", action="store_true", help="a few probes, the still mode only (the suite's check)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.step == "probes":
        return probes(device, args.quick)
    if args.out is None:
        ap.error("modes needs --out")
    return modes(device, Path(args.out), args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
