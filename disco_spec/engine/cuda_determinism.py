"""Which operations cannot run on CUDA with ``torch.use_deterministic_algorithms(True)``, and checks
that keep them out of a render.

disco-spec renders with ``engine.deterministic = true`` by default.  In that mode torch makes some
normally-nondeterministic CUDA kernels deterministic and makes the others **throw RuntimeError**.
The tables below are the throwing ones, transcribed from the docstring of
``torch.use_deterministic_algorithms`` (``torch/__init__.py``; the same list is in the online reference,
https://pytorch.org/docs/stable/generated/torch.use_deterministic_algorithms.html) of every torch version
disco-spec supports (``SUPPORTED_TORCH``, pyproject's range): their union, since a render must not throw on
any of them. torch 2.11 (the lent GPU machines' version) still lists ``cumsum`` on CUDA floats and
``MaxPool3d``'s backward as throwing (2.14 makes both deterministic); some releases list ``kthvalue`` too.
Each key is the name torch gives the operation where it shows up (an autograd node, or an aten
operator), each value the docstring's own entry. tests/test_cuda_audit.py reads the installed torch's
docstring and fails on a throwing entry missing here (``DOCUMENTED_THROWING``).

Two checks use them:

- ``offending_nodes(*tensors)`` walks the autograd graph behind tensors (``grad_fn.next_functions``)
  and names the nodes whose CUDA backward throws.  Tests call it on the losses of a guidance step.
- ``AtenOpRecorder`` is a ``TorchDispatchMode`` that records every aten operator run while it is
  active, forward and backward kernels alike; ``offending_ops`` names those that throw on CUDA
  (forward-only ones such as ``histc``, and the backward kernels of the nodes above).

Operations the docstring lists as *made deterministic* in this mode (``index_select``, ``gather``,
``index_add``, ``scatter_add_``, replication padding, ...) are allowed: they are what
the replacements in ``engine/warps.py`` and ``models/secondary.py`` are built from.  Nearest-neighbour
upsampling (the diffusion UNet) is on neither list.  ``DETERMINISTIC_IN_MODE`` keeps that half of
the docstring for reference.

Not in the docstring, hence not flagged: ``scaled_dot_product_attention`` (CLIP's attention).  Its
flash / memory-efficient / cuDNN backward kernels are nondeterministic by default; libtorch_cuda's own
messages ("... defaults to a non-deterministic algorithm. To explicitly enable determinism call
torch.use_deterministic_algorithms(True, warn_only=False)") say that this mode selects deterministic
ones.  That, like everything here, is confirmed on a GPU only by rendering twice and comparing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "SUPPORTED_TORCH",
    "DOCUMENTED_THROWING",
    "BACKWARD_THROWS",
    "BACKWARD_KERNELS",
    "FORWARD_THROWS",
    "DETERMINISTIC_IN_MODE",
    "graph_node_names",
    "offending_nodes",
    "AtenOpRecorder",
    "offending_ops",
]

_DOCS = "torch.use_deterministic_algorithms docstring, 'will throw a RuntimeError when mode=True'"

# The torch releases whose docstrings the tables cover (pyproject's `torch>=2.11,<2.15`; tests check both).
SUPPORTED_TORCH = ((2, 11), (2, 14))

# Every operation those docstrings list as throwing, as they name it (`:class:` / `:func:`), union over
# SUPPORTED_TORCH; each is covered by an entry of the tables below.
DOCUMENTED_THROWING: frozenset[str] = frozenset({
    "torch.nn.AvgPool3d", "torch.nn.AdaptiveAvgPool2d", "torch.nn.AdaptiveAvgPool3d", "torch.nn.AdaptiveMaxPool2d",
    "torch.nn.FractionalMaxPool2d", "torch.nn.FractionalMaxPool3d", "torch.nn.MaxUnpool1d", "torch.nn.MaxUnpool2d",
    "torch.nn.MaxUnpool3d", "torch.nn.functional.interpolate", "torch.nn.ReflectionPad1d", "torch.nn.ReflectionPad2d",
    "torch.nn.ReflectionPad3d", "torch.nn.NLLLoss", "torch.nn.CTCLoss", "torch.nn.EmbeddingBag", "torch.Tensor.put_",
    "torch.histc", "torch.bincount", "torch.median", "torch.nn.functional.grid_sample", "torch.Tensor.scatter_reduce",
    "torch.Tensor.resize_",
    # torch 2.11 (deterministic in 2.14), and kthvalue (listed by some releases)
    "torch.cumsum", "torch.nn.MaxPool3d", "torch.kthvalue",
})

# Autograd nodes whose CUDA backward throws ("when attempting to differentiate a CUDA tensor").
BACKWARD_THROWS: dict[str, str] = {
    "AvgPool3DBackward0": "torch.nn.AvgPool3d",
    "AdaptiveAvgPool2DBackward0": "torch.nn.AdaptiveAvgPool2d",
    "AdaptiveAvgPool3DBackward0": "torch.nn.AdaptiveAvgPool3d",
    "AdaptiveMaxPool2DBackward0": "torch.nn.AdaptiveMaxPool2d",
    "FractionalMaxPool2DBackward0": "torch.nn.FractionalMaxPool2d",
    "FractionalMaxPool3DBackward0": "torch.nn.FractionalMaxPool3d",
    "MaxUnpool2DBackward0": "torch.nn.MaxUnpool1d / MaxUnpool2d",
    "MaxUnpool3DBackward0": "torch.nn.MaxUnpool3d",
    "UpsampleLinear1DBackward0": "torch.nn.functional.interpolate, mode 'linear'",
    "UpsampleBilinear2DBackward0": "torch.nn.functional.interpolate, mode 'bilinear'",
    "UpsampleBilinear2DAaBackward0": "torch.nn.functional.interpolate, mode 'bilinear' (antialias=True)",
    "UpsampleBicubic2DBackward0": "torch.nn.functional.interpolate, mode 'bicubic'",
    "UpsampleBicubic2DAaBackward0": "torch.nn.functional.interpolate, mode 'bicubic' (antialias=True)",
    "UpsampleTrilinear3DBackward0": "torch.nn.functional.interpolate, mode 'trilinear'",
    "ReflectionPad1DBackward0": "torch.nn.ReflectionPad1d",
    "ReflectionPad2DBackward0": "torch.nn.ReflectionPad2d",
    "ReflectionPad3DBackward0": "torch.nn.ReflectionPad3d",
    "NllLossBackward0": "torch.nn.NLLLoss",
    "NllLoss2DBackward0": "torch.nn.NLLLoss",
    "CtcLossBackward0": "torch.nn.CTCLoss",
    "EmbeddingBagBackward0": "torch.nn.EmbeddingBag, mode 'max'",
    "PutBackward0": "torch.Tensor.put_",
    "GridSampler2DBackward0": "torch.nn.functional.grid_sample",
    "GridSampler3DBackward0": "torch.nn.functional.grid_sample",
    "CudnnGridSamplerBackward0": "torch.nn.functional.grid_sample",
    "ScatterReduceBackward0": "torch.Tensor.scatter_reduce, reduce 'prod' (any reduce flagged: the node does not say which)",
    "MaxPool3DWithIndicesBackward0": "torch.nn.MaxPool3d (throws in torch 2.11)",
}

# The aten kernels that run when those nodes are differentiated (what a dispatch mode sees).
BACKWARD_KERNELS: dict[str, str] = {
    "avg_pool3d_backward": "torch.nn.AvgPool3d",
    "_adaptive_avg_pool2d_backward": "torch.nn.AdaptiveAvgPool2d",
    "_adaptive_avg_pool3d_backward": "torch.nn.AdaptiveAvgPool3d",
    "adaptive_max_pool2d_backward": "torch.nn.AdaptiveMaxPool2d",
    "fractional_max_pool2d_backward": "torch.nn.FractionalMaxPool2d",
    "fractional_max_pool3d_backward": "torch.nn.FractionalMaxPool3d",
    "upsample_linear1d_backward": "torch.nn.functional.interpolate, mode 'linear'",
    "upsample_bilinear2d_backward": "torch.nn.functional.interpolate, mode 'bilinear'",
    "_upsample_bilinear2d_aa_backward": "torch.nn.functional.interpolate, mode 'bilinear' (antialias=True)",
    "upsample_bicubic2d_backward": "torch.nn.functional.interpolate, mode 'bicubic'",
    "_upsample_bicubic2d_aa_backward": "torch.nn.functional.interpolate, mode 'bicubic' (antialias=True)",
    "upsample_trilinear3d_backward": "torch.nn.functional.interpolate, mode 'trilinear'",
    "reflection_pad1d_backward": "torch.nn.ReflectionPad1d",
    "reflection_pad2d_backward": "torch.nn.ReflectionPad2d",
    "reflection_pad3d_backward": "torch.nn.ReflectionPad3d",
    "nll_loss_backward": "torch.nn.NLLLoss",
    "nll_loss2d_backward": "torch.nn.NLLLoss",
    "_ctc_loss_backward": "torch.nn.CTCLoss",
    "_embedding_bag_backward": "torch.nn.EmbeddingBag, mode 'max'",
    "_embedding_bag_dense_backward": "torch.nn.EmbeddingBag, mode 'max'",
    "grid_sampler_2d_backward": "torch.nn.functional.grid_sample",
    "grid_sampler_3d_backward": "torch.nn.functional.grid_sample",
    "cudnn_grid_sampler_backward": "torch.nn.functional.grid_sample",
    "max_pool3d_with_indices_backward": "torch.nn.MaxPool3d (throws in torch 2.11)",
}

# aten operators that throw when *called* on CUDA (no gradient needed).  A value of None means
# always; otherwise a predicate on the call's (args, kwargs) says when.


def _has_weights(args: tuple, kwargs: dict) -> bool:
    weights = kwargs.get("weights", args[1] if len(args) > 1 else None)
    return weights is not None


def _reduces_by_prod(args: tuple, kwargs: dict) -> bool:
    reduce = kwargs.get("reduce", args[4] if len(args) > 4 else None)
    return reduce == "prod"


def _floating_or_complex(args: tuple, kwargs: dict) -> bool:
    x = args[0] if args else kwargs.get("self")
    dtype = kwargs.get("dtype", args[2] if len(args) > 2 else None) or getattr(x, "dtype", None)
    return dtype is not None and (dtype.is_floating_point or dtype.is_complex)


def _quantized(args: tuple, kwargs: dict) -> bool:
    x = args[0] if args else kwargs.get("self")
    return bool(getattr(x, "is_quantized", False))


FORWARD_THROWS: dict[str, tuple[str, Any]] = {
    "histc": ("torch.histc", None),
    "bincount": ("torch.bincount with a weights tensor", _has_weights),
    "median.dim": ("torch.median with indices output", None),
    "median.dim_values": ("torch.median with indices output", None),
    "median.names_dim": ("torch.median with indices output", None),
    "put_": ("torch.Tensor.put_ (accumulate=False anywhere, accumulate=True on CUDA)", None),
    "put": ("torch.Tensor.put_ (accumulate=False anywhere, accumulate=True on CUDA)", None),
    "scatter_reduce.two": ("torch.Tensor.scatter_reduce with reduce='prod'", _reduces_by_prod),
    "scatter_reduce_.two": ("torch.Tensor.scatter_reduce with reduce='prod'", _reduces_by_prod),
    "nll_loss_forward": ("torch.nn.NLLLoss when called on a CUDA tensor", None),
    "nll_loss2d_forward": ("torch.nn.NLLLoss when called on a CUDA tensor", None),
    "max_unpool2d": ("torch.nn.MaxUnpool1d / MaxUnpool2d", None),
    "max_unpool3d": ("torch.nn.MaxUnpool3d", None),
    "resize_": ("torch.Tensor.resize_ when called with a quantized tensor", _quantized),
    "cumsum": ("torch.cumsum on a CUDA tensor of floating point or complex dtype (throws in torch 2.11)",
               _floating_or_complex),
    "cumsum_": ("torch.cumsum on a CUDA tensor of floating point or complex dtype (throws in torch 2.11)",
                _floating_or_complex),
    "kthvalue": ("torch.kthvalue when called on a CUDA tensor (some releases)", None),
}

# The docstring's other half: normally nondeterministic, deterministic when mode=True (allowed).
DETERMINISTIC_IN_MODE: tuple[str, ...] = (
    "Conv1d/2d/3d, ConvTranspose1d/2d/3d on CUDA",
    "ReplicationPad1d/2d/3d backward on CUDA",
    "bmm of sparse-dense CUDA tensors",
    "Tensor.__getitem__ backward on CPU with a list of index tensors",
    "index_put with accumulate=False; with accumulate=True on CPU",
    "put_ with accumulate=True on CPU",
    "scatter_add_ on CUDA",
    "gather on CUDA when it requires grad",
    "index_add on CUDA",
    "index_select backward on CUDA",
    "repeat_interleave backward on CUDA",
    "index_copy on CPU or CUDA",
    "scatter with a Tensor src on CUDA",
    "scatter_reduce with reduce='sum' or 'mean' on CUDA",
    "Embedding backward on CUDA",
)


def graph_node_names(*tensors: torch.Tensor) -> set[str]:
    """Names of every autograd node reachable from ``tensors`` (grad_fn.next_functions, iteratively)."""
    seen: set[int] = set()
    names: set[str] = set()
    stack = [t.grad_fn for t in tensors if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.add(node.name())
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return names


def offending_nodes(*tensors: torch.Tensor) -> list[str]:
    """The autograd nodes behind ``tensors`` whose backward throws on CUDA in deterministic mode."""
    return sorted(n for n in graph_node_names(*tensors) if n in BACKWARD_THROWS)


def _op_key(func: Any) -> tuple[str, str]:
    """(packet name, packet.overload) of an aten OpOverload, e.g. ('median', 'median.dim')."""
    packet = func.overloadpacket.__name__
    overload = func._overloadname
    return packet, packet if overload == "default" else f"{packet}.{overload}"


class AtenOpRecorder(TorchDispatchMode):
    """Records the aten operators run while active, and which of them throw on CUDA in
    deterministic mode (``offences``: name -> the docstring entry)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()
        self.offences: dict[str, str] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet, full = _op_key(func)
        self.ops.add(full)
        for key in (full, packet):
            if key in FORWARD_THROWS:
                entry, when = FORWARD_THROWS[key]
                if when is None or when(args, kwargs):
                    self.offences[full] = entry
                break
        if packet in BACKWARD_KERNELS:
            self.offences[full] = BACKWARD_KERNELS[packet]
        return func(*args, **kwargs)


def offending_ops(recorder: AtenOpRecorder) -> list[str]:
    """Names of the recorded aten operators that throw on CUDA in deterministic mode."""
    return sorted(recorder.offences)
