"""TorchScript checkpoints: their tensors are read, their code never runs (issue 14 item 1)."""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Tuple

import pytest
import torch

from disco_spec import errors
from disco_spec.models.checkpoint_io import read_state_dict
from disco_spec.models.clip import load_clip
from disco_spec.models.resolve import resolve_weights
from disco_spec.models.torchscript_read import read_torchscript_tensors

pytestmark = [pytest.mark.usefixtures("cache"), pytest.mark.filterwarnings("ignore::FutureWarning")]


class _WritesOnLoad(torch.nn.Module):
    """A module whose TorchScript __setstate__ writes a file: it runs inside torch.jit.load."""

    def __init__(self, marker: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.weight, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.marker = state[1]
        self.training = state[2]
        torch.save(torch.zeros(1), state[1])


class _Wrapper(torch.nn.Module):
    """Plain attributes at the top, the payload one level down."""

    def __init__(self, marker: str):
        super().__init__()
        self.proj = torch.nn.Linear(2, 2)
        self.inner = _WritesOnLoad(marker)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.proj(x))


def _script_save(module: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.mark.parametrize("make", [_WritesOnLoad, _Wrapper])
def test_archive_code_never_runs(tmp_path, monkeypatch, make):
    marker = tmp_path / "pwned"
    archive = _script_save(make(str(marker)), tmp_path / "evil.pt")
    # The attack is real: torch.jit.load runs the archive's __setstate__.
    torch.jit.load(str(archive))
    assert marker.exists()
    marker.unlink()

    def no_jit_load(*a, **k):
        raise AssertionError("torch.jit.load called on a spec-named file")

    monkeypatch.setattr(torch.jit, "load", no_jit_load)
    with pytest.raises(errors.ModelError, match="custom state"):
        read_state_dict(archive, "CLIP test")
    # The path a spec takes: a local file with its correct sha256.
    w = resolve_weights(SimpleNamespace(path=str(archive), sha256=hashlib.sha256(archive.read_bytes()).hexdigest()),
                        "clip", spec_dir=str(tmp_path))
    with pytest.raises(errors.ModelError):
        load_clip(w, "cpu")
    assert not marker.exists()


def _zip_archive(path: Path, data_pkl: bytes, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", data_pkl)
        z.writestr("m/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr("m/code/__torch__.py", "")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


class _CallsSystem:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_archive_pickle_with_other_globals_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    archive = _zip_archive(tmp_path / "evil.pt", pickle.dumps(_CallsSystem(marker), protocol=2))
    with pytest.raises(errors.ModelError, match="refused global"):
        read_state_dict(archive, "CLIP test")
    assert not marker.exists()


def test_state_given_to_a_tensor_is_refused(tmp_path):
    # BUILD on a rebuilt tensor would call torch.Tensor.__setstate__ with the file's arguments.
    src = tmp_path / "ok.pt"
    _script_save(torch.nn.Linear(2, 2), src)
    with zipfile.ZipFile(src) as z:
        root = z.namelist()[0].split("/")[0]
        data = z.read(f"{root}/data.pkl")
        storages = {n.replace(f"{root}/", "m/"): z.read(n) for n in z.namelist() if "/data/" in n}
    # Make the first tensor receive state: ... REDUCE <state> BUILD right after the weight's rebuild.
    i = data.index(b"R", data.index(b"_rebuild_tensor_v2"))
    i = data.index(b"R", i + 1)  # the outer REDUCE (the inner one builds the OrderedDict of hooks)
    forged = data[: i + 1] + b"(\x88N)tb" + data[i + 1:]
    archive = _zip_archive(tmp_path / "forged.pt", forged, storages)
    with pytest.raises(errors.ModelError, match="not a TorchScript module record"):
        read_torchscript_tensors(archive)


class _Mixed(torch.nn.Module):
    """fp16 weights (as in OpenAI's releases), nested lists of modules, views into one storage."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(3, 4).half() for _ in range(2)])
        base = torch.randn(6, 5, generator=g)
        self.register_buffer("whole", base)
        self.register_buffer("column", base[:, 2])  # strided view with an offset
        self.register_buffer("count", torch.tensor(7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


def test_restricted_reading_matches_torch(tmp_path):
    archive = _script_save(_Mixed(), tmp_path / "mixed.pt")
    got = read_torchscript_tensors(archive)
    want = torch.jit.load(str(archive)).state_dict()  # our own file: running it is fine here
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    assert got["blocks.0.weight"].dtype == torch.float16


def test_storage_size_lies_are_refused(tmp_path):
    src = _script_save(torch.nn.Linear(2, 2), tmp_path / "ok.pt")
    with zipfile.ZipFile(src) as z:
        root = z.namelist()[0].split("/")[0]
        data = z.read(f"{root}/data.pkl")
        storages = {n.replace(f"{root}/", "m/"): z.read(n)[:4] for n in z.namelist() if "/data/" in n}
    archive = _zip_archive(tmp_path / "short.pt", data, storages)
    with pytest.raises(errors.ModelError, match="bytes"):
        read_torchscript_tensors(archive)
