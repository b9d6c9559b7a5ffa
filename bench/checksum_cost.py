"""What the per-step checksums (disco_spec.engine.checksum) cost: timed on this machine's CPU at 1280×768 on
tensors of x_t's shape, as a share of a sampler step.

    python bench/checksum_cost.py [--width 1280 --height 768 --rounds 50]

Prints a table: the median time of one checksum, of both (x_t and x̂₀) with the step's one read (read_step,
which brings 16 more bytes with the stats), and of one elementwise op on the same tensor for scale; then the
ratio to a step's time from bench/results: the CPU step (cpu-levers, DD's real architectures at only 128×128,
so the ratio at 1280×768 is smaller still) and the GPU step of the DD 5.2 reference at 1280×768 (H200).
On a GPU the checksum is one reduction kernel over 11.8 MB (the int32 words of a 1×3×768×1280 float32
tensor) plus the int64 result in the step's existing device-to-host copy: memory-bound at some TB/s, i.e.
a few microseconds plus a kernel launch, against a step of 0.6 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from disco_spec.engine.checksum import tensor_checksum
from disco_spec.engine.guidance import read_step

RESULTS = Path(__file__).resolve().parent / "results"


def _median_s(fn, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _step_seconds() -> dict[str, float]:
    out = {}
    levers = RESULTS / "cpu-levers-2026-12-01.jsonl"
    if levers.is_file():
        rows = json.loads(levers.read_text().splitlines()[0])["rows"]
        out["CPU step, cpu-levers (128×128, real architectures)"] = min(min(r["on"], r["off"]) for r in rows)
    ref = RESULTS / "dd-reference-h200.json"
    if ref.is_file():
        runs = json.loads(ref.read_text())["runs"]
        out["GPU step, DD 5.2 reference (1280×768, H200)"] = min(r["s_per_step_early"] for r in runs
                                                                   if r["width"] == 1280)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=768)
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, args.height, args.width, generator=g)
    x0 = torch.randn(1, 3, args.height, args.width, generator=g)
    stats = {f"s{i}": torch.tensor(float(i)) for i in range(6)}
    rows = {
        "checksum of x_t": _median_s(lambda: tensor_checksum(x), args.rounds),
        "checksums of x_t and x̂₀ + the step's read": _median_s(
            lambda: read_step(stats, {"x_t": tensor_checksum(x), "x0": tensor_checksum(x0)}), args.rounds),
        "the step's read without checksums": _median_s(lambda: read_step(stats, {}), args.rounds),
        "for scale: x * 2 (one elementwise op)": _median_s(lambda: x * 2, args.rounds),
    }
    steps = _step_seconds()
    print(f"checksum cost on the CPU ({torch.get_num_threads()} thread(s), torch {torch.__version__}), "
          f"1x3x{args.height}x{args.width} float32, median of {args.rounds}")
    head = "| what | ms |" + "".join(f" share of the {k} ({v:.3f} s) |" for k, v in steps.items())
    print(head)
    print("|---|---|" + "---|" * len(steps))
    for name, s in rows.items():
        print(f"| {name} | {s * 1e3:.3f} |" + "".join(f" {100 * s / v:.4f} % |" for v in steps.values()))


if __name__ == "__main__":
    main()
