"""A folder's whole tree (names, kinds, bytes, modes), to prove that a refusal changed nothing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator


def snapshot(root: Path) -> dict[str, tuple]:
    """{relative path: (kind, mode, sha256 of the bytes or link target)} for everything under `root`, links not followed."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@contextlib.contextmanager
def unchanged(root: Path) -> Iterator[None]:
    """Assert that the block (a refusal) leaves every name, byte and mode under `root` as it was."""
    before = snapshot(root)
    try:
        yield
    finally:
        after = snapshot(root)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        assert not changed, f"a refusal changed {root}: {changed[:10]}"
