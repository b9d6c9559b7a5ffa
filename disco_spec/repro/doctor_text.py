"""The text `disco-spec doctor` prints for a DoctorReport (one fact per line, the verdict last)."""

from __future__ import annotations

from typing import Any


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def _on(v: Any) -> str:
    return "unknown" if v is None else ("on" if v else "off")


def _models_line(models: list[dict[str, Any]]) -> list[str]:
    present = [m["name"] for m in models if m["present"]]
    missing = [m["name"] for m in models if not m["present"]]
    lines = [f"models       {len(present)} of {len(models)} registered models in the cache"]
    lines.append(f"  present    {', '.join(present) if present else '(none)'}")
    lines.append(f"  missing    {', '.join(missing) if missing else '(none)'}")
    return lines


def report_text(report: Any) -> str:
    env = report.environment
    gpu = env.get("gpu") or {}
    torch_settings = env.get("torch") or {}
    env_vars = env.get("env_vars") or {}
    lines = ["disco-spec doctor"]
    if report.device == "cuda":
        lines.append(f"device       cuda: {gpu.get('name')} (compute capability {gpu.get('compute_capability')})")
        lines.append(f"versions     torch {report.packages.get('torch')}, CUDA {gpu.get('cuda')}, "
                     f"cuDNN {gpu.get('cudnn')}, driver {gpu.get('driver')}")
    else:
        cpu = env.get("cpu") or {}
        lines.append(f"device       cpu: {cpu.get('model')} ({cpu.get('logical_cpus')} logical CPUs)")
        lines.append(f"versions     torch {report.packages.get('torch')} (CPU capability "
                     f"{torch_settings.get('cpu_capability')}); no GPU in use")
    lines.append(f"determinism  deterministic algorithms {_on(torch_settings.get('deterministic_algorithms'))}, "
                 f"cudnn.deterministic {_on(torch_settings.get('cudnn_deterministic'))}, "
                 f"cudnn.benchmark {_on(torch_settings.get('cudnn_benchmark'))}, "
                 f"CUBLAS_WORKSPACE_CONFIG={env_vars.get('CUBLAS_WORKSPACE_CONFIG', '(unset)')}")
    lines.append(f"TF32         matmul {_on(torch_settings.get('tf32_matmul'))}, "
                 f"cuDNN {_on(torch_settings.get('tf32_cudnn'))}, "
                 f"float32 matmul precision {torch_settings.get('float32_matmul_precision')}")
    threads = env.get("threads") or {}
    lines.append(f"threads      torch {threads.get('torch')} "
                 f"(OMP_NUM_THREADS={env_vars.get('OMP_NUM_THREADS', '(unset)')})")
    where = "GPU memory" if report.device == "cuda" else "RAM"
    lines.append(f"memory       {_gib(report.memory.get('free'))} free of {_gib(report.memory.get('total'))} ({where})")
    lines.append(f"cache        {report.cache['root']} (weights in {report.cache['models']}, tiny models in "
                 f"{report.cache['tiny']})")
    lines += _models_line(report.models)
    fewer = (f" (the spec has {report.spec_steps}; fewer steps keep the check quick)"
             if report.steps != report.spec_steps else "")
    lines.append(f"smoke render {report.spec} with diffusion.steps = {report.steps}{fewer}, twice on "
                 f"{report.device}, no tracking")
    for i, r in enumerate(report.renders, 1):
        if r.error:
            lines.append(f"  render {i}   FAILED: {r.error}")
            continue
        hashes = ", ".join(f"{p} {h[:16]}" for p, h in r.outputs.items())
        lines.append(f"  render {i}   {r.seconds:.1f} s, manifest {(r.manifest_id or '?')[:16]}, {hashes}")
    if report.ok:
        n = len(report.renders[0].outputs)
        lines.append(f"result       IDENTICAL: both renders wrote the same {n} output file(s), byte for byte, "
                     "and the same manifest id")
    else:
        lines.append("result       DIFFERENT: the two renders are not identical")
        lines += [f"  - {d}" for d in report.differences]
        lines.append("what to change:")
        lines += [f"  - {a}" for a in report.advice]
    return "\n".join(lines)
