"""`disco-spec doctor`: can this machine render, and render reproducibly?

For the person setting up a GPU box or a CI runner. `run_doctor()` describes the device (name, compute
capability, driver / CUDA / cuDNN / torch versions, determinism and TF32 settings, free memory), the
model cache and which registered models are in it, then renders the tiny smoke spec twice on that
device through the real render path (`disco_spec.run.renderer.render`, into a temporary folder, no
tracking) and compares the two renders: every output file's SHA-256 as found on disk, and the manifest
ids. It returns a `DoctorReport`; `ok` is true only when both renders ran and are identical. When they
are not, the report names what differed and what to change.

Versions and GPU facts come from disco_spec.record.environment (the same fields every manifest records).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..hashes import file_sha256
from ..models.registry import list_models
from ..models.resolve import entry_path
from ..models.weights import cache_dir, tiny_dir, weights_dir
from ..record import environment
from ..run.renderer import render
from .divergence import divergence
from ..spec.load import load_spec, spec_to_document, validate_document

DEVICES = ("auto", "cuda", "cpu")
# Steps of the doctor's renders: the smoke spec has 12 (and skips 2); 6 keep two renders quick on a CPU
# and still run 4 guided steps, every kind of work a render does (guidance, cuts, secondary model, PNGs).
DEFAULT_STEPS = 6
# The workspace setting cuBLAS needs for deterministic results (either value; torch's documentation).
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")


def smoke_spec_path() -> Path:
    """specs/smoke.toml of this checkout, else of the current folder (SpecError when neither has one)."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        p = base / "specs" / "smoke.toml"
        if p.is_file():
            return p
    raise SpecError("--spec", [("--spec", "specs/smoke.toml was not found (neither beside the disco_spec package "
                                          "nor in the current folder): pass --spec PATH")])


def resolve_device(device: str) -> str:
    """'auto' -> cuda when available, else cpu; 'cuda' without CUDA is an input error (exit 2)."""
    if device not in DEVICES:
        raise SpecError("--device", [("--device", f"must be one of {', '.join(DEVICES)} (got {device!r})")])
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise SpecError("--device", [("--device", f"cuda was asked for but torch {torch.__version__} ({built}) sees "
                                                  "no CUDA device: check `nvidia-smi`, the driver and "
                                                  "CUDA_VISIBLE_DEVICES, or use --device cpu")])
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def free_memory(device: str) -> dict[str, int | None]:
    """Free and total bytes of the device's memory (GPU memory on CUDA, the machine's RAM on a CPU)."""
    if device == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info()
        return {"free": int(free), "total": int(total)}
    info: dict[str, int | None] = {"free": None, "total": None}
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key in ("MemAvailable", "MemTotal") and value.strip().endswith("kB"):
                info["free" if key == "MemAvailable" else "total"] = int(value.split()[0]) * 1024
    except OSError:
        pass  # not Linux: unknown
    return info


def model_inventory() -> list[dict[str, Any]]:
    """Every registered model: name, role, tiny or not, present in the cache or not."""
    return [{"name": e.name, "role": e.role, "tiny": bool(e.tiny), "present": entry_path(e).is_file()}
            for e in list_models()]


@dataclass
class RenderCheck:
    """One of the doctor's two renders: what it wrote and the hashes compared."""

    run_dir: str
    manifest_id: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # path in the run folder -> sha256 on disk
    seconds: float = 0.0
    error: str | None = None
    environment: dict[str, Any] | None = None  # the manifest's environment (what the render ran with)


@dataclass
class DoctorReport:
    device: str
    environment: dict[str, Any]
    packages: dict[str, str | None]
    memory: dict[str, int | None]
    cache: dict[str, str]
    models: list[dict[str, Any]]
    spec: str
    spec_steps: int
    steps: int
    renders: list[RenderCheck]
    differences: list[str]
    advice: list[str]

    @property
    def ok(self) -> bool:
        return len(self.renders) == 2 and not self.differences and all(r.error is None for r in self.renders)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def to_text(self) -> str:
        from .doctor_text import report_text

        return report_text(self)


def _check_render(spec: Any, run_dir: Path, spec_dir: str) -> RenderCheck:
    check = RenderCheck(run_dir=str(run_dir))
    try:
        result = render(spec, run_dir.parent, run_dir=run_dir, progress=False, spec_dir=spec_dir, fetch=False,
                        cache=False)  # the doctor tests this stack: never served from the render cache
    except Exception as exc:  # noqa: BLE001 - a failed render is the doctor's finding, not a crash
        check.error = f"{type(exc).__name__}: {exc}"
        return check
    check.seconds = float(result.seconds)
    manifest = result.manifest or {}
    check.manifest_id = manifest.get("id")
    check.environment = (manifest.get("hashed") or {}).get("environment")
    for rec in sorted({r.path for r in result.outputs}):
        check.outputs[rec] = file_sha256(Path(result.run_dir) / rec)
    return check


