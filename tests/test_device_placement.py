"""Device placement on a CPU (issue 20): in one guided step of the tiny models, no tensor on the CPU meets a tensor
on the render's device ("Expected all tensors to be on the same device", a failure only a GPU shows). The models are
loaded by the render's own loaders onto a second device emulated by tests/device_emulation.py (values on the CPU,
every operation checked, backward included); a planted `.cpu()` in the step is caught."""

from __future__ import annotations

import pytest
import torch

from device_emulation import CudaDeviceViolation, CudaEmulation, EmulatedCuda
from disco_spec.engine import guidance, sampler
from disco_spec.engine.item import sample_item
from disco_spec.models.load import load_models
from disco_spec.plan.resolve import resolve_plan
from test_cuda_audit import SPECS, VARIANTS, _spec

pytestmark = pytest.mark.render

DEVICE = torch.device("meta")  # the emulated second device (device_emulation explains why not "cuda")


def test_the_emulation_refuses_what_cuda_refuses_and_passes_what_it_accepts():
    with CudaEmulation(raise_at_once=False) as mode:
        x = torch.ones(2, 3, device=DEVICE, requires_grad=True)
        assert isinstance(x, EmulatedCuda) and x.device.type == DEVICE.type
        ok = (x * torch.tensor(2.0) + torch.full((3,), 1.0, device=x.device)).sum()  # a CPU 0-dim scalar is fine
        (g,) = torch.autograd.grad(ok, x)
        assert isinstance(g, EmulatedCuda) and float(g.sum()) == 12.0 and ok.item() == 18.0
        assert not isinstance(x.detach().cpu(), EmulatedCuda)
        assert mode.violations == []
        x + torch.ones(3)  # a CPU tensor with a dimension
        torch.nn.Linear(3, 2)(x)  # a module left on the CPU
        torch.nn.Linear(3, 2).to(DEVICE)(x.detach().cpu())  # an input left on the CPU
    assert [v.split(":")[0] for v in mode.violations] == ["aten.add.Tensor", "aten.addmm.default", "aten.addmm.default"]


def _step(variant: str, raise_at_once: bool = True) -> tuple[list, CudaEmulation]:
    spec = _spec(VARIANTS[variant])
    plan = resolve_plan(spec)
    item = plan.items[0]
    with CudaEmulation(raise_at_once=raise_at_once) as mode:
        models = load_models(spec, [item], DEVICE, spec_dir=str(SPECS), half=False)
        ac, ts, _ = sampler.respaced_alphas_cumprod(plan.steps)
        x0s = [x0 for _, _, x0, _, _ in sample_item(spec, plan, item, models, ac, ts, DEVICE)]
    return x0s, mode


@pytest.mark.parametrize("variant", ["still-secondary", "still-no-secondary", "plms-cutn2", "perlin-init"])
def test_a_guided_step_keeps_every_tensor_on_the_render_device(variant):
    """Loaders, targets, cutouts and augments, the secondary model or the UNet's backward, losses, the sampler:
    two guided steps (4 steps, 2 skipped), every operation's tensors on one device."""
    x0s, mode = _step(variant)
    assert mode.violations == []
    assert len(x0s) == 2 and all(isinstance(x, EmulatedCuda) for x in x0s)
    assert all(torch.isfinite(x.elem).all() for x in x0s)


@pytest.mark.parametrize("where", ["targets", "noise"])
def test_a_planted_cpu_tensor_in_the_step_is_caught(where, monkeypatch):
    """A `.cpu()` where it matters: the CLIP targets (the loss meets the cut embeddings) or the sampler's noise
    drawn without its device (the DDIM update meets x). A `.cpu()` of the cuts themselves is harmless (CLIP's
    encode_image moves its input to the model's device), and so is a loss scalar (CUDA takes CPU scalars)."""
    if where == "targets":
        real = guidance.losses.clip_loss
        monkeypatch.setattr(guidance.losses, "clip_loss", lambda e, t, w: real(e, t.cpu(), w))
    else:
        real = sampler.rng.randn
        monkeypatch.setattr(sampler.rng, "randn", lambda shape, gen, device=None, **k: real(shape, gen, **k))
    with pytest.raises(CudaDeviceViolation, match="same device"):
        _step("still-secondary")


FACTORIES = {"tensor", "zeros", "ones", "empty", "full", "arange", "linspace", "eye", "rand", "randn", "randint",
             "randperm", "as_tensor", "from_numpy"}
# Functions of engine/ whose factories make CPU tensors on purpose, each moved to the device afterwards or only read
# on the host. A new factory without `device=` elsewhere must be added here with its reason, or take a device.
CPU_BY_DESIGN = {
    ("cutouts.py", "lanczos_kernel"): "CPU float64 taps, moved with the image's device",
    ("images.py", "pil_to_pm1"): "decoded on the host; the caller moves the image",
    ("losses.py", "normalize_target_weights"): "a list of floats given: the caller passes a device tensor",
    ("perlin.py", "bilinear_taps"): "Perlin noise is made on the CPU (DD's); item_init moves it",
    ("perlin.py", "noise_planes"): "Perlin noise is made on the CPU (DD's); item_init moves it",
    ("perlin.py", "noise_image"): "host image, moved by item_init",
    ("resize.py", "resize_matrix"): "CPU float64 matrix, pinned and moved to `like.device`",
    ("rng.py", "uniform_scalar"): "host scalar draw (.item())",
    ("rng.py", "normal_scalar"): "host scalar draw, a CPU 0-dim tensor (CUDA takes it)",
    ("rng.py", "randint_scalar"): "host scalar draw (.item())",
    ("rng.py", "randperm"): "host permutation (a list)",
    ("rng.py", "bernoulli_scalar"): "host draw (bool)",
    ("sampler.py", "respaced_alphas_cumprod"): "the schedule, read on the host",
    ("sampler.py", "__init__"): "host float64 schedule",
    ("warps.py", "perspective_coeffs"): "host solve, returned as a list",
}


def test_every_tensor_factory_in_the_engine_takes_a_device_or_is_cpu_by_design():
    import ast
    from pathlib import Path

    import disco_spec.engine as engine

    found = set()
    for path in sorted(Path(engine.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                        and not any(k.arg == "device" for k in node.keywords)):
                    found.add((path.name, fn.name))
    assert found - set(CPU_BY_DESIGN) == set(), "tensor factories without device= (add a device or a reason)"
    assert set(CPU_BY_DESIGN) - found == set(), "stale entries"
