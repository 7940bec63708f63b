"""A loopback HTTP file server whose files change under the client (issue 17: splicing,
same-size changes). Each file has a version; its validator is a strong ETag `"v<n>"`, a
Last-Modified date that moves with the version, or nothing. Range requests are served; a
`naive` server ignores If-Range (it splices, like the attacker), an honest one answers a
stale If-Range with the whole file. If-None-Match / If-Modified-Since are answered 304.
`cut(path, n)` makes the next GET of `path` send `n` body bytes, then close."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Validators = Literal["etag", "last-modified", "none"]


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class File:
    body: bytes
    version: int = 1


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a cut connection is the point


@dataclass
class VersionedServer:
    validators: Validators = "etag"
    naive: bool = False  # ignores If-Range: a Range is always served from the current file
    files: dict[str, File] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    cuts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.respond(self)

        self.http = _Quiet(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def origin(self) -> str:
        return f"127.0.0.1:{self.http.server_address[1]}"

    def url(self, path: str) -> str:
        return f"http://{self.origin}{path}"

    def put(self, path: str, body: bytes) -> str:
        """Serve `body` at `path`: a new version (new validator) if it was there already."""
        old = self.files.get(path)
        self.files[path] = File(body, old.version + 1 if old else 1)
        return self.url(path)

    def cut(self, path: str, after: int) -> None:
        self.cuts[path] = after

    def of(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def validator(self, f: File) -> dict[str, str]:
        if self.validators == "etag":
            return {"ETag": f'"v{f.version}"'}
        if self.validators == "last-modified":
            return {"Last-Modified": formatdate(1_700_000_000 + 3600 * f.version, usegmt=True)}
        return {}

    def respond(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        f = self.files.get(path)
        if f is None:
            return self._send(h, path, headers, 404, {}, b"")
        mine = self.validator(f)
        current = set(mine.values())
        if current and (
            headers.get("if-none-match") in current or headers.get("if-modified-since") in current
        ):
            return self._send(h, path, headers, 304, mine, b"")
        start = 0
        ranged = headers.get("range", "")
        if ranged.startswith("bytes=") and ranged.endswith("-"):
            fresh = "if-range" not in headers or headers["if-range"] in current
            if self.naive or fresh:
                start = int(ranged[6:-1])
        if start >= len(f.body) > 0:
            extra = {"Content-Range": f"bytes */{len(f.body)}"}
            return self._send(h, path, headers, 416, extra, b"")
        extra = dict(mine)
        if start:
            extra["Content-Range"] = f"bytes {start}-{len(f.body) - 1}/{len(f.body)}"
        return self._send(h, path, headers, 206 if start else 200, extra, f.body[start:])

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        path: str,
        headers: dict[str, str],
        status: int,
        extra: dict[str, str],
        body: bytes,
    ) -> None:
        self.hits.append(Hit(path, headers, status))
        h.send_response(status)
        for key, value in extra.items():
            h.send_header(key, value)
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        cut = self.cuts.pop(path, None)
        if cut is not None:
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(body)
