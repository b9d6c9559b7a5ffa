"""CUDA's dtype rules, enforced on a CPU: a TorchDispatchMode that fails when an aten operator receives floating
tensors of mixed dtypes that CUDA's kernels refuse.

Why it is needed: CPU kernels are more lenient than CUDA's. torch's CPU layer norm, for one, accepts an fp16
input with fp32 weights (it has mixed-type kernels); its CUDA layer norm is instantiated for one scalar type
(input and weight alike), so the same call fails on the first GPU it meets ("expected scalar type Half but found
Float"). disco-spec renders in fp16 on CUDA only (models.precision, DD's rule), so a dtype mix in the fp16 path
could not be seen by a CPU test that runs fp32. The tests force the fp16 rule on the CPU and run every render
mode, and everything bench/ builds, under `CudaDtypeRules`.

The rule, per operator (aten overload packet names, what a dispatch mode sees):

* `SAME_DTYPE`: operators whose CUDA kernels take one scalar type for the listed arguments (a matmul, a
  convolution, a normalisation with its affine weights, attention): their floating arguments must agree.
* Any other operator given floating tensors of several dtypes fails too, unless it is in `MIXED_OK` or is
  tagged pointwise (TensorIterator computes in the promoted dtype on every device): an unknown mix is reported,
  not guessed about. `MIXED_OK` and `EXEMPT_ARGUMENTS` are the one place where what CUDA does accept is listed,
  each with the reason.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Operator -> the arguments (schema names) that must share one floating dtype on CUDA.
SAME_DTYPE: dict[str, tuple[str, ...]] = {
    # normalisations: the CUDA kernels read weight/bias as the input's scalar type
    "native_layer_norm": ("input", "weight", "bias"),
    "native_layer_norm_backward": ("grad_out", "input", "weight", "bias"),
    "native_group_norm": ("input", "weight", "bias"),
    "native_group_norm_backward": ("grad_out", "input", "weight"),
    # batch norm: see BATCH_NORM (one mix is accepted)
    # convolutions (cuDNN: "Input type and weight type should be the same", bias too)
    "convolution": ("input", "weight", "bias"),
    "_convolution": ("input", "weight", "bias"),
    "convolution_backward": ("grad_output", "input", "weight"),
    "cudnn_convolution": ("self", "weight"),
    # matrix products (cuBLAS: one dtype for A, B and C)
    "mm": ("self", "mat2"),
    "addmm": ("self", "mat1", "mat2"),
    "_addmm_activation": ("self", "mat1", "mat2"),
    "bmm": ("self", "mat2"),
    "baddbmm": ("self", "batch1", "batch2"),
    "addbmm": ("self", "batch1", "batch2"),
    "mv": ("self", "vec"),
    "addmv": ("self", "mat", "vec"),
    "dot": ("self", "tensor"),
    "linear": ("input", "weight", "bias"),
    "matmul": ("self", "other"),
    # attention: query, key, value, a float mask, and in the backward the gradient and the output
    "scaled_dot_product_attention": ("query", "key", "value", "attn_mask"),
    "_scaled_dot_product_flash_attention_for_cpu": ("query", "key", "value", "attn_mask"),
    "_scaled_dot_product_flash_attention_for_cpu_backward": ("grad_out", "query", "key", "value", "out"),
    "_scaled_dot_product_flash_attention": ("query", "key", "value"),
    "_scaled_dot_product_flash_attention_backward": ("grad_out", "query", "key", "value", "out"),
    "_scaled_dot_product_efficient_attention": ("query", "key", "value", "attn_bias"),
    "_scaled_dot_product_efficient_attention_backward": ("grad_out_", "query", "key", "value", "attn_bias", "out"),
    "_scaled_dot_product_cudnn_attention": ("query", "key", "value", "attn_bias"),
    "_scaled_dot_product_cudnn_attention_backward": ("grad_out", "query", "key", "value", "out"),
    "_scaled_dot_product_attention_math": ("query", "key", "value", "attn_mask"),
    "_native_multi_head_attention": ("query", "key", "value", "qkv_weight", "qkv_bias", "proj_weight", "proj_bias"),
    # sampling and in-place accumulation into another tensor
    "grid_sampler_2d": ("input", "grid"),
    "grid_sampler_2d_backward": ("grad_output", "input", "grid"),
    "index_add": ("self", "source"),
    "index_put": ("self", "values"),
    "scatter_add": ("self", "src"),
    "lerp": ("self", "end", "weight"),
}

# Arguments left out of the rule, with the reason CUDA accepts their dtype.
EXEMPT_ARGUMENTS: dict[str, dict[str, str]] = {
    "native_layer_norm_backward": {"mean": "statistics the forward returned, in the accumulation dtype",
                                   "rstd": "statistics the forward returned, in the accumulation dtype"},
    "native_group_norm_backward": {"mean": "statistics the forward returned, in the accumulation dtype",
                                   "rstd": "statistics the forward returned, in the accumulation dtype"},
    "_scaled_dot_product_flash_attention_for_cpu_backward": {
        "logsumexp": "the forward's softmax statistics, float32 by design on every backend"},
    "_scaled_dot_product_flash_attention_backward": {
        "logsumexp": "the forward's softmax statistics, float32 by design on every backend"},
    "_scaled_dot_product_efficient_attention_backward": {
        "logsumexp": "the forward's softmax statistics, float32 by design on every backend"},
    "_scaled_dot_product_cudnn_attention_backward": {
        "logsumexp": "the forward's softmax statistics, float32 by design on every backend"},
}

# Batch norm: CUDA's native kernels have mixed-type instances for an fp16/bf16 activation with float32 weight,
# bias and statistics (cuDNN requires exactly that mix; DD's RN50 family runs it); every other mix is refused.
# Operator -> (activation arguments, which share one dtype; parameter and statistics arguments).
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")
BATCH_NORM: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "native_batch_norm": (("input",), _BN_PARAMS),
    "_native_batch_norm_legit": (("input",), _BN_PARAMS),
    "_native_batch_norm_legit_no_training": (("input",), _BN_PARAMS),
    "cudnn_batch_norm": (("input",), _BN_PARAMS),
    "native_batch_norm_backward": (("grad_out", "input"), ("weight", "running_mean", "running_var", "save_mean",
                                                           "save_invstd")),
    "cudnn_batch_norm_backward": (("grad_output", "input"), ("weight", "running_mean", "running_var", "save_mean",
                                                             "save_var")),
}

# Operators that are not tagged pointwise but accept mixed floating dtypes on CUDA too, and why.
MIXED_OK: dict[str, str] = {
    "_to_copy": "a dtype conversion",
    "copy_": "copy_ converts to the destination's dtype on every device",
    "copy": "copy converts to the destination's dtype on every device",
    "cat": "cat promotes its inputs to the result dtype on CUDA (since torch 1.5)",
    "stack": "stack is cat of unsqueezed inputs",
    "where": "TensorIterator: computes in the promoted dtype",
    "index": "the indices are integers; only one floating tensor is read",
    "_local_scalar_dense": "reads one value",
    "set_": "storage aliasing, no arithmetic",
}

_REDUCED = (torch.float16, torch.bfloat16)


class CudaDtypeRuleViolation(AssertionError):
    """An operator got floating tensors of dtypes that CUDA's kernel for it refuses."""


