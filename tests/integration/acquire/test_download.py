"""Downloads against real HTTP servers on loopback whose per-path replies are scripted: Range
and resume, a truncated body, 503/429 with Retry-After, a hang past the read timeout, allowed
and forbidden redirects (a second real server off the allow-list must see zero requests),
credentials dropped on a host change, size caps, and secrets kept out of errors and logs."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shardwatch.acquire.download import Downloaded, download
from shardwatch.acquire.http import fetch_bytes
from shardwatch.acquire.partial import PartMeta, Validator, write_meta
from shardwatch.acquire.policy import DownloadError, DownloadPolicy, host_of

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_proxy")]

MiB = 1024 * 1024
CANARY = "CANARY-dl-5b1e07"  # the Authorization value: must never reach an error or a log
QUERY_CANARY = "QTOKEN-d41c9e"  # a signed URL's token: must never reach an error or a log
CONTENT = os.urandom(3 * MiB + 123)
SHA = hashlib.sha256(CONTENT).hexdigest()

Handler = BaseHTTPRequestHandler
Step = Callable[[Handler], None]


# --------------------------------------------------------------------------- the servers
class QuietServer(ThreadingHTTPServer):
    """A client that hangs up early (a timeout, a refused body) is expected: no traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@dataclass
class Seen:
    """One request a server received."""

    path: str
    headers: dict[str, str]


