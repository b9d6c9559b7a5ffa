"""`engine_step.py --vs-reference`: DD 5.2's reference step and disco-spec, one after the other, one table.

Each row runs three processes in turn (so neither implementation inherits the other's allocator, caches
or global settings): the reference's own command line (dd_reference_step.py, its timing), disco-spec's
timing mode at the same settings (engine_step.py, random weights built as a render loads them, FLOPs of
one step per regime counted after the timed steps), and the reference's FLOP count (step_flops.py). The
matmul throughput that turns FLOPs into a floor is measured here, in the same call.

Columns: s/step in each cut regime (t >= 600: 12 overview + 4 inner cuts; t < 600: 4 + 12) as medians
of the timed steps; their mean; peak memory (GPU: torch's peak allocated bytes; CPU: the process's peak
resident set, models included); TFLOP per step (mean of the regimes); the multiple of the floor, which
is the FLOPs of the step that does less work (the two count the same arithmetic except where disco-spec
skips some) at the measured matmul rate. The speed-up is the reference's mean s/step over disco-spec's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
DEFAULT_REFERENCE = BENCH.parent.parent / "shared" / "bench" / "dd_reference_step.py"


@dataclass(frozen=True)
class Row:
    name: str
    width: int
    height: int
    secondary: bool
    cutn_batches: int
    phases: tuple[str, ...] = ("early", "late")
    ds_set: tuple[str, ...] = ()  # extra spec settings for disco-spec (KEY=VALUE)
    with_reference: bool = True  # False: disco-spec alone (a variant of a row measured with the reference)

    @property
    def label(self) -> str:
        extra = "".join(f", {kv}" for kv in self.ds_set)
        return (f"{self.width}x{self.height}, secondary {'on' if self.secondary else 'off'}, "
                f"{self.cutn_batches} cut batch(es){extra}")


ROWS = {
    "dd-default": Row("dd-default", 1280, 768, True, 4),
    "secondary-off": Row("secondary-off", 1280, 768, False, 4),
    "512": Row("512", 512, 512, True, 4, ("early",)),
    # the opt-in lever batch_cut_batches (every cut batch in one CLIP forward): the memory and time it trades
    # against the row above (disco-spec alone)
    "dd-default-batched": Row("dd-default-batched", 1280, 768, True, 4, ds_set=("engine.batch_cut_batches=true",),
                              with_reference=False),
    "cpu-secondary-on": Row("cpu-secondary-on", 256, 256, True, 1),
    "cpu-secondary-off": Row("cpu-secondary-off", 256, 256, False, 1),
    # a few minutes on a CPU: checks the whole pipeline (tests, gpu_speed.sh --cpu)
    "smoke": Row("smoke", 64, 64, True, 1, ("early",)),
}
DEFAULT_ROWS = {"cuda": "dd-default,secondary-off,512", "cpu": "cpu-secondary-on,cpu-secondary-off"}


def run_child(cmd: list[str], log: Path, timeout: float) -> tuple[int, float]:
    """Run `cmd` (output to `log`); (exit status, the child's peak resident set in GiB)."""
    with open(log, "ab") as fh:
        fh.write(("$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return proc.returncode, usage.ru_maxrss / 2**20  # KiB on Linux
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = 124
                return 124, usage.ru_maxrss / 2**20
            time.sleep(0.2)


def _last_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    lines = [line for line in path.read_text().splitlines() if line.strip().startswith("{")]
    return json.loads(lines[-1]) if lines else None


def measure_row(row: Row, *, device: str, reference: Path, steps: int, warmup: int, workdir: Path,
                timeout: float = 1800) -> dict:
    """Both implementations at one row's settings: {'reference': {...}, 'disco-spec': {...}}."""
    py = sys.executable
    log = workdir / f"{row.name}.log"
    phase_arg = "both" if len(row.phases) == 2 else row.phases[0]
    ref_json, ds_json, flops_json = (workdir / f"{row.name}-{k}.jsonl" for k in ("ref", "ds", "ref-flops"))
    common = ["--device", device, "--width", str(row.width), "--height", str(row.height),
              "--secondary", "on" if row.secondary else "off", "--cutn-batches", str(row.cutn_batches)]
    rc_ref = rss_ref = rc_fl = 0
    if row.with_reference:
        rc_ref, rss_ref = run_child([py, str(reference), *common, "--phase", phase_arg, "--steps-timed", str(steps),
                                     "--warmup", str(warmup), "--json-out", str(ref_json)], log, timeout)
    sets = [f"models.use_secondary_model={'true' if row.secondary else 'false'}", *row.ds_set]
    rc_ds, rss_ds = run_child([py, "-W", "ignore", str(BENCH / "engine_step.py"), "--config", "real-default",
                               "--device", device, "--size", f"{row.width}x{row.height}",
                               "--cutn-batches", str(row.cutn_batches), *(a for kv in sets for a in ("--set", kv)),
                               "--steps", str(steps), "--warmup", str(warmup), "--phases", *row.phases,
                               "--count-flops", "--json-out", str(ds_json)], log, timeout)
    if row.with_reference:
        rc_fl, _ = run_child([py, str(BENCH / "step_flops.py"), "reference", "--ref", str(reference), *common,
                              "--json-out", str(flops_json)], log, timeout)
    ref, ds, ref_flops = _last_json(ref_json), _last_json(ds_json), _last_json(flops_json) or {}
    out: dict = {"row": row.name, "label": row.label, "log": str(log)}
    if not row.with_reference:
        out["reference"] = {"skipped": True}
    elif ref is not None and rc_ref == 0:
        out["reference"] = {
            "early": ref["sec_per_step_median"] if "early" in row.phases else None,
            "late": ref.get("late_sec_per_step_median") if len(row.phases) == 2 else (
                ref["sec_per_step_median"] if row.phases == ("late",) else None),
            "peak_mem_gib": ref["peak_mem_gib"] if ref.get("peak_mem_gib") is not None else round(rss_ref, 3),
            "early_flops": ref_flops.get("early_flops"), "late_flops": ref_flops.get("late_flops"),
        }
    else:
        out["reference"] = {"error": f"exit {rc_ref} (see {log})"}
    if ds is not None and rc_ds == 0:
        out["disco-spec"] = {
            "early": ds.get("early"), "late": ds.get("late"),
            "peak_mem_gib": ds["peak_mem_gib"] if ds.get("peak_mem_gib") is not None else round(rss_ds, 3),
            "early_flops": ds.get("early_flops"), "late_flops": ds.get("late_flops"),
        }
    else:
        out["disco-spec"] = {"error": f"exit {rc_ds} (see {log})"}
    if rc_fl != 0:
        out["reference"]["flops_error"] = f"exit {rc_fl} (see {log})"
    return out


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.mean(vals) if vals else None


def summarise(result: dict, flop_per_s: float, phases: tuple[str, ...]) -> dict:
    """Means over the cut regimes, the floor, each implementation's multiple of it and the speed-up."""
    impls = {k: result[k] for k in ("reference", "disco-spec")}
    for r in impls.values():
        if "error" in r or r.get("skipped"):
            continue
        r["mean"] = _mean(r.get(p) for p in phases)
        r["flops"] = _mean(r.get(f"{p}_flops") for p in phases)
    counted = [r["flops"] for r in impls.values() if r.get("flops")]
    floor_s = min(counted) / flop_per_s if counted else None
    result["floor_s"] = floor_s
    for r in impls.values():
        r["x_floor"] = r["mean"] / floor_s if floor_s and r.get("mean") else None
    ref, ds = impls["reference"].get("mean"), impls["disco-spec"].get("mean")
    result["speedup"] = ref / ds if ref and ds else None
    return result


def _f(v, fmt="{:.3f}") -> str:
    return "—" if v is None else fmt.format(v)


def format_table(results: list[dict], matmul: dict, device_name: str) -> str:
    lines = [f"Per-step time, DD 5.2 reference vs disco-spec, on {device_name}; floor: FLOPs at "
             f"{matmul['flop_per_s'] / 1e12:.2f} TFLOP/s ({matmul['dtype']} {matmul['n']}³ matmul, measured in this call)",
             "",
             "| configuration | implementation | s/step t≥600 | s/step t<600 | mean s/step | peak mem GiB | TFLOP/step | × floor | speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for impl in ("reference", "disco-spec"):
            r = res[impl]
            if r.get("skipped"):
                continue
            if "error" in r:
                lines.append(f"| {res['label']} | {impl} | {r['error']} | | | | | | |")
                continue
            speed = _f(res.get("speedup"), "{:.2f}×") if impl == "disco-spec" else ""
            lines.append(f"| {res['label']} | {impl} | {_f(r.get('early'))} | {_f(r.get('late'))} | {_f(r.get('mean'))} "
                         f"| {_f(r.get('peak_mem_gib'), '{:.2f}')} | {_f(r.get('flops') and r['flops'] / 1e12, '{:.2f}')} "
                         f"| {_f(r.get('x_floor'), '{:.1f}')} | {speed} |")
    return "\n".join(lines)


def main_vs_reference(args) -> int:
    """The table for `args.rows` (default: DD's default still on CUDA, 256x256 on a CPU)."""
    from step_flops import matmul_throughput

    device = torch.device(args.device)
    names = (args.rows or DEFAULT_ROWS[device.type]).split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"--rows: unknown {unknown}; choose from {', '.join(ROWS)}", file=sys.stderr)
        return 2
    reference = Path(args.reference or DEFAULT_REFERENCE)
    if not reference.is_file():
        print(f"--reference: {reference} is not a file (the shared bench's dd_reference_step.py)", file=sys.stderr)
        return 2
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="disco-spec-vs-reference-"))
    workdir.mkdir(parents=True, exist_ok=True)
    matmul = matmul_throughput(device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    results = []
    for name in names:  # each row is written as soon as it is measured: a cut-short call keeps the rows it has
        row = ROWS[name]
        print(f"measuring {row.label} (logs: {workdir}/{row.name}.log)", file=sys.stderr, flush=True)
        res = measure_row(row, device=args.device, reference=reference, steps=args.steps, warmup=args.warmup,
                          workdir=workdir, timeout=args.child_timeout)
        results.append(summarise(res, matmul["flop_per_s"], row.phases))
        for line in format_table(results[-1:], matmul, device_name).splitlines()[4:]:  # the row, as it finishes
            print(f"row: {line}", flush=True)
        if args.json_out:
            with open(args.json_out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"device": device_name, "torch": torch.__version__, "matmul": matmul,
                                     "steps": args.steps, "warmup": args.warmup, **results[-1]}, sort_keys=True) + "\n")
    print(format_table(results, matmul, device_name))
    failed = any("error" in r[k] for r in results for k in ("reference", "disco-spec"))
    return 1 if failed else 0
