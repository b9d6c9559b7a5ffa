"""One render per run folder: an exclusive lock held from the choice of the folder to the manifest.

Two renders into one `--run-dir` (or two `--resume`s of one run) would interleave frames.jsonl and the
last to finish would silently win. The lock is `fcntl.flock` on `.disco-spec.lock` in the run folder,
taken without waiting: a second render exits 2 at once, naming the process that holds it. The kernel
drops the lock when its holder dies (even by kill -9), so a crashed render never blocks a `--resume`.
The file is removed on release; a render that opened the file just before checks, once it holds the
lock, that the file is still the one in the folder (else it tries again), so removal cannot let two in.

The lock is where the run folder's trust boundary starts (disco_spec.atomic): before it is taken the
folder is checked for links, FIFOs and device files (refused, exit 2, nothing written); the lock file is
opened without following a link and must be a plain file with one name; while it is held, every write
under the folder goes through atomic's guarded walk.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..atomic import UnsafeRunFolder, check_run_folder, guard_run_folder, remove, unguard_run_folder
from ..errors import SpecError

try:  # Unix; elsewhere renders are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".disco-spec.lock"
# What disco_spec.atomic leaves behind when a process dies mid-write: `.{name}.{pid}.{hex}.tmp`.
STALE_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


@dataclass
class RunLock:
    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            remove(self.path)  # while still holding it: a waiter that opened it re-checks the inode
        except OSError:
            pass
        unguard_run_folder(self.path.parent)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def lock_run_dir(run_dir: str | os.PathLike) -> RunLock:
    """Take the run folder's lock, or raise SpecError (exit 2) at once when another render holds it."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    check_run_folder(run_dir)  # a link, FIFO or device file in the folder: refused before anything is written
    if fcntl is None:  # pragma: no cover
        return RunLock(path, None)
    while True:
        fd = _open_lock_file(path, run_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            why = (f"{run_dir} is being rendered by another disco-spec{_holder(path)}; wait for it to finish, "
                   "or render into another folder")
            raise SpecError(f"--run-dir: {why}", [("--run-dir", why)]) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it between our open and our lock: take the new file
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    guard_run_folder(run_dir)
    return RunLock(path, fd)


def _open_lock_file(path: Path, run_dir: Path) -> int:
    """Open (or create) the lock file without following a link; it must be a plain file with one name, so
    truncating it and writing the PID can change nothing outside the run folder."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NONBLOCK", 0), 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise UnsafeRunFolder(path, "not a plain file (a link, folder or pipe)", run_dir) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "a file with more than one name (a hard link)" if stat.S_ISREG(st.st_mode) else "not a plain file"
        raise UnsafeRunFolder(path, what, run_dir)
    return fd


def remove_stale_temps(run_dir: str | os.PathLike) -> list[Path]:
    """Remove the temp files of atomic writes that a killed render left in the run folder (call with the
    lock held: then no other process is writing there). Returns what was removed."""
    import shutil

    removed = []
    for p in Path(run_dir).rglob(".*.tmp"):
        if p.is_file() and STALE_TEMP.match(p.name):
            p.unlink(missing_ok=True)
            removed.append(p)
    for d in Path(run_dir).glob(".restore-*"):  # run.journal's PNG re-encoding folder
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed
