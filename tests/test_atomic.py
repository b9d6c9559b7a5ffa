"""Atomic writes: a failure leaves the old file (or nothing), never a partial file or a stray temp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from disco_spec.atomic import atomic_output, atomic_write_bytes, atomic_write_text


def test_failure_inside_the_block_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    atomic_write_bytes(dest, b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(dest) as f:
            f.write(b"half of the new")
            raise RuntimeError("crash mid-write")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_new_files_get_umask_permissions_and_replaced_files_keep_theirs(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.txt"
        atomic_write_text(new, "héllo")
        assert new.read_text(encoding="utf-8") == "héllo"
        assert new.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.txt"
        kept.write_text("x")
        kept.chmod(0o600)
        atomic_write_text(kept, "y")
        assert kept.read_text() == "y" and kept.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "c.bin"
    atomic_write_bytes(dest, b"1")
    assert dest.read_bytes() == b"1"
