"""Reading state dicts from verified files, without ever unpickling arbitrary objects.

Three formats are accepted: safetensors (our tiny checkpoints), torch zip/legacy files read with
`weights_only=True` (guided-diffusion, secondary model, torchvision backbones), and TorchScript
archives (OpenAI's CLIP .pt files), whose tensors `torchscript_read` takes out without running the
archive's code (torch.jit.load would run it: never call it on a file a spec names).
"""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path
from typing import Iterator

import torch

from .. import errors

# Attributes OpenAI's TorchScript CLIP archives store beside the weights (not parameters).
_OPENAI_JIT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


@contextlib.contextmanager
def untouched_global_rng() -> Iterator[None]:
    """Build modules whose constructors draw random inits without disturbing the global CPU RNG.

    Whatever they draw is overwritten by loaded weights; forking keeps any other user of the global
    RNG (there should be none in disco-spec) unaffected by whether a model was loaded.
    """
    with torch.random.fork_rng(devices=[]):
        yield


def is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    # 8-byte little-endian header length, then a JSON object.
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives are zip files holding compiled code (`<root>/code/...`)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any("/code/" in n or n.startswith("code/") for n in names) and any(
        n.endswith("constants.pkl") for n in names
    )


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint on CPU. Raises ModelError (not a traceback) for unreadable files."""
    path = Path(path)
    try:
        if is_safetensors(path):
            from safetensors.torch import load_file

            # Copy out of the memory map: a file rewritten after its hash check must not change the model.
            return {k: v.clone() for k, v in load_file(str(path), device="cpu").items()}
        if is_torchscript_archive(path):
            return read_torchscript_state_dict(path, what)
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except errors.ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file, reported plainly
        raise errors.ModelError(f"{what}: cannot read checkpoint {path}: {e}") from None
    # Some trainers wrap the weights: {"state_dict": {...}} and/or a DataParallel "module." prefix.
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise errors.ModelError(f"{what}: {path} does not hold a plain state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def read_torchscript_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The weights of a TorchScript archive (e.g. OpenAI's CLIP .pt) as a plain state dict."""
    from .torchscript_read import read_torchscript_tensors

    try:
        sd = read_torchscript_tensors(path)
    except errors.ModelError as e:
        raise errors.ModelError(f"{what}: cannot read TorchScript archive {path}: {e}") from None
    for key in _OPENAI_JIT_EXTRA_KEYS:
        sd.pop(key, None)
    return sd


def check_keys(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str, path: str) -> None:
    """Fail with a readable message when a checkpoint does not fit the architecture."""
    expected = set(module.state_dict().keys())
    got = set(sd.keys())
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:5])})")
        raise errors.ModelError(f"{what}: {path} does not match the architecture: {'; '.join(parts)}")
    own = module.state_dict()
    bad = [k for k in sorted(expected) if tuple(own[k].shape) != tuple(sd[k].shape)]
    if bad:
        k = bad[0]
        raise errors.ModelError(
            f"{what}: {path} does not match the architecture: {len(bad)} tensors have other shapes "
            f"(e.g. {k}: file {tuple(sd[k].shape)}, model {tuple(own[k].shape)})"
        )


def assert_materialised(module: torch.nn.Module, what: str) -> None:
    """After a meta-device build + assign-load, every tensor must hold real data."""
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_meta:
            raise errors.ModelError(f"{what}: internal error: {name} was not loaded from the checkpoint")
