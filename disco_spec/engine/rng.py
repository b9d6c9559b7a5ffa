"""Explicit, device-independent random numbers for the engine.

Every random draw in the engine goes through a ``torch.Generator`` that the caller passes in; no
function here (or anywhere in ``disco_spec.engine``) touches torch's global RNG, Python's ``random``
or NumPy's global state.  Draws are always made on the CPU in float32 and then moved to the target
device and dtype, so a CPU run and a GPU run given the same seed see exactly the same random numbers.

Seed derivation (documented, stable across versions of this package)::

    message = "disco-spec/v1/" + "/".join(str(p) for p in (base_seed, *names))
    seed    = int.from_bytes(sha256(message.encode("utf-8")).digest()[:8], "big") & (2**63 - 1)

e.g. ``derive_seed(42, "frame", 3)`` hashes the text ``"disco-spec/v1/42/frame/3"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..plan import seeds

__all__ = [
    "derive_seed",
    "make_generator",
    "randn",
    "rand",
    "uniform_scalar",
    "normal_scalar",
    "randint_scalar",
    "randperm",
    "bernoulli_scalar",
]

def derive_seed(base_seed: int, *names: str | int) -> int:
    """Derive a 63-bit seed from ``base_seed`` and a path of names (the formula lives in disco_spec.plan.seeds)."""
    parts = (base_seed, *names)
    for p in parts:
        if isinstance(p, bool) or not isinstance(p, (int, str)):
            raise TypeError(f"seed parts must be int or str, got {type(p).__name__}: {p!r}")
    return seeds.derive_seed(base_seed, *names)


def make_generator(seed: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return gen


def _check(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError("an explicit torch.Generator is required")
    if generator.device.type != "cpu":
        raise ValueError("engine generators must be CPU generators (draws are made on the CPU)")


def _shape(shape: Sequence[int] | torch.Size | int) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


def _draw(sampler, shape, generator: torch.Generator, device, dtype: torch.dtype) -> torch.Tensor:
    _check(generator)
    out = sampler(_shape(shape), generator=generator, dtype=torch.float32, device="cpu")
    device = torch.device(device or "cpu")
    if device.type == "cuda":  # through pinned memory, asynchronously: the host does not wait for the device
        return out.pin_memory().to(device=device, dtype=dtype, non_blocking=True)
    return out.to(device=device, dtype=dtype)


def randn(
    shape: Sequence[int] | torch.Size | int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """N(0, 1) samples drawn on the CPU in float32 from ``generator``, then moved to device/dtype."""
    return _draw(torch.randn, shape, generator, device, dtype)


def rand(
    shape: Sequence[int] | torch.Size | int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """U[0, 1) samples drawn on the CPU in float32 from ``generator``, then moved to device/dtype."""
    return _draw(torch.rand, shape, generator, device, dtype)


# Scalar draws.  Each consumes the generator exactly like the torchvision / DD expression named
# in its docstring does on the global generator, so a generator seeded like torch.manual_seed
# reproduces those libraries' parameter draws.


def uniform_scalar(low: float, high: float, generator: torch.Generator) -> float:
    """One float32 draw from U[low, high) (as ``torch.empty(1).uniform_(low, high)``)."""
    _check(generator)
    return float(torch.empty(1, dtype=torch.float32).uniform_(low, high, generator=generator).item())


def normal_scalar(mean: float, std: float, generator: torch.Generator) -> torch.Tensor:
    """One float32 N(mean, std^2) draw as a 1-element tensor (as ``torch.zeros(1).normal_(mean, std)``)."""
    _check(generator)
    return torch.empty(1, dtype=torch.float32).normal_(mean, std, generator=generator)


def randint_scalar(low: int, high: int, generator: torch.Generator) -> int:
    """One integer uniform on [low, high) (as ``torch.randint(low, high, (1,))``)."""
    _check(generator)
    return int(torch.randint(int(low), int(high), (1,), generator=generator).item())


def randperm(n: int, generator: torch.Generator) -> list[int]:
    """A random permutation of range(n) (as ``torch.randperm(n)``)."""
    _check(generator)
    return [int(i) for i in torch.randperm(n, generator=generator)]


def bernoulli_scalar(p: float, generator: torch.Generator) -> bool:
    """True with probability p (as torchvision's ``torch.rand(1) < p``)."""
    _check(generator)
    return bool(torch.rand(1, generator=generator) < p)
