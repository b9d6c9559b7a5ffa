"""Where a render ran: the environment fingerprint recorded in every manifest.

`capture_environment()` describes the machine and the numeric settings that decide whether two
renders can be byte-identical: OS, CPU model and SIMD flags, thread count, device, GPU, driver/CUDA/
cuDNN versions, determinism and TF32 settings. `package_versions()` reads versions with
importlib.metadata (nothing heavy is imported for a version). `code_version()` is disco-spec's version and
the SHA-256 of its own source files, read from disk: content only, so the id never depends on a subprocess
that can time out. The hostname and the git commit/dirty state of a source checkout (`code_checkout()`, which
asks git, briefly) are collected separately (`volatile_environment()`): they name a machine or a commit but do
not change a single pixel, so they stay outside the manifest's hashed part.

`fingerprint(manifest)` picks the fields that decide bit-exactness (FINGERPRINT_FIELDS): when two
manifests share it, the same spec must give the same bytes; otherwise only closeness (PSNR) can be
expected.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import os
import platform
import re
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

# Distribution names for each package the manifest reports (first one installed wins).
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "open_clip": ("open_clip_torch", "open-clip-torch"),
    "guided_diffusion": ("guided-diffusion-sdk", "guided-diffusion", "guided_diffusion"),
    "numpy": ("numpy",),
    "pillow": ("pillow", "Pillow"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"),
    "lpips": ("lpips",),
    "mlflow": ("mlflow", "mlflow-skinny"),
}

# Fields (dotted paths into a manifest's hashed part) that decide whether outputs can be byte-identical.
# Thread count is here on purpose: CPU reductions split work by thread, and 1 vs 2 threads give
# different bits for the smoke render (measured). Library versions other than torch are left out:
# they change outputs only through code changes, which is what `regress` is there to catch.
FINGERPRINT_FIELDS: tuple[str, ...] = (
    "environment.os.system",
    "environment.os.machine",
    "environment.cpu.model",
    "environment.cpu.simd_flags",
    "environment.torch.cpu_capability",
    "environment.threads.torch",
    "environment.device",
    "environment.gpu.name",
    "environment.gpu.compute_capability",
    "environment.gpu.cuda",
    "environment.gpu.cudnn",
    "environment.torch.deterministic_algorithms",
    "environment.torch.tf32_matmul",
    "environment.torch.tf32_cudnn",
    "environment.torch.float32_matmul_precision",
    "environment.compile",
    "packages.torch",
)

# CPU features that select different numeric kernels (x86 SIMD, ARM SIMD/SVE); the other flags
# (mitigations, virtualisation) vary with kernels and hypervisors without changing any result.
_SIMD_FLAG = re.compile(
    r"^(sse\d?(_\d)?|ssse3|sse4a|avx\w*|fma\w*|f16c|amx\w*|asimd\w*|neon|sve\w*|fphp|bf16|i8mm|sme\d*)$"
)
_GIT_TIMEOUT_S = 3.0
_NVIDIA_SMI_TIMEOUT_S = 5.0


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a render (None when not installed)."""
    out: dict[str, str | None] = {}
    for key, dists in PACKAGES.items():
        out[key] = None
        for d in dists:
            try:
                out[key] = md.version(d)
                break
            except md.PackageNotFoundError:
                continue
    return out


def _read_cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if "flags" in info or "Features" in info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_info() -> dict[str, Any]:
    info = _read_cpuinfo()
    model = info.get("model name") or info.get("Model") or info.get("cpu model") or info.get("Hardware")
    if not model and info.get("CPU implementer"):
        model = f"implementer {info.get('CPU implementer')} part {info.get('CPU part')}"
    if not model and sys.platform == "darwin":
        model = _run(["sysctl", "-n", "machdep.cpu.brand_string"], 2.0)
    model = model or platform.processor() or None
    flags = (info.get("flags") or info.get("Features") or "").split()
    return {
        "model": model,
        "vendor": info.get("vendor_id") or info.get("CPU implementer"),
        "simd_flags": sorted({f for f in flags if _SIMD_FLAG.match(f)}),
        "flags_sha256": hashlib.sha256(" ".join(sorted(set(flags))).encode()).hexdigest() if flags else None,
        "logical_cpus": os.cpu_count(),
    }


def _run(cmd: list[str], timeout: float, cwd: str | os.PathLike | None = None) -> str | None:
    """stdout of a short command, or None when it is missing, fails or takes too long."""
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def package_source_sha256() -> str:
    """SHA-256 over the disco_spec package's `.py` files as installed: one `"<sha256>  <relative path>\n"`
    line per file, sorted by path (like `sha256sum`). Any edit to the code that renders gives another value."""
    pkg = Path(__file__).resolve().parents[1]  # disco_spec/
    lines = []
    for p in sorted(pkg.rglob("*.py"), key=lambda q: q.relative_to(pkg).as_posix()):
        if "__pycache__" in p.parts:
            continue
        lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(pkg).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def code_version() -> dict[str, Any]:
    """What the manifest's hashed part records of the code: disco-spec's version and its sources' SHA-256."""
    from .._version import __version__

    return {"disco_spec": __version__, "source_sha256": package_source_sha256()}


