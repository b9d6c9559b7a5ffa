"""URLs a spec names (issue 14, item 3): fetched only with --allow-network, cut at an overall deadline
(a server trickling one byte at a time is stopped, not waited for), capped in size, and recorded with
their SHA-256 in the manifest. Every server here is local (127.0.0.1) and stopped by the test."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import threading
import time
import tomllib
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from cli_helpers import small_smoke_doc as small_doc, run_cli, write_spec
from disco_spec.errors import SpecError
from disco_spec.run.fetch import fetch_url

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (10, 200, 90)).save(buf, format="PNG")
    return buf.getvalue()


class Server:
    """A local HTTP server whose behaviour the test chooses: 'ok', 'trickle', 'trickle-headers', 'huge', 'endless'."""

    def __init__(self, mode: str, body: bytes = b"") -> None:
        self.mode, self.body, self.requests = mode, body, 0
        self.stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.requests += 1
                if server.mode == "trickle-headers":
                    for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
                        if server.stop.wait(0.2):
                            return
                        self.wfile.write(bytes([ch]))
                        self.wfile.flush()
                    return
                self.send_response(200)
                if server.mode == "ok":
                    self.send_header("Content-Length", str(len(server.body)))
                    self.end_headers()
                    self.wfile.write(server.body)
                elif server.mode == "huge":
                    self.send_header("Content-Length", str(10**12))
                    self.end_headers()
                elif server.mode == "endless":  # no length: closes when done, which is never
                    self.end_headers()
                    chunk = b"\0" * 65536
                    with contextlib.suppress(OSError):
                        while not server.stop.is_set():
                            self.wfile.write(chunk)
                else:  # trickle: one byte every 0.2 s, for up to 60 s unless stopped
                    self.send_header("Content-Length", "300")
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        for _ in range(300):
                            if server.stop.wait(0.2):
                                return
                            self.wfile.write(b"x")
                            self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/image.png"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def serving(mode: str, body: bytes = b"") -> Iterator[Server]:
    s = Server(mode, body)
    try:
        yield s
    finally:
        s.close()


@pytest.mark.render
@pytest.mark.parametrize("mode", ["trickle", "trickle-headers"])
def test_a_trickling_server_is_cut_at_the_overall_deadline(mode: str) -> None:
    with serving(mode) as s:
        start = time.monotonic()
        with pytest.raises(SpecError) as exc:
            fetch_url(s.url, deadline_s=1.5, max_bytes=1 << 20, fld="prompts.image_prompts")
        took = time.monotonic() - start
    assert took < 3.0  # each byte came well within any per-read timeout; the deadline still holds
    assert "deadline of 1.5 s" in str(exc.value) and exc.value.problems[0][0] == "prompts.image_prompts"


@pytest.mark.parametrize("mode", ["huge", "endless"])
def test_a_body_past_the_size_cap_is_refused(mode: str) -> None:
    with serving(mode) as s:
        start = time.monotonic()
        with pytest.raises(SpecError, match="cap of 1000000 bytes"):
            fetch_url(s.url, deadline_s=20, max_bytes=1_000_000, fld="init.init_image")
        assert time.monotonic() - start < 10


def test_fetch_returns_the_body() -> None:
    body = png_bytes()
    with serving("ok", body) as s:
        assert fetch_url(s.url, deadline_s=5, max_bytes=1 << 20, fld="init.init_image") == body



@pytest.mark.render
@pytest.mark.slow
def test_urls_are_fetched_only_with_allow_network_and_recorded(tmp_path: Path) -> None:
    body = png_bytes()
    with serving("ok", body) as s:
        spec = write_spec(tmp_path / "s.toml", small_doc(prompts={"image_prompts": {"0": [f"{s.url}:1"]}}))
        code, out, err = run_cli("render", str(spec), "--out", str(tmp_path / "out"), "-q", "--no-track")
        assert code == 2 and "--allow-network" in err and "prompts.image_prompts" in err
        assert s.requests == 0  # refused before any connection
        code, out, err = run_cli("render", str(spec), "--out", str(tmp_path / "out"), "-q", "--no-track",
                                 "--allow-network")
        assert code == 0, err
        assert s.requests == 1  # fetched once for the whole render
    (manifest,) = (tmp_path / "out" / "smoke").glob("run-*/manifest.json")
    inputs = json.loads(manifest.read_text())["hashed"]["inputs"]
    assert inputs["files"] == [{"field": "prompts.image_prompts", "source": s.url, "bytes": len(body),
                                "sha256": hashlib.sha256(body).hexdigest()}]
