"""Hash cache and downloads (against a local HTTP server; never the network)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from pathlib import Path

import pytest

from disco_spec import errors
from disco_spec.models import weights


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("DISCO_SPEC_CACHE", str(d))
    return d


@pytest.fixture
def count_hashing(monkeypatch):
    calls = []
    real = weights.file_sha256

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(weights, "file_sha256", counting)
    return calls


def _old_file(path: Path, data: bytes, age_s: int = 60) -> Path:
    """A file whose mtime is outside the racy window, so its hash may be cached."""
    path.write_bytes(data)
    t = time.time_ns() - age_s * 1_000_000_000
    os.utime(path, ns=(t, t))
    return path


def test_cache_dir_from_env(cache):
    assert weights.cache_dir() == cache.resolve()
    assert weights.tiny_dir() == cache.resolve() / "tiny"


def test_cache_dir_default_uses_platformdirs(monkeypatch):
    import platformdirs

    monkeypatch.delenv("DISCO_SPEC_CACHE")
    assert weights.cache_dir() == Path(platformdirs.user_cache_dir("disco-spec")).resolve()


def test_hash_cache_avoids_rehash(tmp_path, count_hashing):
    f = _old_file(tmp_path / "w.bin", b"abc" * 1000)
    want = hashlib.sha256(b"abc" * 1000).hexdigest()
    assert weights.weight_sha256(f) == want
    assert weights.weight_sha256(f) == want
    assert weights.weight_sha256(str(f)) == want
    assert len(count_hashing) == 1
    # use_cache=False always reads the file (check_model_SHA)
    assert weights.weight_sha256(f, use_cache=False) == want
    assert len(count_hashing) == 2


def test_hash_cache_notices_mtime_and_size(tmp_path, count_hashing):
    f = _old_file(tmp_path / "w.bin", b"a" * 100)
    h1 = weights.weight_sha256(f)
    # same size, different bytes, different mtime
    _old_file(f, b"b" * 100, age_s=30)
    h2 = weights.weight_sha256(f)
    assert h2 == hashlib.sha256(b"b" * 100).hexdigest() != h1
    # same mtime, different size
    st = f.stat()
    f.write_bytes(b"b" * 101)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.weight_sha256(f) == hashlib.sha256(b"b" * 101).hexdigest()
    assert len(count_hashing) == 3


def test_racily_new_file_is_not_cached(tmp_path, count_hashing):
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"x")
    weights.weight_sha256(f)
    weights.weight_sha256(f)
    assert len(count_hashing) == 2


def test_corrupt_hash_cache_is_ignored(tmp_path, cache, count_hashing):
    f = _old_file(tmp_path / "w.bin", b"abc")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "sha256-cache.json").write_text("{not json", encoding="utf-8")
    assert weights.weight_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    # ...and replaced by a valid one
    assert weights.weight_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    assert len(count_hashing) == 1
    (cache / "sha256-cache.json").write_text('{"version": 1, "entries": []}', encoding="utf-8")
    assert weights.weight_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    assert len(count_hashing) == 2


def test_missing_file_is_model_error(tmp_path):
    with pytest.raises(errors.ModelError, match="cannot read"):
        weights.weight_sha256(tmp_path / "nope.bin")


# ---------------------------------------------------------------------------------------------
# download() against a local server
# ---------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - http.server API
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    files: dict[str, bytes] = {}
    handler = type("H", (_Handler,), {"files": files})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield base, files
    srv.shutdown()
    srv.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_good_file(server, tmp_path):
    base, files = server
    data = os.urandom(3 * (1 << 20) + 17)  # several read chunks
    files["/w.pt"] = data
    dest = tmp_path / "models" / "w.pt"
    out = weights.download([f"{base}/w.pt"], dest, hashlib.sha256(data).hexdigest(), "test weights")
    assert out == dest and dest.read_bytes() == data
    assert _leftovers(dest.parent) == ["w.pt"]  # no temp files remain


def test_download_bad_hash_leaves_nothing(server, tmp_path):
    base, files = server
    files["/w.pt"] = b"not the weights"
    dest = tmp_path / "w.pt"
    expected = "0" * 64
    with pytest.raises(errors.WeightsHashMismatch) as ei:
        weights.download([f"{base}/w.pt"], dest, expected, "test weights")
    assert expected in str(ei.value) and hashlib.sha256(b"not the weights").hexdigest() in str(ei.value)
    assert _leftovers(tmp_path) == []


def test_download_falls_back_to_second_url(server, tmp_path):
    base, files = server
    data = b"weights!" * 100
    files["/mirror/w.pt"] = data
    dest = tmp_path / "w.pt"
    weights.download([f"{base}/missing/w.pt", f"{base}/mirror/w.pt"], dest, hashlib.sha256(data).hexdigest(), "w")
    assert dest.read_bytes() == data


def test_download_skips_mirror_serving_wrong_bytes(server, tmp_path):
    base, files = server
    data = b"real"
    files["/html"] = b"<html>please log in</html>"
    files["/good"] = data
    dest = tmp_path / "w.pt"
    weights.download([f"{base}/html", f"{base}/good"], dest, hashlib.sha256(data).hexdigest(), "w")
    assert dest.read_bytes() == data and _leftovers(tmp_path) == ["w.pt"]


def test_download_all_fail_tells_offline_user_where_to_put_it(server, tmp_path):
    base, _ = server
    dest = tmp_path / "sub" / "w.pt"
    urls = [f"{base}/a.pt", "http://127.0.0.1:1/b.pt"]
    with pytest.raises(errors.ModelError) as ei:
        weights.download(urls, dest, "a" * 64, "diffusion model X")
    msg = str(ei.value)
    assert not isinstance(ei.value, errors.WeightsHashMismatch)
    assert all(u in msg for u in urls)
    assert str(dest.resolve()) in msg and "offline" in msg and "a" * 64 in msg
    assert _leftovers(dest.parent) == []


def test_download_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"local copy")
    dest = tmp_path / "out" / "w.bin"
    weights.download([src.as_uri()], dest, hashlib.sha256(b"local copy").hexdigest(), "w")
    assert dest.read_bytes() == b"local copy"


def test_atomic_write_bytes_replaces(tmp_path):
    p = tmp_path / "f.json"
    weights.atomic_write_bytes(p, b"1")
    weights.atomic_write_bytes(p, b"22")
    assert p.read_bytes() == b"22" and _leftovers(tmp_path) == ["f.json"]


def test_resolve_entry_downloads_into_cache_then_reuses_it(server, cache, count_hashing):
    from disco_spec.models.registry import ModelEntry
    from disco_spec.models.resolve import resolve_entry

    base, files = server
    data = b"secondary weights"
    files["/sec.pth"] = data
    entry = ModelEntry(name="test-secondary", role="secondary", filename="sec.pth", urls=(f"{base}/sec.pth",),
                       sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(errors.ModelError, match="fetching is off"):
        resolve_entry(entry, fetch=False)
    w = resolve_entry(entry)
    assert Path(w.path) == cache.resolve() / "models" / "sec.pth" and w.sha256 == entry.sha256
    assert w.size == len(data) and w.source_url == f"{base}/sec.pth"
    assert count_hashing == []  # verified while streaming, not re-read
    del files["/sec.pth"]  # the cached file is used from now on
    t = time.time_ns() - 60_000_000_000
    os.utime(w.path, ns=(t, t))
    assert resolve_entry(entry, fetch=False).sha256 == entry.sha256
    assert resolve_entry(entry, fetch=False).sha256 == entry.sha256
    assert len(count_hashing) == 1
    Path(w.path).write_bytes(b"corrupted weights")
    with pytest.raises(errors.WeightsHashMismatch):
        resolve_entry(entry, fetch=False)
