"""The weight hash cache notices a file rewritten with its old size and mtime (issue 14 item 4)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from disco_spec.models import weights


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_SPEC_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def hashed(monkeypatch):
    calls: list[Path] = []
    real = weights.file_sha256
    monkeypatch.setattr(weights, "file_sha256", lambda p: calls.append(Path(p)) or real(p))
    return calls


def _set_old_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _wait_for_new_ctime(path: Path, old_ctime_ns: int) -> None:
    # ctime comes from a coarse kernel clock; a rewrite in the same tick could keep it.
    deadline = time.monotonic() + 2
    while path.stat().st_ctime_ns == old_ctime_ns and time.monotonic() < deadline:
        time.sleep(0.01)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))


def test_in_place_rewrite_with_same_size_and_mtime_is_rehashed(tmp_path, hashed):
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 4096)
    old = time.time_ns() - 60 * 1_000_000_000
    _set_old_mtime(f, old)
    assert weights.weight_sha256(f) == hashlib.sha256(b"a" * 4096).hexdigest()
    assert weights.weight_sha256(f) == hashlib.sha256(b"a" * 4096).hexdigest()
    assert len(hashed) == 1  # cached
    before = f.stat()
    time.sleep(0.02)
    with open(f, "r+b") as fh:  # same inode, same size
        fh.write(b"b" * 4096)
    _set_old_mtime(f, old)
    _wait_for_new_ctime(f, before.st_ctime_ns)
    after = f.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert weights.weight_sha256(f) == hashlib.sha256(b"b" * 4096).hexdigest()
    assert len(hashed) == 2


def test_replaced_file_with_same_size_and_mtime_is_rehashed(tmp_path, hashed):
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 100)
    old = time.time_ns() - 60 * 1_000_000_000
    _set_old_mtime(f, old)
    weights.weight_sha256(f)
    other = tmp_path / "other.bin"
    other.write_bytes(b"c" * 100)
    _set_old_mtime(other, old)
    os.replace(other, f)  # a new inode under the old name
    assert weights.weight_sha256(f) == hashlib.sha256(b"c" * 100).hexdigest()
    assert len(hashed) == 2
