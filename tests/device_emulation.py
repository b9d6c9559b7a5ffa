"""A second device on a CPU: a tensor on the CPU never meets a tensor on the render's device in one operation.

On a GPU, `torch.mm(cuda_x, cpu_w)` fails with "Expected all tensors to be on the same device"; on a CPU-only
machine every tensor is on the CPU and the mistake (a constant built without `device=`, a `.cpu()` left in a
step) cannot show. `EmulatedCuda` is a tensor that says it lives on the "meta" device (the render is given
`torch.device("meta")` as its device, a device type other than the CPU's that torch's autograd handles without a
driver: a wrapper that said "cuda" makes autograd ask the CUDA driver for a stream) while its values live in a
plain CPU tensor, so every kernel runs for real and host reads such as `.item()` work. `CudaEmulation` is the
dispatch mode under which:

* a factory or copy asked for that device (`torch.full(..., device=x.device)`, `t.to(device)`) makes one;
* `.cpu()` / `.to("cpu")` of one gives a plain CPU tensor again;
* every other operation that receives an emulated tensor and a CPU tensor with at least one dimension is
  recorded as a violation (CUDA accepts CPU tensors of zero dimensions as scalars, and CPU index tensors in
  advanced indexing: `MIXED_OK`).

Backward operations pass through the same mode, so a mismatch in a gradient is caught as well. What it cannot
see: code that branches on `device.type == "cuda"` takes its CPU branch here (in engine/: `rng._draw`'s pinned
copy, a plain `.to(device)` on the CPU branch).
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")  # the stand-in for "cuda" (see above)
aten = torch.ops.aten

# Operations CUDA runs with CPU tensors among their arguments.
MIXED_OK = {
    aten.copy_.default,  # copies between devices are what moves data
    aten._to_copy.default,
    aten.index.Tensor,  # x[cpu_index] on a CUDA x: CUDA moves the indices
    aten.index_put_.default,
    aten._index_put_impl_.default,
    aten.index_put.default,
}


class CudaDeviceViolation(AssertionError):
    pass


class EmulatedCuda(torch.Tensor):
    """A tensor on DEVICE whose values are the CPU tensor `elem`."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor, requires_grad: bool | None = None):
        assert type(elem) is torch.Tensor and elem.device.type == "cpu", type(elem)
        r = torch.Tensor._make_wrapper_subclass(
            cls, elem.shape, strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
            layout=elem.layout, device=DEVICE, requires_grad=elem.requires_grad if requires_grad is None else requires_grad,
        )
        r.elem = elem
        return r

    def __repr__(self) -> str:
        return f"EmulatedCuda({self.elem!r})"

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {}, None)


def _is_cuda(device) -> bool:
    return device is not None and torch.device(device).type == DEVICE.type


def _run(func, args, kwargs, mode: "CudaEmulation | None"):
    flat, _ = tree_flatten((args, kwargs))
    tensors = [t for t in flat if isinstance(t, torch.Tensor)]
    cuda_in = any(isinstance(t, EmulatedCuda) for t in tensors)
    cpu_in = [t for t in tensors if not isinstance(t, EmulatedCuda) and t.dim() > 0]
    if any(not isinstance(t, EmulatedCuda) and t.device.type == DEVICE.type for t in tensors):
        raise CudaDeviceViolation(f"{func}: a real {DEVICE.type} tensor (made past the emulation: see _Literals)")
    if cuda_in and cpu_in and func not in MIXED_OK:
        shapes = ", ".join(f"cpu{tuple(t.shape)}" for t in cpu_in[:3])
        message = f"{func}: a CUDA tensor meets CPU tensor(s) {shapes} (\"Expected all tensors to be on the same device\")"
        active = mode or CudaEmulation.current
        if active is not None:
            active.violations.append(message)
            if active.raise_at_once:
                raise CudaDeviceViolation(message)
        else:
            raise CudaDeviceViolation(message)
    if func in (aten._pin_memory.default,):  # no pinned memory without a driver: the values, unpinned
        return args[0].clone()
    if func in (aten.is_pinned.default,):
        return False
    wrapper_of = {id(t.elem): t for t in tensors if isinstance(t, EmulatedCuda)}
    to_cuda = _is_cuda(kwargs.get("device"))
    if "device" in kwargs:
        kwargs = dict(kwargs, device=torch.device("cpu") if to_cuda else kwargs["device"])
    if func is aten._to_copy.default and "device" in kwargs and not to_cuda:
        wrap = False  # .cpu() / .to("cpu")
    else:
        wrap = cuda_in or to_cuda
    plain_args, plain_kwargs = tree_map(lambda t: t.elem if isinstance(t, EmulatedCuda) else t, (args, kwargs))
    out = func(*plain_args, **plain_kwargs)

    def back(t):
        if not isinstance(t, torch.Tensor):
            return t
        if id(t) in wrapper_of:  # an in-place op returns its (emulated) argument
            return wrapper_of[id(t)]
        return EmulatedCuda(t) if wrap and t.device.type == "cpu" else t

    return tree_map(back, out)


class _Literals(TorchFunctionMode):
    """`torch.tensor(data, device=...)` copies its data to the device below the dispatcher (no mode sees it):
    made on the CPU here, then emulated."""

    FUNCS = (torch.tensor, torch.as_tensor, torch.asarray)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FUNCS and _is_cuda(kwargs.get("device")):
            out = func(*args, **dict(kwargs, device="cpu"))
            return out if isinstance(out, EmulatedCuda) else EmulatedCuda(out)
        return func(*args, **kwargs)


class CudaEmulation(TorchDispatchMode):
    """Factories and copies asked for "cuda" make EmulatedCuda tensors; device mixes are recorded (see module)."""

    current: "CudaEmulation | None" = None

    def __init__(self, raise_at_once: bool = True) -> None:
        super().__init__()
        self.raise_at_once = raise_at_once
        self.violations: list[str] = []

    def __enter__(self):
        self._outer, CudaEmulation.current = CudaEmulation.current, self
        self._literals = _Literals()
        self._literals.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        CudaEmulation.current = self._outer
        try:
            return super().__exit__(*exc)
        finally:
            self._literals.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {}, self)


def to_emulated_cuda(module: torch.nn.Module) -> torch.nn.Module:
    """`module` with every parameter and buffer an EmulatedCuda tensor (what `.to("cuda")` does on a GPU)."""
    for m in module.modules():
        for name, p in list(m._parameters.items()):
            if p is not None and not isinstance(p, EmulatedCuda):
                m._parameters[name] = torch.nn.Parameter(EmulatedCuda(p.detach()), requires_grad=p.requires_grad)
        for name, b in list(m._buffers.items()):
            if b is not None and not isinstance(b, EmulatedCuda):
                m._buffers[name] = EmulatedCuda(b)
    return module
