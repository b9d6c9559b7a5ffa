"""The tensors of a TorchScript archive, read without running any of its code.

`torch.jit.load` compiles the archive's `code/` folder and runs it (a class's `__setstate__` runs
while the archive is read), so a checkpoint file could write files or worse. OpenAI's CLIP releases
are TorchScript archives, and all disco-spec needs from them is their weights. Those live beside the
code as plain data: `<root>/data.pkl` pickles the module tree (objects of `__torch__.*` classes whose
state is a dict of attributes; tensors via `torch._utils._rebuild_tensor_v2` with a persistent id
naming a storage) and `<root>/data/<key>` holds each storage's raw little-endian bytes.

We unpickle `data.pkl` with an unpickler that resolves only the tensor-rebuild globals; a
`__torch__.*` class becomes an inert record of its state, so no archive method ever runs. An object
with a custom `__getstate__` (state not a dict of named attributes) is refused. The state dict is
the tensors found by walking the attribute dicts (for a traced module, its parameters and buffers).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from .. import errors

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
# Module trees deeper than this are not CLIP checkpoints (CLIP nests about 6 levels).
_MAX_DEPTH = 64
_MAX_PICKLE_BYTES = 256 << 20


class _StorageType:
    """What `torch FloatStorage` etc. resolve to: only a dtype, never torch's class."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class ScriptObjectRecord:
    """An inert stand-in for an object of a TorchScript class: remembers its class name and state."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "ScriptObjectRecord":
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:  # BUILD: store, never interpret
        self.state = state


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: Any, stride: Any, requires_grad: Any = False,
                    hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor) or not isinstance(offset, int):
        raise pickle.UnpicklingError("malformed tensor record")
    size, stride = tuple(size), tuple(stride)
    if not all(isinstance(n, int) and n >= 0 for n in size + stride) or len(size) != len(stride):
        raise pickle.UnpicklingError(f"malformed tensor shape {size} / stride {stride}")
    return torch.as_strided(storage, size, stride, offset)  # refuses views past the storage's end


def _identity(value: Any, *_: Any) -> Any:
    return value


def _as_list(values: Any) -> list:
    return list(values)


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
    # Typed containers in TorchScript attributes (newer and older archive writers).
    ("torch.jit._pickle", "restore_type_tag"): _identity,
    ("torch.jit._pickle", "build_intlist"): _as_list,
    ("torch.jit._pickle", "build_doublelist"): _as_list,
    ("torch.jit._pickle", "build_boollist"): _as_list,
    ("torch.jit._pickle", "build_tensorlist"): _as_list,
}


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, so that BUILD too can be restricted (the C one offers no hook)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def _load_build(self) -> None:
        # BUILD would call `__setstate__` (or update `__dict__`) of whatever is on the stack, e.g. a
        # tensor; only our inert records may receive state.
        if len(self.stack) < 2 or not isinstance(self.stack[-2], ScriptObjectRecord):
            raise pickle.UnpicklingError("state given to an object that is not a TorchScript module record")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _load_build

    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str):
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._root = root
        self._storages: dict[str, torch.Tensor] = {}
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "__torch__" or module.startswith("__torch__."):
            qualname = f"{module}.{name}"
            if qualname not in self._classes:
                self._classes[qualname] = type("ScriptObject", (ScriptObjectRecord,), {"qualname": qualname})
            return self._classes[qualname]
        raise pickle.UnpicklingError(f"refused global {module}.{name} (only tensor data is read from archives)")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, storage_type.dtype, numel)
        return self._storages[key]

    def _read_storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
        name = f"{self._root}/data/{key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"storage {name} is missing") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel < 0 or info.file_size != numel * itemsize:
            raise pickle.UnpicklingError(f"storage {name} holds {info.file_size} bytes, not {numel} x {itemsize}")
        raw = bytearray(self._archive.read(info))  # bounded by the declared size checked above
        if not raw:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(raw, dtype=dtype)


def _archive_root(archive: zipfile.ZipFile) -> str:
    roots = {n.split("/", 1)[0] for n in archive.namelist()}
    pkls = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(roots) != 1 or len(pkls) != 1:
        raise errors.ModelError("not a single TorchScript archive (expected one <root>/data.pkl)")
    root = pkls[0].split("/", 1)[0]
    byteorder = f"{root}/byteorder"
    if byteorder in archive.namelist() and archive.read(byteorder).strip() not in (b"little", b""):
        raise errors.ModelError("big-endian TorchScript archives are not supported")
    return root


def _collect(obj: Any, prefix: str, out: dict[str, torch.Tensor], seen: set[int], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise errors.ModelError(f"module tree nested deeper than {_MAX_DEPTH} levels")
    if id(obj) in seen:
        return
    seen.add(id(obj))
    state = getattr(obj, "state", None)
    if not isinstance(state, dict):
        raise errors.ModelError(
            f"object {prefix.rstrip('.') or '(root)'} of class {obj.qualname} has a custom state "
            "(its own __getstate__); disco-spec reads only plain module attributes and never runs archive code"
        )
    for key, value in state.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, ScriptObjectRecord):
            _collect(value, f"{prefix}{key}.", out, seen, depth + 1)


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript module archive, by dotted name, as CPU copies.

    Raises ModelError for archives that are not plain module trees; never executes archive code.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            root = _archive_root(archive)
            info = archive.getinfo(f"{root}/data.pkl")
            if info.file_size > _MAX_PICKLE_BYTES:
                raise errors.ModelError(f"{root}/data.pkl is larger than {_MAX_PICKLE_BYTES >> 20} MiB")
            top = _RestrictedUnpickler(archive.read(info), archive, root).load()
    except errors.ModelError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, RuntimeError,
            KeyError, IndexError, AttributeError, OSError, MemoryError) as e:
        raise errors.ModelError(f"unreadable TorchScript archive: {e}") from None
    if not isinstance(top, ScriptObjectRecord):
        raise errors.ModelError("the archive's data.pkl does not hold a TorchScript module")
    tensors: dict[str, torch.Tensor] = {}
    _collect(top, "", tensors, set(), 0)
    return {k: v.detach().clone() for k, v in tensors.items()}
