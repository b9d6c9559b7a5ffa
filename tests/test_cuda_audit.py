"""The CUDA determinism audit: no render mode differentiates (or runs) an operation that torch documents as
throwing on CUDA under torch.use_deterministic_algorithms(True), disco-spec's default.

Every mode renders 2 guided steps of specs/smoke.toml with the tiny models (on the CPU: the autograd graph and
the aten operators are the same ones CUDA would run).  Two independent recorders watch each render:
- every torch.autograd.grad call is intercepted and the autograd graph behind its outputs walked
  (cuda_determinism.offending_nodes);
- a TorchDispatchMode records every aten operator run, forward and backward kernels alike
  (cuda_determinism.AtenOpRecorder), which also catches forward-only offenders such as histc.
Planted offenders prove that both recorders see the render path.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from disco_spec.engine import augment, cuda_determinism, losses
from disco_spec.run.renderer import render
from disco_spec.spec.load import validate_document

pytestmark = pytest.mark.render

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SMOKE = tomllib.loads((SPECS / "smoke.toml").read_text())
INIT = str(SPECS / "assets" / "init-gradient.png")

# 4 steps, 2 skipped: two guided steps per image (and per animation frame).
SHORT = {"diffusion": {"steps": 4}, "init": {"skip_steps": 2}}
VARIANTS = {
    "still-secondary": {},
    "still-no-secondary": {"models": {"use_secondary_model": False}},
    "init-image+lpips": {"init": {"init_image": INIT, "init_scale": 1000, "skip_steps": 2}},
    "image-prompts": {"prompts": {"image_prompts": {"0": [INIT + ":0.5"]}}},
    "perlin-init": {"init": {"perlin_init": True, "perlin_mode": "mixed", "skip_steps": 2}},
    "2D": {"animation": {"animation_mode": "2D", "max_frames": 2}},
    "3D": {"animation": {"animation_mode": "3D", "max_frames": 2}},
    "video-input": {"animation": {"animation_mode": "Video Input", "max_frames": 2}},
    "3D-turbo": {"animation": {"animation_mode": "3D", "max_frames": 3},
                 "turbo": {"turbo_mode": True, "turbo_steps": "2", "turbo_preroll": 1}},
    "3D-vr": {"animation": {"animation_mode": "3D", "max_frames": 2}, "vr": {"vr_mode": True}},
    "ddim-no-secondary-cutn2": {"models": {"use_secondary_model": False}, "cuts": {"cutn_batches": 2}},
    "plms-cutn2": {"diffusion": {"diffusion_sampling_mode": "plms"}, "cuts": {"cutn_batches": 2}},
}


@pytest.fixture(autouse=True)
def _restore_determinism_flag():
    """render() switches torch's deterministic mode on (engine.deterministic); give the next test a clean slate."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def _spec(patch: dict):
    doc = copy.deepcopy(SMOKE)
    for section, values in (*SHORT.items(), *patch.items()):
        doc.setdefault(section, {}).update(values)
    return validate_document(doc)


class GraphRecorder:
    """Wraps torch.autograd.grad: walks the graph behind every `outputs` before differentiating."""

    def __init__(self) -> None:
        self.calls = 0
        self.nodes: set[str] = set()
        self.offending: set[str] = set()
        self._grad = torch.autograd.grad

    def __call__(self, outputs, inputs, *args, **kwargs):
        tensors = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        self.calls += 1
        self.nodes |= cuda_determinism.graph_node_names(*tensors)
        self.offending.update(cuda_determinism.offending_nodes(*tensors))
        return self._grad(outputs, inputs, *args, **kwargs)


def _audited_render(spec, tmp_path: Path, monkeypatch) -> tuple[GraphRecorder, cuda_determinism.AtenOpRecorder, object]:
    graphs = GraphRecorder()
    monkeypatch.setattr(torch.autograd, "grad", graphs)
    with cuda_determinism.AtenOpRecorder() as ops:
        result = render(spec, tmp_path, progress=False, spec_dir=str(SPECS))
    monkeypatch.undo()
    return graphs, ops, result


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_mode_uses_an_operation_that_throws_on_cuda(variant, tmp_path, monkeypatch):
    graphs, ops, result = _audited_render(_spec(VARIANTS[variant]), tmp_path, monkeypatch)
    assert result.outputs, "the render wrote nothing"
    # the recorders saw real guidance steps: CLIP's convolutions, the cut warps' taps, the x̂₀ model
    assert graphs.calls >= 2 * 3
    assert {"ConvolutionBackward0", "IndexSelectBackward0"} <= graphs.nodes
    assert {"convolution_backward", "index_add"} <= ops.ops or {"convolution_backward", "index_add_"} <= ops.ops
    assert graphs.offending == set(), f"{variant}: autograd nodes that throw on CUDA: {sorted(graphs.offending)}"
    assert cuda_determinism.offending_ops(ops) == [], f"{variant}: aten ops that throw on CUDA: {ops.offences}"
    if variant == "init-image+lpips":
        assert graphs.calls >= 2 * 2 and "MaxPool2DWithIndicesBackward0" in graphs.nodes  # LPIPS's VGG trunk


