"""Reading depth-model checkpoints (verified files only) without unpickling arbitrary objects.

MiDaS publishes plain state dicts; AdaBins publishes its training checkpoint
`{"model": state_dict, "optimizer": AdamW state, "epoch": int}` with DataParallel `module.`
prefixes. Both are read with `torch.load(weights_only=True)` (dicts, lists, tuples, numbers,
strings and tensors only); only the model's tensors are kept. Tiny checkpoints are safetensors.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import errors
from .checkpoint_io import is_safetensors, is_torchscript_archive, read_state_dict


def _numpy_scalar_globals() -> list[Any]:
    """numpy scalar reconstruction and dtypes: data, not code. Allowed only as a second attempt."""
    import numpy as np

    out: list[Any] = [np.dtype]
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    out += [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType")
                if hasattr(dtypes, n)]
    return out


def _load_weights_only(path: Path, what: str) -> Any:
    # the AdaBins file is ~0.9 GB, two thirds optimizer state we never touch: map it, copy what we keep
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as first:
        # Training checkpoints sometimes carry numpy scalars (e.g. a learning rate); allow exactly those.
        try:
            with torch.serialization.safe_globals(_numpy_scalar_globals()):
                return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
        except Exception:  # noqa: BLE001 - report the first, more telling refusal
            raise errors.ModelError(
                f"{what}: {path} holds objects other than tensors and plain containers, which a weights-only "
                f"load refuses, and disco-spec never unpickles arbitrary objects.\n  torch said: {first}"
            ) from None
    except Exception as e:  # noqa: BLE001
        raise errors.ModelError(f"{what}: cannot read checkpoint {path}: {e}") from None


def read_depth_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The model tensors of a depth checkpoint, on CPU, `module.` prefixes removed."""
    path = Path(path)
    if is_safetensors(path) or is_torchscript_archive(path):
        return read_state_dict(path, what)
    obj = _load_weights_only(path, what)
    if isinstance(obj, dict):
        # MiDaS' BaseModel.load and AdaBins' model_io.load_checkpoint both take ["model"] of a
        # training checkpoint; other trainers use "state_dict".
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise errors.ModelError(f"{what}: {path} does not hold a state dict of tensors (nor one under 'model')")
    out = {}
    for k, v in obj.items():
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out
