"""Fetch a URL a spec names: one overall deadline for the whole transfer and a cap on its size.

A per-read timeout is not enough: a server that sends one byte every few seconds never trips it. Here
a timer shuts the socket down when the deadline passes, which wakes a blocked read at once, and the
body is read in pieces so that the size cap holds before the bytes are in memory. Redirects are
followed (at most MAX_REDIRECTS), to http(s) only. Name resolution (DNS) is not covered by the timer.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse

from ..errors import SpecError

MAX_REDIRECTS = 5
CHUNK = 1 << 16


def _fail(fld: str, url: str, why: str) -> SpecError:
    msg = f"cannot fetch {url!r}: {why}"
    return SpecError(f"{fld}: {msg}", [(fld, msg)])


def _connection(parts: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def _shut(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def fetch_url(url: str, *, deadline_s: float, max_bytes: int, fld: str) -> bytes:
    """The body of `url` (HTTP 200), or SpecError naming `fld` and the limit that stopped it."""
    end = time.monotonic() + deadline_s
    late = _fail(fld, url, f"it took longer than the deadline of {deadline_s:g} s (InputPolicy.url_deadline_s)")
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail(fld, url, "only http:// and https:// URLs with a host are fetched")
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise late
        conn = _connection(parts, remaining)
        expired = threading.Event()
        timer = threading.Timer(remaining, _shut, args=(conn, expired))
        timer.daemon = True
        timer.start()
        try:
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            conn.request("GET", target, headers={"User-Agent": "disco-spec", "Accept-Encoding": "identity"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                url = urllib.parse.urljoin(url, resp.getheader("Location"))
                continue
            if resp.status != 200:
                raise _fail(fld, url, f"HTTP {resp.status} {resp.reason}")
            length = resp.getheader("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                raise _fail(fld, url, f"it is {int(length)} bytes, more than the cap of {max_bytes} bytes "
                                      "(InputPolicy.max_url_bytes)")
            body = bytearray()
            while True:
                piece = resp.read1(CHUNK)
                if expired.is_set():
                    raise late
                if not piece:
                    break
                body += piece
                if len(body) > max_bytes:
                    raise _fail(fld, url, f"it is more than the cap of {max_bytes} bytes (InputPolicy.max_url_bytes)")
            if length is not None and length.strip().isdigit() and len(body) != int(length):
                raise _fail(fld, url, f"the server sent {len(body)} of {int(length)} bytes")
            return bytes(body)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if expired.is_set():
                raise late from None
            raise _fail(fld, url, str(exc) or type(exc).__name__) from None
        finally:
            timer.cancel()
            conn.close()
    raise _fail(fld, url, f"more than {MAX_REDIRECTS} redirects")
