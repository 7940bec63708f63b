"""Loopback servers for the network-fault and SSRF scenarios (issue 8, scenarios 4 and 5).

`FaultServer` serves files over real HTTP/1.0 on 127.0.0.1; each path has a fault mode:

    ok            the file (Range honoured: 206 with Content-Range)
    drip          headers, then 8 bytes every 0.25 s (each gap far under the read timeout)
    drip-headers  the status line, then one header byte every 0.25 s
    hang          reads the request, never answers
    hang-body     headers and half the body, then nothing
    reset         half of what was asked for, then a TCP reset (RST)
    short         declares 1,000 bytes more than it sends, then closes
    long          declares 1,000 bytes fewer than the body, and sends the whole body
    503:<s>       503 with Retry-After: <s>, every time
    503-once:<s>  503 with Retry-After: <s> once, then the file
    gzip-bomb     Content-Encoding: gzip over a stream that inflates to GZIP_BOMB_SIZE bytes
    redirect:<u>  302 to <u>, every time

`CanaryListener` is a plain TCP server that counts the connections it accepts: a redirect
target that must never be contacted.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GZIP_BOMB_SIZE = 256 * 1024 * 1024  # what the gzip bomb inflates to


@cache
def gzip_bomb() -> bytes:
    """A gzip member of GZIP_BOMB_SIZE zero bytes (about 250 KB), built in 1 MiB steps."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [comp.compress(block) for _ in range(GZIP_BOMB_SIZE >> 20)]
    parts.append(comp.flush())
    return b"".join(parts)


@dataclass
class Hit:
    path: str
    range: str | None
    accept_encoding: str | None
    at: float


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up on faults by design


@dataclass
class FaultServer:
    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self
        self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                server.hits.append(
                    Hit(
                        path,
                        self.headers.get("Range"),
                        self.headers.get("Accept-Encoding"),
                        time.monotonic(),
                    )
                )
                mode = server.modes.get(path, "ok")
                if mode.startswith("503-once:") and server.count(path) > 1:
                    mode = "ok"
                server.respond(self, path, mode)

        self.http = _Quiet(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def origin(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes, mode: str = "ok") -> str:
        self.files[path] = body
        self.modes[path] = mode
        return self.url(path)

    def count(self, path: str) -> int:
        return sum(1 for h in self.hits if h.path == path)

    def close(self) -> None:
        self.stop.set()
        self.http.shutdown()
        self.http.server_close()

    # ------------------------------------------------------------------------ behaviours
    def respond(self, h: BaseHTTPRequestHandler, path: str, mode: str) -> None:
        kind, _, arg = mode.partition(":")
        body = self.files.get(path, b"")
        if kind == "redirect":
            return self.status(h, 302, Location=arg)
        if kind in ("503", "503-once"):
            return self.status(h, 503, **{"Retry-After": arg})
        if path not in self.files:
            return self.status(h, 404)
        if kind == "hang":
            self.stop.wait(30)
            return None
        if kind == "drip-headers":
            h.wfile.write(b"HTTP/1.0 200 OK\r\n")
            for byte in b"X-Slow: " + b"a" * 4000:
                if self.stop.wait(0.25):
                    return None
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
            return None
        if kind == "gzip-bomb":
            bomb = gzip_bomb()
            h.send_response(200)
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(bomb)))
            h.end_headers()
            h.wfile.write(bomb)
            return None
        start = 0
        ranged = h.headers.get("Range")
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'  # strong, changes with the bytes
        current = h.headers.get("If-Range") in (None, etag)  # RFC 9110: else the whole file
        if kind in ("ok", "reset", "503-once") and ranged and ranged.startswith("bytes="):
            start = int(ranged[6:].rstrip("-")) if current else 0
        part = body[start:]
        declared = len(part) + {"short": 1000, "long": -1000}.get(kind, 0)
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.send_header("Content-Length", str(declared))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", etag)
        h.end_headers()
        if kind == "drip":
            for i in range(0, len(part), 8):
                if self.stop.wait(0.25):
                    return None
                h.wfile.write(part[i : i + 8])
                h.wfile.flush()
            return None
        if kind == "hang-body":
            h.wfile.write(part[: len(part) // 2])
            h.wfile.flush()
            self.stop.wait(30)
            return None
        if kind == "reset":
            h.wfile.write(part[: len(part) // 2])
            h.wfile.flush()
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            return None
        h.wfile.write(part)
        return None

    @staticmethod
    def status(h: BaseHTTPRequestHandler, code: int, **headers: str) -> None:
        h.send_response(code)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", "0")
        h.end_headers()


class CanaryListener:
    """A TCP listener on a free loopback port that counts accepted connections and closes
    them at once: any count above 0 means a refused target was contacted."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