def test_a_planted_grid_sample_is_caught(tmp_path, monkeypatch):
    """Put torchvision's grid_sample warp back into the cutout augmentations: both recorders must see it."""
    import torchvision.transforms.functional as TF

    def grid_sample_affine(x, angle, translate, interpolation):
        return TF.affine(x, angle=angle, translate=list(translate), scale=1.0, shear=[0.0, 0.0], fill=[0.0] * 3)

    monkeypatch.setattr(augment.warps, "affine", grid_sample_affine)
    graphs = GraphRecorder()
    monkeypatch.setattr(torch.autograd, "grad", graphs)
    with cuda_determinism.AtenOpRecorder() as ops:
        render(_spec({}), tmp_path, progress=False)
    monkeypatch.undo()
    assert "GridSampler2DBackward0" in graphs.offending
    assert "grid_sampler_2d_backward" in cuda_determinism.offending_ops(ops)


def test_a_planted_histc_is_caught(tmp_path, monkeypatch):
    """A forward-only offender (no gradient flows through it) in the guidance step: the dispatch check sees it."""
    real_tv = losses.tv_loss

    def tv_with_histogram(x):
        torch.histc(x.detach(), bins=8)
        return real_tv(x)

    monkeypatch.setattr(losses, "tv_loss", tv_with_histogram)
    with cuda_determinism.AtenOpRecorder() as ops:
        render(_spec({}), tmp_path, progress=False)
    assert cuda_determinism.offending_ops(ops) == ["histc"]
    assert "torch.histc" in ops.offences["histc"]


def test_forward_offenders_and_their_conditions():
    x = torch.rand(6)
    with cuda_determinism.AtenOpRecorder() as ok:
        torch.bincount(torch.tensor([0, 1, 1]))  # no weights: allowed
        x.median()  # no indices: allowed
        torch.zeros(3).scatter_reduce(0, torch.tensor([0, 1]), x[:2], reduce="sum")
    assert cuda_determinism.offending_ops(ok) == []
    with cuda_determinism.AtenOpRecorder() as bad:
        torch.bincount(torch.tensor([0, 1, 1]), weights=torch.rand(3))
        x.median(dim=0)
        torch.zeros(3).scatter_reduce(0, torch.tensor([0, 1]), x[:2], reduce="prod")
        torch.zeros(3).put_(torch.tensor([1]), torch.ones(1), accumulate=True)
    assert cuda_determinism.offending_ops(bad) == ["bincount", "median.dim", "put_", "scatter_reduce.two"]


def _r(*shape):
    return torch.rand(*shape, requires_grad=True)


