"""Atomic file writes: readers see the old file or the complete new one, never a half-written file.

Every file disco-spec writes goes through here: a temp file in the destination's folder (so the final
os.replace is a rename within one filesystem), flushed and fsynced, then renamed. A replaced file keeps
its permissions; a new one gets the process umask's, not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Iterator


def _umask_mode() -> int:
    """0o666 less the process umask, read without changing it where Linux allows (os.umask sets it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return 0o666 & ~current


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file; on a clean exit it becomes `dest`, on an exception it is removed.

    Raising inside the block (e.g. after a hash check fails) leaves `dest` untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = dest.stat().st_mode & 0o7777
    except OSError:
        mode = _umask_mode()
    while True:
        tmp = dest.parent / f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            f = open(tmp, "xb")
            break
        except FileExistsError:
            continue
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_output(dest) as f:
        f.write(data)


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"))
