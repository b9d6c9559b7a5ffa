"""Supported torch, stated and tested: engine/cuda_determinism.py knows every operation the installed torch's own
`torch.use_deterministic_algorithms` docstring lists as throwing; the installed torch is one pyproject admits and
the module covers; and the one such operation a render ran (AdaBins' cumsum, throwing on CUDA in torch 2.11) is
gone, with the same bits."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import torch

from disco_spec.engine import cuda_determinism
from disco_spec.models.depth_adabins import cumsum_deterministic

ROOT = Path(__file__).resolve().parent.parent


def throwing_entries(doc: str) -> list[str]:
    """The names (`:class:` / `:func:`) of the docstring's "will throw a RuntimeError when mode=True" list."""
    text = " ".join(doc.split())
    start = text.index("operations will throw a :class:`RuntimeError` when ``mode=True``:")
    end = min(i for i in (text.find("In addition,", start), text.find("A handful of CUDA", start)) if i > 0)
    return re.findall(r":(?:class|func):`([^`]+)`", text[start:end])[1:]  # [0] is RuntimeError itself


def _covered(name: str) -> bool:
    entries = list(cuda_determinism.BACKWARD_THROWS.values()) + list(cuda_determinism.BACKWARD_KERNELS.values())
    entries += [entry for entry, _ in cuda_determinism.FORWARD_THROWS.values()]
    short = name.rsplit(".", 1)[-1]
    return any(name in e or (f"/ {short}" in e) for e in entries)


def test_every_throwing_operation_the_installed_torch_documents_is_known():
    listed = throwing_entries(torch.use_deterministic_algorithms.__doc__)
    assert len(listed) >= 20 and "torch.histc" in listed
    assert sorted(set(listed) - cuda_determinism.DOCUMENTED_THROWING) == []
    uncovered = [n for n in cuda_determinism.DOCUMENTED_THROWING if not _covered(n)]
    assert uncovered == []  # each documented name has a table entry the recorders use


def test_a_throwing_operation_the_module_does_not_know_fails():
    doc = torch.use_deterministic_algorithms.__doc__.replace(
        "* :func:`torch.histc` when called on a CUDA tensor",
        "* :func:`torch.histc` when called on a CUDA tensor\n        * :func:`torch.searchsorted` when called on a CUDA tensor")
    assert set(throwing_entries(doc)) - cuda_determinism.DOCUMENTED_THROWING == {"torch.searchsorted"}


def test_installed_torch_is_a_supported_release_and_pyproject_says_which():
    low, high = cuda_determinism.SUPPORTED_TORCH
    installed = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    assert low <= installed <= high
    render = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["render"]
    (pin,) = [r for r in render if re.match(r"torch[<>=]", r)]
    assert pin == f"torch>={low[0]}.{low[1]},<{high[0]}.{high[1] + 1}"


def test_cumsum_of_floats_is_flagged_and_adabins_no_longer_runs_it():
    with cuda_determinism.AtenOpRecorder() as ops:
        torch.cumsum(torch.arange(5), 0)  # integers: deterministic on CUDA
    assert cuda_determinism.offending_ops(ops) == []
    with cuda_determinism.AtenOpRecorder() as ops:
        torch.cumsum(torch.rand(5), 0)
    assert cuda_determinism.offending_ops(ops) == ["cumsum"]
    widths = torch.rand(3, 257, generator=torch.Generator().manual_seed(0)) * torch.logspace(-8, 1, 257)
    with cuda_determinism.AtenOpRecorder() as ops:
        edges = cumsum_deterministic(widths)
    assert cuda_determinism.offending_ops(ops) == []
    assert torch.equal(edges, torch.cumsum(widths, dim=1))  # the CPU kernel's bits

