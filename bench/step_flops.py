#!/usr/bin/env python3
"""FLOPs of one sampler step (torch.utils.flop_counter), and the matmul throughput that makes them a floor.

The floor of a step is its FLOPs at the throughput of one large matmul measured on the same device in the
same call (bf16 on CUDA, as tensor cores run DD's fp16 models; float32 on a CPU, where the models run in
float32): no implementation of the same arithmetic can be faster. `count_flops` counts every matmul,
convolution and attention kernel, forward and backward. torch counts scaled-dot-product attention only
for its CUDA kernels; the CPU kernel is registered here with the same formulas, so a CPU count sees the
CLIP models' attention too.

    python bench/step_flops.py matmul [--device cuda]
    python bench/step_flops.py reference --ref ../shared/bench/dd_reference_step.py --width 256 --height 256 \
        --secondary on --cutn-batches 1 [--device cpu] [--json-out F]

`reference` builds DD 5.2's reference step (random weights) and counts the first step of each cut regime.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

_registered = False


def _register_cpu_attention() -> None:
    """The CPU attention kernels, counted as torch counts the CUDA ones (same shapes, same formulas)."""
    global _registered
    if _registered:
        return
    aten = torch.ops.aten
    fwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    bwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if fwd is not None and fwd.default not in flop_counter.flop_registry:
        @flop_counter.register_flop_formula(fwd)
        def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    if bwd is not None and bwd.default not in flop_counter.flop_registry:
        @flop_counter.register_flop_formula(bwd)
        def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                               **kwargs) -> int:
            return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    _registered = True


class _FlopCount(TorchDispatchMode):
    """Sums torch's FLOP formulas over every op dispatched. (FlopCounterMode itself also tracks modules
    with backward hooks, which torch refuses inside autograd.grad -- how DD's guidance differentiates.)"""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_counter.flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[], Any], device: torch.device) -> tuple[int, Any]:
    """(FLOPs of everything `fn` runs, forward and backward, its result)."""
    _register_cpu_attention()
    with _FlopCount() as counter:
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return counter.total, out


def matmul_throughput(device: torch.device, *, n: int | None = None, repeats: int = 5) -> dict:
    """FLOP/s of an n×n×n matmul (bf16 on CUDA, float32 on a CPU), the best of `repeats`."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = n or (8192 if device.type == "cuda" else 2048)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    torch.matmul(a, b)  # warm-up (kernel choice, caches)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return {"dtype": str(dtype).replace("torch.", ""), "n": n, "flop_per_s": 2 * n**3 / best,
            "threads": torch.get_num_threads()}


def _load_reference(path: str):
    spec = importlib.util.spec_from_file_location("dd_reference_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_flops(ref_path: str, *, device: str, width: int, height: int, secondary: str,
                    cutn_batches: int) -> dict:
    """FLOPs of the first step of each cut regime of DD 5.2's reference step at these settings."""
    ref = _load_reference(ref_path)
    args = ref.parse_args(["--device", device, "--secondary", secondary, "--width", str(width),
                           "--height", str(height), "--cutn-batches", str(cutn_batches)])
    ctx = ref.setup(args)
    out = {}
    for phase in ("early", "late"):
        gen = ref.start_sampler(ctx, ref.make_cond_fn(ctx), ref.first_skip(ctx, phase))
        ctx.state["step_no"] += 1
        out[f"{phase}_flops"], _ = count_flops(lambda: next(gen), ctx.device)
        gen.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["matmul", "reference"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ref", default=str(Path(__file__).resolve().parents[2] / "shared" / "bench" / "dd_reference_step.py"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=768)
    ap.add_argument("--secondary", choices=["on", "off"], default="on")
    ap.add_argument("--cutn-batches", type=int, default=4)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    if args.what == "matmul":
        record = matmul_throughput(torch.device(args.device))
    else:
        record = reference_flops(args.ref, device=args.device, width=args.width, height=args.height,
                                 secondary=args.secondary, cutn_batches=args.cutn_batches)
    line = json.dumps(record, sort_keys=True)
    if args.json_out:
        with open(args.json_out, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