@dataclass
class Server:
    """A real threaded HTTP/1.0 server on `host`: each request to a path takes the next step
    of that path's script (the last step repeats); unknown paths get 404."""

    host: str = "127.0.0.1"
    routes: dict[str, list[Step]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self
        self.lock = threading.Lock()

        class Handle(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server.lock:
                    count = sum(1 for s in server.seen if s.path == path)
                    server.seen.append(Seen(path, {k.lower(): v for k, v in self.headers.items()}))
                script = server.routes.get(path) or [status(404)]
                script[min(count, len(script) - 1)](self)

        self.httpd = QuietServer((self.host, 0), Handle)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port: int = self.httpd.server_address[1]
        return port

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def route(self, path: str, *steps: Step) -> str:
        self.routes[path] = list(steps)
        return self.url(path)

    def hits(self, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if path is None or s.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _range_start(h: Handler) -> int | None:
    value = h.headers.get("Range")
    if value and value.startswith("bytes=") and value.endswith("-"):
        return int(value[len("bytes=") : -1])
    return None


def serve(
    content: bytes = CONTENT,
    *,
    etag: str | None = '"v1"',
    ranges: bool = True,
    content_type: str = "application/octet-stream",
    send: int | None = None,
    stall: Hold | None = None,
    length: int | None = None,
) -> Step:
    """200 (or 206 for `Range: bytes=n-` when `ranges`) with Content-Length and ETag. `send`
    bytes of the body only (then the socket is closed: a truncated body), optionally after
    a `stall` (held until released); `length` overrides the declared Content-Length."""

    def step(h: Handler) -> None:
        start = _range_start(h) if ranges else None
        body = content[start:] if start is not None else content
        h.send_response(206 if start is not None else 200)
        if start is not None:
            h.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.send_header("Content-Type", content_type)
        if etag:
            h.send_header("ETag", etag)
        h.end_headers()
        if send is None:
            h.wfile.write(body)
            return
        h.wfile.write(body[:send])
        h.wfile.flush()
        if stall is not None:
            stall.wait()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)

    return step


def unsized(content: bytes) -> Step:
    """A 200 without Content-Length: the body ends when the connection closes."""

    def step(h: Handler) -> None:
        h.send_response(200)
        h.end_headers()
        h.wfile.write(content)

    return step


def status(code: int, **headers: str) -> Step:
    def step(h: Handler) -> None:
        h.send_response(code)
        for k, v in headers.items():
            h.send_header(k.replace("_", "-"), v)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return step


def redirect(location: str, code: int = 302) -> Step:
    return status(code, Location=location)


class Hold:
    """A reply held back until the test releases it (or `limit` seconds pass): whether the
    client gave up on it first is then an order of events, not a wall-clock ceiling."""

    def __init__(self, limit: float = 30.0) -> None:
        self.limit = limit
        self.released = threading.Event()
        self.ended = threading.Event()  # the hold is over: released, or `limit` passed

    def wait(self) -> None:
        self.released.wait(self.limit)
        self.ended.set()

    def release(self) -> None:
        self.released.set()


def hang(hold: Hold, then: Step) -> Step:
    def step(h: Handler) -> None:
        hold.wait()
        then(h)

    return step


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(host: str = "127.0.0.1") -> Server:
        servers.append(Server(host))
        if host == "127.0.0.1":
            LOOPBACK_ORIGINS.add(f"127.0.0.1:{servers[-1].port}")
        return servers[-1]

    yield make
    LOOPBACK_ORIGINS.clear()
    for s in servers:
        s.close()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


@pytest.fixture
def outsider(make_server: Callable[..., Server]) -> Server:
    """A real server on 127.0.0.2, which is NOT on the allow-list: it must see no request."""
    s = make_server("127.0.0.2")
    s.route("/x", serve(b"internal secrets"))
    return s


class Sleeps(list[float]):
    """An injected sleep: records each wait and really sleeps a tiny bit."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(0.01)


# The origins of this test's servers on 127.0.0.1 (the allow-list is per port).
LOOPBACK_ORIGINS: set[str] = set()


def policy(**overrides: Any) -> DownloadPolicy:
    base: dict[str, Any] = {
        "allowed_hosts": frozenset(LOOPBACK_ORIGINS),
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "attempts": 3,
        "backoff": 0.05,
        "backoff_cap": 2.0,
    }
    return DownloadPolicy(**{**base, **overrides})


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


# ------------------------------------------------------------------------------ download
def test_download_streams_verifies_and_renames(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard.parquet", serve())
    dest = tmp_path / "cache" / "sub" / "shard.parquet"
    sleeps = Sleeps()

    got = download(
        url,
        dest,
        policy=policy(),
        expected_size=len(CONTENT),
        expected_sha256=SHA.upper(),
        sleep=sleeps,
    )

    assert got == Downloaded(dest, len(CONTENT), SHA, '"v1"', False, '"v1"')
    assert dest.read_bytes() == CONTENT
    assert leftovers(dest) == ["shard.parquet"]  # no .part left behind
    assert sleeps == []
    (hit,) = server.hits()
    assert "range" not in hit.headers
    assert hit.headers["accept-encoding"] == "identity"


def test_existing_matching_file_is_returned_without_a_request(
    server: Server, tmp_path: Path
) -> None:
    url = server.route("/shard", serve())
    dest = tmp_path / "shard"
    dest.write_bytes(CONTENT)

    got = download(url, dest, policy=policy(), expected_size=len(CONTENT), expected_sha256=SHA)

    assert got == Downloaded(dest, len(CONTENT), SHA, None, False)
    assert server.hits() == []


def test_existing_file_that_does_not_match_is_downloaded_again(
    server: Server, tmp_path: Path
) -> None:
    url = server.route("/shard", serve())
    dest = tmp_path / "shard"
    dest.write_bytes(b"stale copy")

    got = download(url, dest, policy=policy(), expected_sha256=SHA)

    assert got.sha256 == SHA and dest.read_bytes() == CONTENT
    assert len(server.hits()) == 1


def test_truncated_body_is_resumed_with_range(server: Server, tmp_path: Path) -> None:
    half = len(CONTENT) // 2
    url = server.route("/shard", serve(send=half), serve())
    dest = tmp_path / "shard"
    sleeps = Sleeps()

    got = download(url, dest, policy=policy(), expected_sha256=SHA, sleep=sleeps)

    assert got.resumed is True
    assert got.sha256 == SHA and got.size == len(CONTENT)
    assert dest.read_bytes() == CONTENT
    first, second = server.hits()
    assert "range" not in first.headers
    assert second.headers["range"] == f"bytes={half}-"  # every byte that arrived was kept
    assert second.headers["if-range"] == '"v1"'
    assert sleeps == [0.05]
    assert leftovers(dest) == ["shard"]


def test_body_stalled_past_the_read_timeout_is_resumed(server: Server, tmp_path: Path) -> None:
    half = len(CONTENT) // 2
    stall = Hold()
    url = server.route("/shard", serve(send=half, stall=stall), serve())
    dest = tmp_path / "shard"

    try:
        got = download(url, dest, policy=policy(read_timeout=0.3), sleep=Sleeps())
        assert not stall.ended.is_set()  # resumed while the stalled body was still held
    finally:
        stall.release()
    assert got.resumed and dest.read_bytes() == CONTENT
    # Whole chunks that arrived before the stall were kept (a chunk in flight is lost).
    start = int(server.hits()[1].headers["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= half


def test_part_from_an_earlier_process_is_continued(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", serve())
    dest = tmp_path / "shard"
    part = dest.with_name("shard.part")
    part.write_bytes(CONTENT[:1000])
    write_meta(part, PartMeta.of(url, Validator("etag", '"v1"'), len(CONTENT)))

    got = download(url, dest, policy=policy(), expected_size=len(CONTENT), expected_sha256=SHA)

    assert got.resumed and got.sha256 == SHA and dest.read_bytes() == CONTENT
    (hit,) = server.hits()
    assert hit.headers["range"] == "bytes=1000-"
    assert hit.headers["if-range"] == '"v1"'  # the validator persisted beside the part
    assert leftovers(dest) == ["shard"]  # the meta went with the part


def test_part_without_a_validator_starts_from_zero(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", serve())
    dest = tmp_path / "shard"
    dest.with_name("shard.part").write_bytes(CONTENT[:1000])

    got = download(url, dest, policy=policy(), expected_size=len(CONTENT))

    assert not got.resumed and got.sha256 == SHA
    (hit,) = server.hits()
    assert "range" not in hit.headers and "if-range" not in hit.headers


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", serve(ranges=False))
    dest = tmp_path / "shard"
    part = dest.with_name("shard.part")
    part.write_bytes(b"x" * 5000)  # would corrupt the file if kept
    write_meta(part, PartMeta.of(url, Validator("etag", '"v1"'), None))

    got = download(url, dest, policy=policy())

    assert got.resumed is False
    assert got.sha256 == SHA and dest.read_bytes() == CONTENT
    assert server.hits()[0].headers["range"] == "bytes=5000-"


def test_stale_part_failing_sha256_is_retried_from_zero(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", serve())
    dest = tmp_path / "shard"
    part = dest.with_name("shard.part")
    part.write_bytes(b"\0" * 1000)  # not CONTENT's first bytes
    write_meta(part, PartMeta.of(url, Validator("etag", '"v1"'), None))
    sleeps = Sleeps()

    got = download(url, dest, policy=policy(), expected_sha256=SHA, sleep=sleeps)

    assert got.sha256 == SHA and got.resumed is False and dest.read_bytes() == CONTENT
    first, second = server.hits()
    assert first.headers["range"] == "bytes=1000-" and "range" not in second.headers
    assert sleeps == []  # a stale part is no reason to wait


def test_sha256_mismatch_raises_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", serve())
    dest = tmp_path / "shard"

    with pytest.raises(DownloadError) as info:
        download(url, dest, policy=policy(), expected_sha256="0" * 64, sleep=Sleeps())

    assert info.value.permanent is True
    assert "sha256 mismatch" in info.value.reason and SHA in info.value.reason
    assert not dest.exists() and leftovers(dest) == []
    assert len(server.hits()) == 1  # a full, verified-wrong transfer is not retried


def test_declared_size_other_than_expected_is_refused(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", serve())
    dest = tmp_path / "shard"

    with pytest.raises(DownloadError) as info:
        download(url, dest, policy=policy(), expected_size=len(CONTENT) + 1)

    assert info.value.permanent
    assert info.value.reason == f"declares {len(CONTENT):,} bytes, expected {len(CONTENT) + 1:,}"
    assert leftovers(dest) == []


def test_retry_after_on_503_is_honoured(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", status(503, Retry_After="1"), serve())
    sleeps = Sleeps()

    got = download(url, tmp_path / "shard", policy=policy(), sleep=sleeps)

    assert got.sha256 == SHA
    assert sleeps == [1.0]
    assert len(server.hits()) == 2


def test_retry_after_on_429_is_capped(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", status(429, Retry_After="3600"), serve())
    sleeps = Sleeps()

    download(url, tmp_path / "shard", policy=policy(backoff_cap=2.5), sleep=sleeps)

    assert sleeps == [2.5]


def test_5xx_backs_off_exponentially_and_is_bounded(server: Server, tmp_path: Path) -> None:
    url = server.route("/shard", status(500))
    dest = tmp_path / "shard"
    sleeps = Sleeps()

    with pytest.raises(DownloadError) as info:
        download(url, dest, policy=policy(attempts=4, backoff=0.5, backoff_cap=1.5), sleep=sleeps)

    assert info.value.permanent is False and info.value.reason == "HTTP 500"
    assert sleeps == [0.5, 1.0, 1.5]  # doubling, capped, none after the last attempt
    assert len(server.hits()) == 4
    assert leftovers(dest) == []


def test_404_is_permanent_at_once(server: Server, tmp_path: Path) -> None:
    url = server.url("/missing")
    dest = tmp_path / "shard"
    sleeps = Sleeps()

    with pytest.raises(DownloadError) as info:
        download(url, dest, policy=policy(), sleep=sleeps)

    assert info.value.permanent is True and info.value.reason == "HTTP 404"
    assert str(info.value) == f"{url}: HTTP 404"
    assert len(server.hits()) == 1 and sleeps == []
    assert leftovers(dest) == []


def test_hang_past_read_timeout_is_cut_off_and_retried(server: Server, tmp_path: Path) -> None:
    hung = Hold()
    url = server.route("/shard", hang(hung, serve()), serve())
    sleeps = Sleeps()

    try:
        got = download(url, tmp_path / "shard", policy=policy(read_timeout=0.3), sleep=sleeps)
        assert not hung.ended.is_set()  # did not wait for the hung reply
    finally:
        hung.release()
    assert got.sha256 == SHA
    assert len(server.hits()) == 2 and sleeps == [0.05]


def test_declared_length_above_max_bytes_is_refused(server: Server, tmp_path: Path) -> None:
    url = server.route("/huge", serve(b"tiny", length=10**12, send=4))
    dest = tmp_path / "huge"

    with pytest.raises(DownloadError) as info:
        download(url, dest, policy=policy(max_bytes=MiB), sleep=Sleeps())

    assert info.value.permanent
    assert info.value.reason == "declares 1,000,000,000,000 bytes, above the limit of 1,048,576"
    assert len(server.hits()) == 1 and leftovers(dest) == []


def test_body_above_max_bytes_is_cut_off(server: Server, tmp_path: Path) -> None:
    url = server.route("/unsized", unsized(CONTENT))
    dest = tmp_path / "unsized"

    with pytest.raises(DownloadError) as info:
        download(url, dest, policy=policy(max_bytes=MiB), sleep=Sleeps())

    assert info.value.permanent
    assert info.value.reason == "body exceeds the limit of 1,048,576 bytes"
    assert len(server.hits()) == 1 and leftovers(dest) == []


def test_redirect_to_an_allowed_path_is_followed(server: Server, tmp_path: Path) -> None:
    server.route("/real", serve(etag='"final"'))
    server.route("/hop", redirect("/real", 307))
    url = server.route("/start", redirect(server.url("/hop"), 301))

    got = download(url, tmp_path / "shard", policy=policy())

    assert got.sha256 == SHA and got.etag == '"final"'
    assert [s.path for s in server.hits()] == ["/start", "/hop", "/real"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "redirect to host 169.254.169.254"),
        ("OUTSIDER", "redirect to host 127.0.0.2:OUTPORT is not allowed"),
        ("http://127.0.0.1:1\\@127.0.0.2:OUTPORT/x", "redirect to a malformed URL"),
        ("file:///etc/passwd", "redirect to scheme 'file' is not allowed"),
        ("gopher://127.0.0.1:5432/x", "redirect to scheme 'gopher' is not allowed"),
    ],
)
def test_redirect_off_the_allow_list_is_never_requested(
    server: Server,
    outsider: Server,
    tmp_path: Path,
    location: str,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    location = location.replace("OUTSIDER", outsider.url("/x")).replace(
        "OUTPORT", str(outsider.port)
    )
    reason = reason.replace("OUTPORT", str(outsider.port))
    url = server.route("/start", redirect(location))
    dest = tmp_path / "shard"
    sleeps = Sleeps()
    connected: list[Any] = []  # every address the download opens a socket to
    connect = socket.socket.connect

    def recording(sock: socket.socket, address: Any) -> None:
        connected.append(address)
        connect(sock, address)

    with monkeypatch.context() as patch, pytest.raises(DownloadError) as info:
        patch.setattr(socket.socket, "connect", recording)
        download(url, dest, policy=policy(), sleep=sleeps)

    # refused, not attempted (and timed out): no socket to any address but the server's
    assert connected and {tuple(a[:2]) for a in connected} == {("127.0.0.1", server.port)}
    assert info.value.permanent is True
    assert reason in info.value.reason
    assert info.value.url == url
    assert outsider.hits() == []  # the forbidden target received NO request
    assert len(server.hits()) == 1 and sleeps == []
    assert leftovers(dest) == []


def test_first_url_off_the_allow_list_is_never_requested(outsider: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download(outsider.url("/x"), tmp_path / "x", policy=policy())

    where = f"127.0.0.2:{outsider.port}"
    assert info.value.permanent and info.value.reason == f"URL with host {where} is not allowed"
    assert outsider.hits() == []


def test_too_many_redirects(server: Server, tmp_path: Path) -> None:
    url = server.route("/loop", *(redirect(f"/loop?{n}") for n in range(1, 6)))

    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "x", policy=policy(max_redirects=3))

    assert info.value.permanent and info.value.reason == "more than 3 redirects"
    assert len(server.hits()) == 4


def test_authorization_is_dropped_when_a_redirect_changes_host(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    first, cdn = make_server(), make_server()
    first.route("/back", serve())
    cdn.route("/blob", redirect(first.url("/back")))
    url = first.route("/file", redirect(cdn.url("/blob", host="localhost")))
    auth = {"Authorization": f"Bearer {CANARY}"}
    allowed = frozenset({f"127.0.0.1:{first.port}", f"localhost:{cdn.port}"})

    got = download(url, tmp_path / "f", policy=policy(allowed_hosts=allowed, headers=auth))

    assert got.sha256 == SHA
    start, back = first.hits()
    (blob,) = cdn.hits()
    assert start.headers["authorization"] == f"Bearer {CANARY}"
    assert "authorization" not in blob.headers  # another host: no credentials
    assert "authorization" not in back.headers  # and they do not come back afterwards


def test_secrets_never_reach_errors_or_logs(
    server: Server, outsider: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.route("/missing", status(404))
    server.route("/busy", status(503, Retry_After="0"))
    server.route("/cut", serve(send=1000))
    server.route("/away", redirect(outsider.url("/x") + f"?sig={QUERY_CANARY}"))
    server.route("/ok", serve())
    secret = policy(headers={"Authorization": f"Bearer {CANARY}"}, attempts=2)
    errors: list[DownloadError] = []
    for i, path in enumerate(["/missing", "/busy", "/cut", "/away"]):
        with pytest.raises(DownloadError) as info:
            download(
                server.url(path) + f"?token={QUERY_CANARY}",
                tmp_path / f"f{i}",
                policy=secret,
                sleep=Sleeps(),
            )
        errors.append(info.value)
    with pytest.raises(DownloadError) as info:
        fetch_bytes(server.url("/missing") + f"?token={QUERY_CANARY}", policy=secret)
    errors.append(info.value)
    download(server.url("/ok") + f"?token={QUERY_CANARY}", tmp_path / "ok", policy=secret)

    assert server.hits("/ok")[0].headers["authorization"] == f"Bearer {CANARY}"  # it was sent
    assert "GET /ok?token=REDACTED" in caplog.text  # urllib3's request lines were captured
    for error in errors:
        for text in (str(error), repr(error), error.url, error.reason):
            assert CANARY not in text and QUERY_CANARY not in text
        assert "?" not in error.url or error.url.endswith("?token=REDACTED")
    assert CANARY not in repr(secret)
    assert CANARY not in caplog.text and QUERY_CANARY not in caplog.text


# --------------------------------------------------------------------------- fetch_bytes
def test_fetch_bytes_follows_allowed_redirect(server: Server) -> None:
    server.route("/listing.json", serve(b'{"a": 1}', content_type="application/json"))
    url = server.route("/api", redirect("/listing.json", 303))

    body, content_type = fetch_bytes(url, policy=policy())

    assert body == b'{"a": 1}' and content_type == "application/json"


def test_fetch_bytes_retries_and_refuses_forbidden_redirect(
    server: Server, outsider: Server
) -> None:
    ok = server.route("/manifest", status(503, Retry_After="1"), serve(b"m"))
    bad = server.route("/evil", redirect(outsider.url("/x")))
    sleeps = Sleeps()

    assert fetch_bytes(ok, policy=policy(), sleep=sleeps) == (b"m", "application/octet-stream")
    assert sleeps == [1.0]
    with pytest.raises(DownloadError) as info:
        fetch_bytes(bad, policy=policy(), sleep=sleeps)
    where = f"127.0.0.2:{outsider.port}"
    assert info.value.permanent and f"host {where} is not allowed" in info.value.reason
    assert outsider.hits() == []


def test_fetch_bytes_limit(server: Server) -> None:
    declared = server.route("/big", serve(b"x" * 2000))
    unsized_url = server.route("/stream", unsized(b"y" * 2000))
    fits = server.route("/fits", serve(b"z" * 1000))

    for url, reason in [
        (declared, "declares 2,000 bytes, above the limit of 1,000"),
        (unsized_url, "body exceeds the limit of 1,000 bytes"),
    ]:
        with pytest.raises(DownloadError) as info:
            fetch_bytes(url, policy=policy(), limit=1000)
        assert info.value.permanent and info.value.reason == reason
    assert fetch_bytes(fits, policy=policy(), limit=1000)[0] == b"z" * 1000


def test_fetch_bytes_retries_a_truncated_body(server: Server) -> None:
    url = server.route("/m", serve(b"0123456789" * 100, send=10), serve(b"0123456789" * 100))
    sleeps = Sleeps()

    body, _ = fetch_bytes(url, policy=policy(), sleep=sleeps)

    assert body == b"0123456789" * 100 and sleeps == [0.05]
    assert "range" not in server.hits()[1].headers


def test_host_of() -> None:
    assert host_of("https://User:pw@CDN.Example.COM:8443/a?b=c") == "cdn.example.com"
    assert host_of("http://[::1]:80/x") == "::1"
    assert host_of("http://example.com./x") == "example.com"
    assert host_of("/relative") == ""


def test_download_error_strips_query_and_user_info() -> None:
    error = DownloadError(
        "https://u:p@h.example/a/b.parquet?X-Sig=abc#f", "HTTP 403", permanent=True
    )
    assert error.url == "https://REDACTED@h.example/a/b.parquet?X-Sig=REDACTED"
    assert str(error) == "https://REDACTED@h.example/a/b.parquet?X-Sig=REDACTED: HTTP 403"
    assert error.reason == "HTTP 403" and error.permanent is True
