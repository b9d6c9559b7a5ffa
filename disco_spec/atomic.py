"""Atomic file writes, and the run folder's trust boundary.

Atomic: readers see the old file or the complete new one, never a half-written file. Every file
disco-spec writes goes through here: a temp file in the destination's folder (so the final os.replace is
a rename within one filesystem), flushed and fsynced, then renamed. A replaced file keeps its
permissions; a new one gets the process umask's, not mkstemp's 0600.

The boundary: a run folder may come from a stranger (docs/security.md), so while a render holds a run
folder (run.lock guards it from the lock to the release) every write, folder creation, move and append
under it goes through this module, which walks from the run folder to the file one component at a time
with `O_NOFOLLOW | O_DIRECTORY` directory descriptors and creates, renames and opens relative to them.
A symbolic link (or a file where a folder belongs, a FIFO where a file belongs) anywhere on that way is
refused with UnsafeRunFolder (exit 2, naming the path) before anything is written through it; nothing is
ever written outside the run folder, whatever links it holds. `check_run_folder` refuses a folder holding
such an entry before the lock is taken, so the refusal changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import BinaryIO, Iterator, TextIO

from .errors import SpecError

# A file name may hold at most this many bytes (NAME_MAX on Linux, macOS and Windows' NTFS in UTF-16 units).
MAX_NAME_BYTES = 255
# What a temp file adds to the name it replaces: `.{name}.{pid}.{8 hex}.tmp` (pid up to 7 digits on Linux).
TEMP_NAME_EXTRA_BYTES = len(".") + len(".") + 7 + len(".") + 8 + len(".tmp")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Walking by directory descriptors needs openat/mkdirat/renameat (Linux, macOS, the BSDs); os.replace takes
# dir fds where os.rename does (it is not listed in supports_dir_fd itself).
_DIR_FD = {os.open, os.mkdir, os.rename, os.unlink, os.stat} <= os.supports_dir_fd


class UnsafeRunFolder(SpecError):
    """A run folder holds a symbolic link (or an entry of the wrong kind) where disco-spec reads or writes."""

    def __init__(self, path: str | os.PathLike, what: str, root: str | os.PathLike):
        why = (f"{what} inside run folder {os.fspath(root)}; disco-spec never reads or writes through it "
               "(remove it, or render into a new folder)")
        super().__init__(f"{os.fspath(path)}: {why}", [(os.fspath(path), why)])
        self.path = os.fspath(path)


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


def _temp_name(name: str) -> str:
    return f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


# ---------------------------------------------------------------------------------------------
# Guarded run folders
# ---------------------------------------------------------------------------------------------

_guarded: dict[str, int] = {}  # absolute run folder path -> how many holders (run.lock) guard it
_guarded_lock = threading.Lock()


def _abs(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))  # lexical: a link inside is seen, not resolved


def _keys(run_dir: str | os.PathLike) -> set[str]:
    # As named and as resolved: a writer that resolved the path (a link above the run folder) is guarded too.
    return {_abs(run_dir), os.path.realpath(os.fspath(run_dir))}


def guard_run_folder(run_dir: str | os.PathLike) -> None:
    """From now on, writes under `run_dir` go through the boundary (run.lock calls this once it holds it)."""
    with _guarded_lock:
        for key in _keys(run_dir):
            _guarded[key] = _guarded.get(key, 0) + 1


def unguard_run_folder(run_dir: str | os.PathLike) -> None:
    with _guarded_lock:
        for key in _keys(run_dir):
            if _guarded.get(key, 0) <= 1:
                _guarded.pop(key, None)
            else:
                _guarded[key] -= 1


def _guarded_parts(path: str | os.PathLike) -> tuple[str, list[str]] | None:
    """(run folder, the components of `path` below it) when `path` lies in a guarded run folder."""
    p = _abs(path)
    with _guarded_lock:
        roots = sorted(_guarded, key=len, reverse=True)
    for root in roots:
        if p == root or p.startswith(root.rstrip(os.sep) + os.sep):
            rel = os.path.relpath(p, root)
            return root, ([] if rel == "." else rel.split(os.sep))
    return None


def _kind(st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if stat.S_ISREG(st.st_mode):
        return "a file"
    if stat.S_ISFIFO(st.st_mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(st.st_mode):
        return "a socket"
    return "a device file"


def _refuse_entry(root: str, parts: list[str], dir_fd: int | None, name: str, want: str) -> UnsafeRunFolder:
    path = os.path.join(root, *parts)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False) if dir_fd is not None else os.lstat(path)
        what = _kind(st)
    except OSError:
        what = "not " + want
    return UnsafeRunFolder(path, f"{what} where disco-spec expects {want}", root)


def _open_dir(root: str, parts: list[str], *, create: bool) -> int:
    """A descriptor of root/parts..., walked without following a link below the root (created if asked)."""
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)  # the folder the user named (its own link is theirs)
    try:
        for i, name in enumerate(parts):
            try:
                nfd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
                try:
                    nfd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _refuse_entry(root, parts[: i + 1], fd, name, "a folder") from None
                    raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refuse_entry(root, parts[: i + 1], fd, name, "a folder") from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _regular_or_missing(root: str, parts: list[str], dfd: int) -> os.stat_result | None:
    """The stat of the file root/parts (None when absent); a link or non-file there is refused."""
    try:
        st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse_entry(root, parts, dfd, parts[-1], "a file")
    return st


def check_name_bytes(name: str, what: str) -> None:
    """Refuse (exit 2) a file name that, with a temp file's suffix, exceeds what file systems hold."""
    try:
        n = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        why = f"{name!r} cannot be a file name (it holds a lone surrogate, not UTF-8 text)"
        raise SpecError(f"{what}: {why}", [(what, why)]) from None
    if n + TEMP_NAME_EXTRA_BYTES > MAX_NAME_BYTES:
        why = (f"the file name {name[:40]!r}… is {n} bytes in UTF-8; with the {TEMP_NAME_EXTRA_BYTES} bytes of a "
               f"temp file's suffix it exceeds the {MAX_NAME_BYTES} bytes a file name may have")
        raise SpecError(f"{what}: {why}", [(what, why)])