def code_checkout() -> dict[str, Any]:
    """The git commit + dirty flag when disco-spec runs from a source checkout (None where unknown: no git,
    not a checkout, or git too slow). Outside the hashed part: it names the code, code_version() is it."""
    pkg = Path(__file__).resolve().parents[1]  # disco_spec/
    root = pkg.parent
    out: dict[str, Any] = {"git_commit": None, "git_dirty": None}
    if not (root / ".git").exists():
        return out  # an installed package (not a checkout): the version says it all
    commit = _run(["git", "-C", str(root), "rev-parse", "HEAD"], _GIT_TIMEOUT_S)
    if not commit:
        return out
    out["git_commit"] = commit
    # Dirty: any change (tracked or untracked) in the package's own sources.
    status = _run(["git", "-C", str(root), "status", "--porcelain", "--", pkg.name], _GIT_TIMEOUT_S)
    if status is not None:
        lines = [ln for ln in status.splitlines() if not ln.rstrip().endswith((".pyc", "__pycache__/"))]
        out["git_dirty"] = bool(lines)
    return out


def _torch_settings(torch: Any) -> dict[str, Any]:
    with warnings.catch_warnings():  # newer torch versions deprecate the allow_tf32 flags
        warnings.simplefilter("ignore")
        settings: dict[str, Any] = {
            "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "tf32_matmul": _safe(lambda: bool(torch.backends.cuda.matmul.allow_tf32)),
            "tf32_cudnn": _safe(lambda: bool(torch.backends.cudnn.allow_tf32)),
            "float32_matmul_precision": _safe(lambda: str(torch.get_float32_matmul_precision())),
            "cpu_capability": _safe(lambda: str(torch.backends.cpu.get_cpu_capability())),
        }
    return settings


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - an attribute missing in some torch version is simply unknown
        return None


def _gpu_info(torch: Any, device: str) -> dict[str, Any] | None:
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    idx = torch.device(device).index
    idx = torch.cuda.current_device() if idx is None else idx
    major, minor = torch.cuda.get_device_capability(idx)
    driver = _run(
        ["nvidia-smi", f"--id={idx}", "--query-gpu=driver_version", "--format=csv,noheader"], _NVIDIA_SMI_TIMEOUT_S
    )
    return {
        "name": torch.cuda.get_device_name(idx),
        "compute_capability": f"{major}.{minor}",
        "driver": driver.splitlines()[0].strip() if driver else None,
        "cuda": torch.version.cuda,
        "cudnn": _safe(lambda: torch.backends.cudnn.version()),
    }


def capture_environment(device: str | None = None, *, compile: bool = False) -> dict[str, Any]:
    """The environment part of a manifest (stable on one machine; no hostname, no time)."""
    import torch  # a render has imported it already

    device = device or "cpu"
    # Which GPUs are visible (CUDA_VISIBLE_DEVICES, device count) names the slot, not the result: Ray gives
    # every task its own, so those live in volatile_environment() and identical renders keep one id.
    env_vars = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")
                if k in os.environ}
    libc = platform.libc_ver()
    return {
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "libc": f"{libc[0]} {libc[1]}".strip() or None,
        },
        "cpu": cpu_info(),
        "threads": {"torch": torch.get_num_threads(), "torch_interop": _safe(torch.get_num_interop_threads)},
        "device": device,
        "gpu": _gpu_info(torch, device),
        "torch": _torch_settings(torch),
        "compile": bool(compile),
        "env_vars": env_vars,
    }


def volatile_environment() -> dict[str, Any]:
    """What names the machine, GPU slot or commit without changing results (kept outside the hashed part)."""
    out: dict[str, Any] = {"hostname": socket.gethostname(), "code_checkout": code_checkout()}
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        out["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        out["gpu_count"] = sys.modules["torch"].cuda.device_count()
    return out


# ---------------------------------------------------------------------------------------------
# Comparing environments
# ---------------------------------------------------------------------------------------------


def get_path(doc: Mapping[str, Any] | None, dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def fingerprint(hashed: Mapping[str, Any]) -> dict[str, Any]:
    """The FINGERPRINT_FIELDS of a manifest's hashed part (or of a whole manifest)."""
    part = hashed.get("hashed", hashed)
    return {f: get_path(part, f) for f in FINGERPRINT_FIELDS}


def fingerprint_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    fa, fb = fingerprint(a), fingerprint(b)
    return [(k, fa[k], fb[k]) for k in FINGERPRINT_FIELDS if fa[k] != fb[k]]


def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted.path: leaf} of nested dicts (lists are leaves)."""
    out: dict[str, Any] = {}
    if isinstance(doc, Mapping) and doc:
        for k, v in doc.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = doc
    return out


def differences(a: Any, b: Any, prefix: str = "", skip: Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
    """(path, a, b) for every leaf that differs between two nested dicts."""
    fa, fb = flatten(a, prefix), flatten(b, prefix)
    skip = tuple(skip)
    out = []
    for k in sorted(set(fa) | set(fb)):
        if skip and any(k == s or k.startswith(s + ".") for s in skip):
            continue
        va, vb = fa.get(k), fb.get(k)
        if va != vb:
            out.append((k, va, vb))
    return out
