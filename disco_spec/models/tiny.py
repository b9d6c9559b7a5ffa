"""Deterministic tiny checkpoints: the real architectures at toy sizes, with random weights.

The bytes must be identical on every machine, because their SHA-256 is pinned in the registry.
So weights are not drawn with torch's normal_/uniform_ (their float kernels differ between CPU
instruction sets); instead each tensor is filled from integers drawn with torch.randint from a
torch.Generator seeded by the entry name, scaled by an exact power of two. Integer draws from
mt19937 and power-of-two scaling are bit-exact everywhere.

Files are safetensors, but written by `_safetensors_bytes` below rather than safetensors.torch.save:
the library serialises `__metadata__` from a hash map, so with more than one metadata key its byte
order changes from run to run. Our writer emits sorted keys and fixed padding.
"""

from __future__ import annotations

import hashlib
import json
import sys
from fractions import Fraction
from pathlib import Path

import torch

from .. import errors
from . import architectures
from .checkpoint_io import untouched_global_rng
from .registry import REGISTRY, ModelEntry
from .secondary import build_secondary
from .types import ResolvedWeights
from .weights import atomic_write_bytes, tiny_dir

# Bump when the generation recipe changes (and re-pin the hashes in registry.TINY_PINS).
TINY_FORMAT_VERSION = "1"
# Weights are n * 2**(k-10) with |n| <= 2**10: exact in float32 *and* float16, so the fp16 paths
# (OpenAI CLIP's conversion, DD's UNet torso on CUDA) hold exactly the file's values.
_INT_BITS = 10


def _generator(name: str) -> torch.Generator:
    seed = int.from_bytes(hashlib.sha256(f"disco-spec tiny {name}".encode()).digest()[:8], "little")
    return torch.Generator(device="cpu").manual_seed(seed)


def _uniform_pow2(shape: torch.Size, log2_bound: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform in [-2**log2_bound, 2**log2_bound) on a grid of 2**(log2_bound-10); bit-exact everywhere."""
    n = torch.randint(-(1 << _INT_BITS), 1 << _INT_BITS, tuple(shape), generator=gen, dtype=torch.int64)
    return n.to(torch.float32) * (2.0 ** (log2_bound - _INT_BITS))


def _log2_bound(fan_in: int) -> int:
    """The k with 2**k nearest (geometrically) to sqrt(3/fan_in), in exact rational arithmetic.

    Floating-point log2 is not used: fan_in = 6*4**j gives an exact tie that libm could break
    either way on different platforms.
    """
    x = Fraction(3, fan_in)  # compare x = bound**2 against powers of 4
    k = 0
    while Fraction(4) ** k > x:
        k -= 1
    while Fraction(4) ** (k + 1) <= x:
        k += 1
    # now 4**k <= x < 4**(k+1); the geometric midpoint is 2 * 4**k
    return k + 1 if x >= 2 * Fraction(4) ** k else k


def _fill_value(name: str, p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "logit_scale":
        # CLIP's initial log(1/0.07), as a literal: libm's log may differ in the last bit across platforms.
        return torch.full(p.shape, 4.6052, dtype=torch.float32)
    if p.ndim >= 2:
        # Roughly variance-preserving (std ~ 1/sqrt(fan_in)) so activations stay finite and varied.
        fan_in = max(1, p.numel() // p.shape[0])
        v = _uniform_pow2(p.shape, _log2_bound(fan_in), gen)
        # LPIPS heads weight squared feature differences; non-negative keeps distances >= 0.
        return v.abs() if name.startswith("lin") else v
    if leaf == "weight":  # 1-D weights are norm gains
        return 1.0 + _uniform_pow2(p.shape, -4, gen)
    return _uniform_pow2(p.shape, -4, gen)


def _randomise(module: torch.nn.Module, name: str) -> None:
    gen = _generator(name)
    with torch.no_grad():
        for pname, p in module.named_parameters():
            p.copy_(_fill_value(pname, p, gen))


def _build(entry: ModelEntry) -> torch.nn.Module:
    role, cfg = entry.role, entry.config
    if role == "diffusion":
        return architectures.unet_only(cfg)
    if role == "secondary":
        return build_secondary(cfg)
    if role == "clip":  # a real OpenAI model's entry names its architecture (models/registry_clip.py)
        return architectures.tiny_clip(cfg.get("architecture", cfg))
    if role == "lpips":
        return architectures.lpips_net(cfg["net"], cfg.get("version", "0.1"))
    if role == "depth":
        from .architectures import build_depth_module

        return build_depth_module(cfg)
    raise errors.ModelError(f"no tiny generator for role {role!r}")


def _tensors_to_save(entry: ModelEntry, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    sd = module.state_dict()
    if entry.role == "lpips":
        # `lins.N` aliases `linN` (same tensors; safetensors refuses shared storage) and the
        # scaling layer holds lpips' fixed constants; both come from the constructor on load.
        sd = {k: v for k, v in sd.items() if not k.startswith(("lins.", "scaling_layer."))}
    return {k: sd[k].detach().to(torch.float32).contiguous().clone() if sd[k].is_floating_point()
            else sd[k].detach().contiguous().clone() for k in sorted(sd)}


_ST_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def _safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file as a pure function of its inputs (sorted names, sorted JSON, space padding)."""
    if sys.byteorder != "little":  # safetensors stores little-endian; numpy's tobytes is native
        raise errors.ModelError("tiny checkpoints can only be generated on little-endian machines")
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        blob = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * (-len(text) % 8)  # the format allows trailing spaces; 8-byte alignment of the data
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def random_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Seeded random weights for registry entry `name`, in the layout its file has (for an LPIPS entry: the
    whole LPIPS module's, "lpips-full"), float32, the same on every machine.

    A tiny entry's are its file's contents; a real entry's let the loaders build the real architecture without
    its file (bench/: speed and kernels do not depend on weight values). Whatever the entry, the model is then
    built by the same loader as from a file (`state_dict=`, and models.load.load_models' `random_weights`)."""
    entry = REGISTRY[name]
    if entry.role == "clip" and not entry.tiny and "architecture" not in entry.config:
        raise errors.ModelError(f"{name}: the registry records no architecture to build random weights for")
    with untouched_global_rng():
        module = _build(entry)
    _randomise(module, name)
    return _tensors_to_save(entry, module)


def tiny_bytes(name: str) -> bytes:
    """The exact safetensors bytes of tiny entry `name`."""
    entry = REGISTRY[name]
    if not entry.tiny:
        raise errors.ModelError(f"{name} is not a tiny model")
    meta = {"format": "pt", "disco_spec_tiny": name, "disco_spec_tiny_version": TINY_FORMAT_VERSION}
    return _safetensors_bytes(random_state_dict(name), meta)


def tiny_names() -> list[str]:
    return [n for n, e in REGISTRY.items() if e.tiny]


def generate(name: str, dest_dir: Path | None = None, *, check: bool = True) -> ResolvedWeights:
    """Write tiny checkpoint `name` (atomically) and return it; refuses bytes that differ from the pin."""
    entry = REGISTRY[name]
    data = tiny_bytes(name)
    sha = hashlib.sha256(data).hexdigest()
    if check and sha != entry.sha256:
        raise errors.WeightsHashMismatch(
            f"tiny model {name} (generated on this machine; the generator is not reproducible here, "
            "please report it)", "(not written)", entry.sha256, sha,
        )
    dest = Path(dest_dir) if dest_dir is not None else tiny_dir()
    path = dest / entry.filename
    atomic_write_bytes(path, data)
    return ResolvedWeights(role=entry.role, name=name, path=str(path.resolve()), sha256=sha, size=len(data))


def make_tiny(dest: str | Path | None = None) -> list[ResolvedWeights]:
    """(Re)generate every tiny checkpoint into `dest` (default: the cache's tiny/ folder)."""
    return [generate(n, Path(dest) if dest is not None else None) for n in tiny_names()]