def check_run_folder(run_dir: str | os.PathLike, *, max_entries: int = 1_000_000) -> None:
    """Refuse (UnsafeRunFolder, exit 2) a run folder holding a symbolic link, FIFO, socket or device file
    anywhere below it: disco-spec creates none, and each would let a write or a read escape the folder
    or hang. Reads only; links are never followed."""
    root = _abs(run_dir)
    stack = [root]
    seen = 0
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except FileNotFoundError:
            continue
        for e in entries:
            seen += 1
            if seen > max_entries:
                why = f"holds more than {max_entries} entries; not a run folder disco-spec wrote"
                raise SpecError(f"{root}: {why}", [(root, why)])
            if e.is_symlink():
                raise UnsafeRunFolder(e.path, "a symbolic link", root)
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
            elif not e.is_file(follow_symlinks=False):
                raise UnsafeRunFolder(e.path, _kind(os.lstat(e.path)), root)


# ---------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file; on a clean exit it becomes `dest`, on an exception it is removed.

    Raising inside the block (e.g. after a hash check fails) leaves `dest` untouched. Inside a guarded run
    folder the way to `dest` is walked without following links (see the module docstring).
    """
    guarded = _guarded_parts(dest) if _DIR_FD else None
    if guarded is not None and guarded[1]:
        with _guarded_output(*guarded) as f:
            yield f
        return
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = dest.stat().st_mode & 0o7777
    except OSError:
        mode = _umask_mode()
    with _temp_then_replace(str(dest.parent), dest.name, mode, None) as f:
        yield f


@contextlib.contextmanager
def _guarded_output(root: str, parts: list[str]) -> Iterator[BinaryIO]:
    dfd = _open_dir(root, parts[:-1], create=True)
    try:
        st = _regular_or_missing(root, parts, dfd)
        mode = st.st_mode & 0o7777 if st is not None else _umask_mode()
        with _temp_then_replace("", parts[-1], mode, dfd) as f:
            yield f
    finally:
        os.close(dfd)


@contextlib.contextmanager
def _temp_then_replace(folder: str, name: str, mode: int, dir_fd: int | None) -> Iterator[BinaryIO]:
    """A new temp file beside `name` (in `folder`, or relative to `dir_fd`), given `mode` and renamed over
    `name` on a clean exit (the entry itself is replaced, never a link's target); removed on an exception."""
    while True:
        tmp = os.path.join(folder, _temp_name(name))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if hasattr(os, "fchmod"):  # the file just written, not whatever its name points to now
                os.fchmod(f.fileno(), mode)
        if not hasattr(os, "fchmod"):
            os.chmod(tmp, mode, dir_fd=dir_fd)
        os.replace(tmp, os.path.join(folder, name), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_output(dest) as f:
        f.write(data)


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"))


def make_dirs(path: str | os.PathLike) -> Path:
    """mkdir -p; inside a guarded run folder, without following a link on the way (refused instead)."""
    guarded = _guarded_parts(path) if _DIR_FD else None
    if guarded is None:
        Path(path).mkdir(parents=True, exist_ok=True)
    else:
        os.close(_open_dir(guarded[0], guarded[1], create=True))
    return Path(path)


def move(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Rename `src` to `dest` (one file system). Inside a guarded run folder both ways are walked without
    following links, the source must be a file or folder (not a link) and the destination absent or a file."""
    gs, gd = (_guarded_parts(src), _guarded_parts(dest)) if _DIR_FD else (None, None)
    if gs is None and gd is None:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        return Path(dest)
    if gs is None or gd is None or not gs[1] or not gd[1]:
        raise UnsafeRunFolder(dest if gd is None else src, "a move across the run folder's boundary",
                              (gs or gd)[0])  # type: ignore[index]
    sfd = _open_dir(gs[0], gs[1][:-1], create=False)
    try:
        dfd = _open_dir(gd[0], gd[1][:-1], create=True)
        try:
            st = os.stat(gs[1][-1], dir_fd=sfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise _refuse_entry(gs[0], gs[1], sfd, gs[1][-1], "a file")
            if stat.S_ISREG(st.st_mode):
                _regular_or_missing(gd[0], gd[1], dfd)
            os.replace(gs[1][-1], gd[1][-1], src_dir_fd=sfd, dst_dir_fd=dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    return Path(dest)


def remove(path: str | os.PathLike) -> None:
    """Remove a file (a missing one is fine); inside a guarded run folder the way is walked without links."""
    guarded = _guarded_parts(path) if _DIR_FD else None
    if guarded is None or not guarded[1]:
        Path(path).unlink(missing_ok=True)
        return
    try:
        dfd = _open_dir(guarded[0], guarded[1][:-1], create=False)
    except FileNotFoundError:
        return
    try:
        os.unlink(guarded[1][-1], dir_fd=dfd)  # unlink removes a link itself, never its target
    except FileNotFoundError:
        pass
    finally:
        os.close(dfd)


@contextlib.contextmanager
def open_append(path: str | os.PathLike) -> Iterator[TextIO]:
    """A UTF-8 text file opened for appending (created if absent); inside a guarded run folder it must be a
    plain file with one name (a hard link would let the append change a file elsewhere)."""
    guarded = _guarded_parts(path) if _DIR_FD else None
    # O_NONBLOCK: a FIFO planted there fails the open instead of hanging it (no effect on plain files)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
    if guarded is None or not guarded[1]:
        fd = os.open(path, flags, _umask_mode())
    else:
        root, parts = guarded
        dfd = _open_dir(root, parts[:-1], create=True)
        try:
            try:
                fd = os.open(parts[-1], flags, _umask_mode(), dir_fd=dfd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                    raise _refuse_entry(root, parts, dfd, parts[-1], "a file") from None
                raise
        finally:
            os.close(dfd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            raise UnsafeRunFolder(os.path.join(root, *parts), "a file with more than one name (a hard link)"
                                  if stat.S_ISREG(st.st_mode) else _kind(st), root)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        yield f