def compare_renders(a: RenderCheck, b: RenderCheck) -> list[str]:
    """What differs between two renders of one spec (empty when identical)."""
    out = [f"render {i} failed: {r.error}" for i, r in ((1, a), (2, b)) if r.error]
    if out:
        return out
    for path in sorted(set(a.outputs) | set(b.outputs)):
        ha, hb = a.outputs.get(path), b.outputs.get(path)
        if ha != hb:
            out.append(f"output {path}: sha256 {_short(ha)} (render 1) != {_short(hb)} (render 2)")
    if a.manifest_id != b.manifest_id:
        out.append(f"manifest id: {_short(a.manifest_id)} (render 1) != {_short(b.manifest_id)} (render 2)")
    for key, va, vb in environment.differences(a.environment or {}, b.environment or {}, prefix="environment"):
        out.append(f"{key}: {va!r} (render 1) != {vb!r} (render 2)")
    return out


def _short(h: str | None) -> str:
    return "(missing)" if h is None else h[:16]


def advice_for(device: str, env: dict[str, Any], renders: list[RenderCheck], differences: list[str]) -> list[str]:
    """What to change, from the settings the renders ran with and what went wrong."""
    if not differences:
        return []
    torch_settings = env.get("torch") or {}
    env_vars = env.get("env_vars") or {}
    errors = " ".join(r.error or "" for r in renders)
    out: list[str] = []
    if "CUBLAS_WORKSPACE_CONFIG" in errors or (
            device == "cuda" and env_vars.get("CUBLAS_WORKSPACE_CONFIG") not in CUBLAS_DETERMINISTIC):
        out.append("export CUBLAS_WORKSPACE_CONFIG=:4096:8 in the shell, before Python starts (cuBLAS reads it once)")
    if "deterministic" in errors and "CUBLAS_WORKSPACE_CONFIG" not in errors:
        out.append("an operation without a deterministic CUDA implementation ran in the render path: that is a "
                   "disco-spec bug, please report it with this output; engine.deterministic = false renders, "
                   "but not reproducibly")
    if not torch_settings.get("deterministic_algorithms", True):
        out.append("set engine.deterministic = true in the spec (torch.use_deterministic_algorithms)")
    if torch_settings.get("cudnn_benchmark"):
        out.append("turn cuDNN autotuning off: torch.backends.cudnn.benchmark = False")
    if device == "cuda" and (torch_settings.get("tf32_matmul") or torch_settings.get("tf32_cudnn")):
        out.append("TF32 is on (torch.backends.cuda.matmul.allow_tf32 / torch.backends.cudnn.allow_tf32): it is not "
                   "random by itself, but set both to False to rule it out")
    if device == "cpu" and "OMP_NUM_THREADS" not in env_vars:
        out.append("fix the thread count: export OMP_NUM_THREADS=N (CPU reductions split work by thread)")
    if any(d.startswith("environment.") for d in differences):
        out.append("the environment changed between the two renders (fields above): keep it fixed for a process")
    if not any(r.error for r in renders):
        out.append("if all of the above already hold, an operation in the render path is nondeterministic on this "
                   "device: please report it with this output")
    return out


def run_doctor(device: str = "auto", *, steps: int | None = DEFAULT_STEPS, spec_path: str | os.PathLike | None = None,
               workdir: str | os.PathLike | None = None) -> DoctorReport:
    """Describe the machine, render the smoke spec twice on `device`, compare. See the module docstring.

    `steps` replaces the spec's diffusion.steps (None or 0 keeps the spec's). `workdir` keeps the two
    renders there (run-1/, run-2/); by default they go to a temporary folder that is removed afterwards.
    """
    dev = resolve_device(device)
    path = Path(spec_path) if spec_path is not None else smoke_spec_path()
    doc = spec_to_document(load_spec(path))
    spec_steps = int(doc["diffusion"]["steps"])
    doc["diffusion"]["steps"] = int(steps) if steps else spec_steps
    doc.setdefault("engine", {})["device"] = dev
    spec = validate_document(doc)

    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="disco-spec-doctor-")
        base = Path(tmp)
    else:
        base = Path(workdir)
        base.mkdir(parents=True, exist_ok=True)
    try:
        renders = [_check_render(spec, base / f"run-{i}", str(path.resolve().parent)) for i in (1, 2)]
        parted = [d.text() for d in divergence(base / "run-1", base / "run-2") if d.first_difference is not None]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    env = renders[0].environment or environment.capture_environment(dev)
    differences = compare_renders(*renders)
    if differences:  # where they parted: the first step whose checksum differs (repro.divergence)
        differences += [f"where the renders part: {line}" for line in parted]
    return DoctorReport(
        device=dev, environment=env, packages=environment.package_versions(), memory=free_memory(dev),
        cache={"root": str(cache_dir()), "models": str(weights_dir()), "tiny": str(tiny_dir())},
        models=model_inventory(), spec=str(path), spec_steps=spec_steps, steps=int(doc["diffusion"]["steps"]),
        renders=renders, differences=differences, advice=advice_for(dev, env, renders, differences),
    )