def _floating(value: Any) -> list[torch.dtype]:
    if isinstance(value, torch.Tensor):
        return [value.dtype] if value.is_floating_point() else []
    if isinstance(value, (list, tuple)):
        return [d for v in value for d in _floating(v)]
    return []


def _named_arguments(func, args: tuple, kwargs: dict) -> dict[str, Any]:
    names = [a.name for a in func._schema.arguments]
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def violation(func, args: tuple, kwargs: dict) -> str | None:
    """Why CUDA would refuse this call's dtypes, or None."""
    op = func.overloadpacket.__name__
    bound = _named_arguments(func, args, kwargs)
    if op in BATCH_NORM:
        acts, params = BATCH_NORM[op]
        xs = {d for a in acts for d in _floating(bound.get(a))}
        ps = {d for p in params for d in _floating(bound.get(p))}
        if len(xs) <= 1 and (not ps or ps == xs or (xs and xs <= set(_REDUCED) and ps == {torch.float32})):
            return None
        return f"{op}: activations {sorted(map(str, xs))} with weights/statistics {sorted(map(str, ps))}"
    if op in SAME_DTYPE:
        dtypes = {name: _floating(bound.get(name)) for name in SAME_DTYPE[op] if _floating(bound.get(name))}
        if len({d for ds in dtypes.values() for d in ds}) > 1:
            shown = ", ".join(f"{n} {'/'.join(str(d) for d in ds)}" for n, ds in dtypes.items())
            return f"{op}: CUDA's kernel takes one dtype for these arguments, got {shown}"
        return None
    if op in MIXED_OK or torch.Tag.pointwise in func.tags:
        return None
    exempt = EXEMPT_ARGUMENTS.get(op, {})
    dtypes = {d for name, v in bound.items() if name not in exempt for d in _floating(v)}
    if len(dtypes) > 1:
        return (f"{op}: floating arguments of dtypes {sorted(map(str, dtypes))}; not an operator known to accept "
                "a mix on CUDA (tests/cuda_dtype_rules.py: list it with the reason if CUDA does)")
    return None


class CudaDtypeRules(TorchDispatchMode):
    """While active, every aten call (forward and backward kernels) is checked; the first violation raises
    CudaDtypeRuleViolation (with `raise_at_once=False` they are collected in `violations` instead)."""

    def __init__(self, *, raise_at_once: bool = True) -> None:
        super().__init__()
        self.raise_at_once = raise_at_once
        self.violations: list[str] = []
        self.calls = 0
        self.reduced_precision_calls = 0  # calls that saw an fp16/bf16 tensor: proof the fp16 path ran

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls += 1
        if any(d in _REDUCED for d in _floating(list(args)) + _floating(list(kwargs.values()))):
            self.reduced_precision_calls += 1
        why = violation(func, args, kwargs)
        if why is not None:
            self.violations.append(why)
            if self.raise_at_once:
                raise CudaDtypeRuleViolation(why)
        return func(*args, **kwargs)