# One CPU construction per documented backward offender: the names in the table are the ones torch gives.
BACKWARD_CASES = {
    "AvgPool3DBackward0": lambda: torch.nn.AvgPool3d(2)(_r(1, 1, 4, 4, 4)),
    "AdaptiveAvgPool2DBackward0": lambda: torch.nn.AdaptiveAvgPool2d(3)(_r(1, 1, 7, 7)),
    "AdaptiveAvgPool3DBackward0": lambda: torch.nn.AdaptiveAvgPool3d(3)(_r(1, 1, 7, 7, 7)),
    "AdaptiveMaxPool2DBackward0": lambda: torch.nn.AdaptiveMaxPool2d(3)(_r(1, 1, 7, 7)),
    "FractionalMaxPool2DBackward0": lambda: torch.nn.FractionalMaxPool2d(2, output_size=3)(_r(1, 1, 7, 7)),
    "FractionalMaxPool3DBackward0": lambda: torch.nn.FractionalMaxPool3d(2, output_size=3)(_r(1, 1, 7, 7, 7)),
    "MaxUnpool2DBackward0": lambda: F.max_unpool2d(*F.max_pool2d(_r(1, 1, 4, 4), 2, return_indices=True), 2),
    "MaxUnpool3DBackward0": lambda: F.max_unpool3d(*F.max_pool3d(_r(1, 1, 4, 4, 4), 2, return_indices=True), 2),
    "UpsampleLinear1DBackward0": lambda: F.interpolate(_r(1, 1, 4), scale_factor=2, mode="linear"),
    "UpsampleBilinear2DBackward0": lambda: F.interpolate(_r(1, 1, 4, 4), scale_factor=2, mode="bilinear"),
    "UpsampleBilinear2DAaBackward0": lambda: F.interpolate(_r(1, 1, 8, 8), scale_factor=0.5, mode="bilinear", antialias=True),
    "UpsampleBicubic2DBackward0": lambda: F.interpolate(_r(1, 1, 4, 4), scale_factor=2, mode="bicubic"),
    "UpsampleBicubic2DAaBackward0": lambda: F.interpolate(_r(1, 1, 8, 8), scale_factor=0.5, mode="bicubic", antialias=True),
    "UpsampleTrilinear3DBackward0": lambda: F.interpolate(_r(1, 1, 4, 4, 4), scale_factor=2, mode="trilinear"),
    "ReflectionPad1DBackward0": lambda: F.pad(_r(1, 1, 4), (1, 1), mode="reflect"),
    "ReflectionPad2DBackward0": lambda: F.pad(_r(1, 1, 4, 4), (1, 1, 1, 1), mode="reflect"),
    "ReflectionPad3DBackward0": lambda: F.pad(_r(1, 1, 4, 4, 4), (1, 1, 1, 1, 1, 1), mode="reflect"),
    "NllLossBackward0": lambda: F.nll_loss(_r(3, 4), torch.tensor([0, 1, 2])),
    "NllLoss2DBackward0": lambda: F.nll_loss(_r(1, 4, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long)),
    "CtcLossBackward0": lambda: F.ctc_loss(_r(6, 1, 4).log_softmax(2), torch.tensor([[1, 2]]), torch.tensor([6]),
                                           torch.tensor([2])),
    "EmbeddingBagBackward0": lambda: F.embedding_bag(torch.tensor([0, 1, 2]), _r(5, 3), torch.tensor([0]), mode="max"),
    "PutBackward0": lambda: _r(5).clone().put(torch.tensor([1]), _r(1)),
    "GridSampler2DBackward0": lambda: F.grid_sample(_r(1, 1, 4, 4), torch.zeros(1, 2, 2, 2), align_corners=False),
    "GridSampler3DBackward0": lambda: F.grid_sample(_r(1, 1, 4, 4, 4), torch.zeros(1, 2, 2, 2, 3), align_corners=False),
    "ScatterReduceBackward0": lambda: _r(5).scatter_reduce(0, torch.tensor([0, 0]), _r(2), reduce="prod"),
    "MaxPool3DWithIndicesBackward0": lambda: F.max_pool3d(_r(1, 1, 4, 4, 4), 2),  # throws in torch 2.11
}
CUDA_ONLY = {"CudnnGridSamplerBackward0"}  # cuDNN's grid sampler: only built on a GPU


@pytest.mark.parametrize("node", sorted(BACKWARD_CASES))
def test_each_listed_node_is_caught_under_the_name_torch_gives_it(node):
    out = BACKWARD_CASES[node]()
    assert node in cuda_determinism.offending_nodes(out)
    with cuda_determinism.AtenOpRecorder() as ops:
        out = BACKWARD_CASES[node]()
        out.sum().backward()
    assert cuda_determinism.offending_ops(ops), node  # its forward or backward kernel is listed too


def test_the_tables_cite_the_installed_torch_documentation():
    assert set(cuda_determinism.BACKWARD_THROWS) == set(BACKWARD_CASES) | CUDA_ONLY
    doc = " ".join(torch.use_deterministic_algorithms.__doc__.split())
    entries = list(cuda_determinism.BACKWARD_THROWS.values()) + list(cuda_determinism.BACKWARD_KERNELS.values())
    entries += [entry for entry, _ in cuda_determinism.FORWARD_THROWS.values()]
    for entry in entries:
        name = entry.split(",")[0].split(" (")[0].split(" /")[0].split(" with")[0].split(" when")[0].split(" on")[0]
        assert name in cuda_determinism.DOCUMENTED_THROWING, entry  # which tests/test_supported_torch.py ties to
        # the docstrings; an entry of another supported release need not be in the installed one's
        assert f":class:`{name}`" in doc or f":func:`{name}`" in doc or name == "torch.kthvalue", entry
