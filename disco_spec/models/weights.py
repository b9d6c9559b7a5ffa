"""Weight files on disk: where they live, their SHA-256 (with a persistent cache), and downloads.

Every byte we load is checked against a pinned SHA-256 first. Hashing a 2 GB checkpoint takes
seconds, so the hash of a file is remembered per (absolute path, size, mtime_ns, ctime_ns, device,
inode). mtime can be set back with `os.utime`, but ctime cannot (any write or utime moves it) and a
replaced file has a new inode, so a rewritten file is hashed again. `check_model_SHA` in a spec bypasses
the cache entirely.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable

from .. import errors
from ..atomic import atomic_output
from ..atomic import atomic_write_bytes as _atomic_write_bytes
from ..hashes import file_sha256

_CHUNK = 1 << 20
_HASH_CACHE_NAME = "sha256-cache.json"
_HASH_CACHE_VERSION = 2  # 2: entries also key on ctime_ns, device and inode
_DOWNLOAD_TIMEOUT_S = 60
# Kernels stamp mtimes from a coarse clock (a few ms), so a same-size rewrite right after a write can
# keep the same mtime_ns. Like git's "racily clean" rule, a hash is only remembered for a file whose
# mtime is older than this; a just-written file is simply hashed again on its next use.
_RACY_WINDOW_NS = 2_000_000_000


def cache_dir() -> Path:
    """Root of everything disco-spec caches (weights, hash cache, tiny models)."""
    env = os.environ.get("DISCO_SPEC_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs  # imported lazily: only needed when no explicit cache is configured

    return Path(platformdirs.user_cache_dir("disco-spec")).resolve()


def weights_dir() -> Path:
    """Folder for downloaded (real) weight files."""
    return cache_dir() / "models"


def tiny_dir() -> Path:
    """Folder for generated tiny test checkpoints."""
    return cache_dir() / "tiny"


# ---------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    """Write `data` to `dest` so that readers see either the old file or the complete new one."""
    _atomic_write_bytes(dest, data)


# ---------------------------------------------------------------------------------------------
# Hashing with a persistent cache
# ---------------------------------------------------------------------------------------------


def _hash_cache_path() -> Path:
    return cache_dir() / _HASH_CACHE_NAME


def _read_hash_cache() -> dict[str, dict]:
    try:
        raw = json.loads(_hash_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        # Missing or corrupt: the cache only saves time, so start afresh rather than fail.
        return {}
    if not isinstance(raw, dict) or raw.get("version") != _HASH_CACHE_VERSION:
        return {}
    entries = raw.get("entries")
    return entries if isinstance(entries, dict) else {}


def _identity(st: os.stat_result) -> dict[str, int]:
    """What must be unchanged for a remembered hash to still describe the file."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "dev": st.st_dev,
            "ino": st.st_ino}


def _remember_hash(path: Path, st: os.stat_result, sha: str) -> None:
    if time.time_ns() - st.st_mtime_ns < _RACY_WINDOW_NS:
        return
    # Re-read just before writing so that concurrent processes lose at most each other's newest
    # entry (which only costs a rehash), never the whole cache.
    entries = {k: v for k, v in _read_hash_cache().items() if os.path.exists(k)}  # forget deleted files
    entries[str(path)] = {**_identity(st), "sha256": sha}
    data = json.dumps({"version": _HASH_CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True)
    try:
        atomic_write_bytes(_hash_cache_path(), data.encode("utf-8"))
    except OSError:
        pass  # a read-only cache folder must not stop a render


def weight_sha256(path: str | os.PathLike, use_cache: bool = True) -> str:
    """file_sha256 of a weight file; with `use_cache`, a file unchanged since it was last hashed is not re-read."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as e:
        raise errors.ModelError(f"cannot read {p}: {e.strerror or e}") from None
    if use_cache:
        hit = _read_hash_cache().get(str(p))
        if (
            isinstance(hit, dict)
            and all(hit.get(k) == v for k, v in _identity(st).items())
            and isinstance(hit.get("sha256"), str)
        ):
            return hit["sha256"]
    sha = file_sha256(p)  # tests count calls to it (weights.file_sha256)
    # Only remember the hash if the file did not change while we read it.
    st2 = p.stat()
    if _identity(st2) == _identity(st):
        _remember_hash(p, st2, sha)
    return sha


# ---------------------------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------------------------


class _HashMismatchFromUrl(Exception):
    def __init__(self, url: str, actual: str):
        super().__init__(url)
        self.url = url
        self.actual = actual


def _progress(total: int | None, what: str):
    from tqdm import tqdm

    # disable=None: a bar on an interactive stderr, silence in logs (a line is printed instead).
    return tqdm(
        total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
        disable=None, mininterval=0.5, leave=False,
    )


def _fetch_one(url: str, dest: Path, sha256: str | None, what: str) -> str:
    """Stream `url` into a temp file beside `dest`, hashing as we go; rename only if the hash matches."""
    h = hashlib.sha256()
    req = urllib.request.Request(url, headers={"User-Agent": "disco-spec"})
    # A failed check raises inside the block, so the temp file is removed and `dest` never appears.
    with atomic_output(dest) as out, urllib.request.urlopen(req, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if not sys.stderr.isatty():
            print(f"downloading {what} from {url}", file=sys.stderr)
        got = 0
        with _progress(total, what) as bar:
            for block in iter(lambda: resp.read(_CHUNK), b""):
                out.write(block)
                h.update(block)
                got += len(block)
                bar.update(len(block))
        if total is not None and got != total:
            raise OSError(f"connection closed after {got} of {total} bytes")
        actual = h.hexdigest()
        if sha256 is not None and actual != sha256.lower():
            raise _HashMismatchFromUrl(url, actual)
    return actual


def download(urls: Iterable[str], dest: Path, sha256: str | None, what: str) -> Path:
    """Fetch `dest` from the first URL that works and (when `sha256` is given) serves the right bytes.

    A URL that fails or serves wrong bytes (mirrors sometimes answer 200 with an HTML page) is
    skipped for the next one. Nothing is left at `dest` unless its hash matched. Raises
    WeightsHashMismatch when a server answered but no URL served the expected bytes, ModelError
    when no URL could be read at all (with the path to place the file at by hand).
    """
    dest = Path(dest)
    urls = list(urls)
    failures: list[str] = []
    mismatch: _HashMismatchFromUrl | None = None
    for url in urls:
        try:
            _fetch_one(url, dest, sha256, what)
        except _HashMismatchFromUrl as e:
            mismatch = mismatch or e
            failures.append(f"{url}: served a file with SHA-256 {e.actual}")
            continue
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            # URLError/HTTPError/timeouts are OSErrors; ValueError covers malformed URLs;
            # HTTPException covers truncated and malformed responses.
            failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
            continue
        # Not put in the hash cache: the file is racily new (see _RACY_WINDOW_NS).
        return dest
    if mismatch is not None and sha256 is not None:
        raise errors.WeightsHashMismatch(what, f"{mismatch.url} (nothing was saved)", sha256.lower(), mismatch.actual)
    tried = "\n".join(f"  - {f}" for f in failures) or "  (no URLs are known for it)"
    expect = f" with SHA-256 {sha256.lower()}" if sha256 else ""
    raise errors.ModelError(
        f"{what}: could not download it from any source:\n{tried}\n"
        f"If this machine is offline, download the file on another machine and place it at:\n"
        f"  {dest.resolve()}\n"
        f"(it must match{expect or ' the expected file'}; disco-spec verifies it before use)."
    )
