"""Sources against real components: local files, a threaded HTTP server on loopback serving
manifests and parquet bytes, a fake Hugging Face Hub whose `resolve` redirects to a second
loopback server (the CDN stand-in, named "localhost"), and pyarrow's file system (file://)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr
from support.loopback import CANARY

from shardwatch.acquire.http_listing import HttpListingSource
from shardwatch.acquire.hub import HubRepo, HuggingFaceSource
from shardwatch.acquire.local import LocalSource
from shardwatch.acquire.object_store import ObjectStoreSource
from shardwatch.acquire.policy import DownloadError, DownloadPolicy
from shardwatch.acquire.sources import RemoteShard, SourceError, allowed_hosts, cache_name

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_proxy")]

LOOPBACK: set[str] = set()  # the origins (127.0.0.1:port) of this test's servers


def no_sleep(seconds: float) -> None:
    pass


def write_parquet(path: Path, rows: int, seed: int = 0) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "TEXT": [f"caption {seed}-{i}" for i in range(rows)],
            "URL": [f"http://img.example/{seed}/{i}.jpg" for i in range(rows)],
        }
    )
    pq.write_table(table, path)
    return path.read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str:
    return sha(path.read_bytes())


# --- a scripted HTTP server on loopback -------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


class Server:
    """GET routes on the full request path (query included): a Reply, or a list of Replies
    served in turn (the last one repeats). Every request is recorded with its headers."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Reply | list[Reply]] = {}
        self.seen: list[Seen] = []
        self.host = host
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = server.routes.get(self.path, Reply(404, b"not found"))
                if isinstance(route, list):
                    reply = route.pop(0) if len(route) > 1 else route[0]
                else:
                    reply = route
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(host: str = "127.0.0.1") -> Server:
        servers.append(Server(host))
        if host == "127.0.0.1":
            LOOPBACK.add(f"127.0.0.1:{servers[-1].httpd.server_address[1]}")
        return servers[-1]

    yield make
    LOOPBACK.clear()
    for s in servers:
        s.close()


def policy(hosts: frozenset[str] | None = None) -> DownloadPolicy:
    hosts = frozenset(LOOPBACK) if hosts is None else hosts
    return DownloadPolicy(allowed_hosts=hosts, attempts=2, backoff=0.0, connect_timeout=2.0,
                          read_timeout=5.0)


# --- cache_name ---------------------------------------------------------------------------


def shard(uri: str, name: str) -> RemoteShard:
    return RemoteShard(source="s", uri=uri, name=name, size=None, etag=None, sha256=None)


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd.parquet", "a/b/c.parquet", "x\x00y.parquet", "..", ".", "", "noext",
     "dir\\..\\evil.parquet", "über 🙂.PARQUET", "a" * 5000 + ".parquet", "/abs/path.parquet"],
)
def test_cache_name_stays_inside_the_cache(tmp_path: Path, name: str) -> None:
    cached = cache_name(shard(f"http://h/{name!r}", name))
    assert "/" not in cached and "\\" not in cached and "\x00" not in cached
    assert cached.endswith(".parquet") and len(cached) <= 200
    assert cached not in (".", "..")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in cached)
    assert (tmp_path / cached).resolve().parent == tmp_path.resolve()


def test_cache_name_is_stable_and_collision_free() -> None:
    a = cache_name(shard("http://h/x/part-0.parquet", "part-0.parquet"))
    assert a == cache_name(shard("http://h/x/part-0.parquet", "part-0.parquet"))
    assert a != cache_name(shard("http://h/y/part-0.parquet", "part-0.parquet"))
    assert a.endswith("-part-0.parquet") and len(a.split("-")[0]) == 16


def test_source_error_text_and_pickle() -> None:
    err = SourceError("laion", "HTTP 404")
    assert str(err) == "source 'laion': HTTP 404"
    back = pickle.loads(pickle.dumps(err))
    assert (back.source, back.reason, str(back)) == ("laion", "HTTP 404", str(err))


# --- local files ------------------------------------------------------------------------------


def test_local_folder_lists_its_parquet_files_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    b = write_parquet(data / "b.parquet", 3)
    a = write_parquet(data / "a.parquet", 5)
    write_parquet(data / "sub" / "c.parquet", 2)  # not recursive
    (data / "notes.txt").write_text("x")
    shards = LocalSource("local", str(data)).list()
    assert [s.uri for s in shards] == [str(data / "a.parquet"), str(data / "b.parquet")]
    assert [s.size for s in shards] == [len(a), len(b)]
    for s in shards:
        st = os.stat(s.uri)
        assert s.source == "local" and s.name == Path(s.uri).name
        assert s.sha256 is None and s.etag is None
        assert s.mtime is not None and s.mtime.tzinfo is not None
        assert abs(s.mtime.timestamp() - st.st_mtime_ns / 1e9) < 2e-6


def test_local_recursive_glob_and_relative_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_parquet(tmp_path / "data" / "x" / "1.parquet", 1)
    write_parquet(tmp_path / "data" / "x" / "y" / "2.parquet", 1)
    write_parquet(tmp_path / "data" / "0.parquet", 1)
    (tmp_path / "data" / "x" / "skip.csv").write_text("a")
    monkeypatch.chdir(tmp_path)
    shards = LocalSource("g", "data/**/*.parquet").list()
    assert [s.uri for s in shards] == sorted(
        str(tmp_path / p) for p in ("data/0.parquet", "data/x/1.parquet", "data/x/y/2.parquet")
    )
    assert all(os.path.isabs(s.uri) for s in shards)


def test_local_fetch_returns_the_file_itself_with_its_sha256(tmp_path: Path) -> None:
    path = tmp_path / "d" / "a.parquet"
    write_parquet(path, 50)
    source = LocalSource("local", str(path.parent))
    [listed] = source.list()
    cache = tmp_path / "cache"
    got = source.fetch(listed, cache)
    assert got.path == path and got.size == path.stat().st_size
    assert got.sha256 == file_sha(path)
    assert not cache.exists()  # nothing copied


def test_local_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such folder or file"):
        LocalSource("l", str(tmp_path / "missing")).list()
    assert LocalSource("l", str(tmp_path / "missing" / "*.parquet")).list() == []
    path = tmp_path / "a.parquet"
    write_parquet(path, 3)
    source = LocalSource("l", str(path))
    [listed] = source.list()
    with path.open("ab") as fh:
        fh.write(b"more")
    with pytest.raises(SourceError, match="changed since listing"):
        source.fetch(listed, tmp_path / "cache")
    path.unlink()
    with pytest.raises(SourceError, match="cannot read"):
        source.fetch(listed, tmp_path / "cache")


# --- HTTP manifest ----------------------------------------------------------------------------


@pytest.fixture
def shards_server(server: Callable[..., Server], tmp_path: Path) -> tuple[Server, dict[str, bytes]]:
    srv = server()
    files = {n: write_parquet(tmp_path / "src" / n, rows, i)
             for i, (n, rows) in enumerate([("a.parquet", 10), ("b.parquet", 20),
                                            ("c.parquet", 30)])}
    for n, body in files.items():
        srv.routes[f"/shards/{n}"] = Reply(200, body, {"Content-Type": "application/octet-stream"})
    return srv, files


def test_http_json_manifest_relative_urls_and_fetch(
    shards_server: tuple[Server, dict[str, bytes]], tmp_path: Path
) -> None:
    srv, files = shards_server
    manifest = [
        "shards/a.parquet",
        {"url": "/shards/b.parquet", "size": len(files["b.parquet"]),
         "sha256": sha(files["b.parquet"]).upper(), "etag": '"v1"'},
        {"url": f"{srv.base}/shards/c.parquet"},
    ]
    srv.routes["/lists/manifest.json"] = Reply(
        200, json.dumps(manifest).encode(), {"Content-Type": "application/json"}
    )
    # Relative URLs resolve against the manifest's URL: "shards/a.parquet" -> /lists/shards/...
    srv.routes["/lists/shards/a.parquet"] = srv.routes["/shards/a.parquet"]
    source = HttpListingSource("web", f"{srv.base}/lists/manifest.json", policy=policy())
    shards = source.list()
    assert [s.uri for s in shards] == [
        f"{srv.base}/lists/shards/a.parquet", f"{srv.base}/shards/b.parquet",
        f"{srv.base}/shards/c.parquet",
    ]
    assert [s.name for s in shards] == ["a.parquet", "b.parquet", "c.parquet"]
    b = shards[1]
    assert (b.size, b.sha256, b.etag) == (len(files["b.parquet"]), sha(files["b.parquet"]), '"v1"')
    assert shards[0].size is None and shards[0].sha256 is None

    cache = tmp_path / "cache"
    for s, n in zip(shards, ["a.parquet", "b.parquet", "c.parquet"], strict=True):
        got = source.fetch(s, cache)
        assert got.path == cache / cache_name(s)
        assert got.path.read_bytes() == files[n]
        assert got.sha256 == sha(files[n]) == file_sha(got.path)
        assert got.size == len(files[n])
        assert pq.read_table(got.path).num_rows == {"a.parquet": 10, "b.parquet": 20,
                                                    "c.parquet": 30}[n]


def test_http_text_manifest_and_shards_object(
    shards_server: tuple[Server, dict[str, bytes]]
) -> None:
    srv, _ = shards_server
    text = f"# shards\n\n  {srv.base}/shards/b.parquet  \n/shards/a.parquet\n# end\n"
    srv.routes["/m.txt"] = Reply(200, text.encode(), {"Content-Type": "text/plain"})
    source = HttpListingSource("web", f"{srv.base}/m.txt", policy=policy())
    assert [s.name for s in source.list()] == ["a.parquet", "b.parquet"]

    body = json.dumps({"shards": [{"url": "/shards/c.parquet", "size": 7}, "/shards/a.parquet"]})
    srv.routes["/m.json"] = Reply(200, body.encode(), {"Content-Type": "text/plain"})
    listed = HttpListingSource("web", f"{srv.base}/m.json", policy=policy()).list()
    assert [(s.name, s.size) for s in listed] == [("a.parquet", None), ("c.parquet", 7)]


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        (b'[{"url": "/a.parquet"', "application/json", r"invalid JSON at line 1 column \d+"),
        (b'{"files": []}', "application/json", "without a 'shards' list"),
        (b'[{"size": 3}]', "application/json", r"entry 0: missing 'url'"),
        (b'["/a.parquet", {"url": "/b.parquet", "size": -1}]', None, r"entry 1: 'size'"),
        (b'[{"url": "/a.parquet", "sha256": "abc"}]', None, "'sha256' must be 64 hex"),
        (b'["ftp://127.0.0.1/a.parquet"]', None, "not an http"),
        (b'["/dir/"]', None, "no file name"),
        (b"\xff\xfe garbage", "text/plain", "not UTF-8"),
    ],
)
def test_http_manifest_errors_say_what_and_where(
    server: Callable[..., Server], body: bytes, content_type: str | None, match: str
) -> None:
    srv = server()
    srv.routes["/m"] = Reply(200, body, {"Content-Type": content_type} if content_type else {})
    with pytest.raises(SourceError, match=match) as info:
        HttpListingSource("web", f"{srv.base}/m", policy=policy()).list()
    assert info.value.source == "web" and f"{srv.base}/m" in info.value.reason


def test_http_manifest_host_off_the_allow_list_is_named(server: Callable[..., Server]) -> None:
    srv = server()
    body = json.dumps(["/a.parquet", "https://evil.example:8443/x.parquet"]).encode()
    srv.routes["/m.json"] = Reply(200, body, {"Content-Type": "application/json"})
    with pytest.raises(SourceError, match=r"entry 1: host 'evil\.example:8443' is not in the"):
        HttpListingSource("web", f"{srv.base}/m.json", policy=policy()).list()
    # The manifest's own host too, before any request.
    with pytest.raises(SourceError, match="manifest host 'localhost:1'"):
        HttpListingSource("web", "http://localhost:1/m.json", policy=policy()).list()
    assert len(srv.seen) == 1


def test_http_manifest_status_error_hides_the_query(server: Callable[..., Server]) -> None:
    srv = server()
    url = f"{srv.base}/missing.json?sig={CANARY}"
    with pytest.raises(SourceError, match="HTTP 404") as info:
        HttpListingSource("web", url, policy=policy()).list()
    assert CANARY not in str(info.value) and CANARY not in repr(
        HttpListingSource("web", url, policy=policy())
    )


def test_http_fetch_checks_the_manifest_sha256(
    shards_server: tuple[Server, dict[str, bytes]], tmp_path: Path
) -> None:
    srv, _ = shards_server
    body = json.dumps([{"url": "/shards/a.parquet", "sha256": "0" * 64}]).encode()
    srv.routes["/m.json"] = Reply(200, body, {"Content-Type": "application/json"})
    source = HttpListingSource("web", f"{srv.base}/m.json", policy=policy())
    [listed] = source.list()
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="sha256 mismatch") as info:
        source.fetch(listed, cache)
    assert info.value.permanent
    assert not (cache / cache_name(listed)).exists()
    assert [p.name for p in cache.iterdir()] == []


def test_allowed_hosts_is_the_union_of_network_sources(tmp_path: Path) -> None:
    web = HttpListingSource("w", "https://data.example/m.json",
                            policy=policy(frozenset({"data.example", "cdn.example"})))
    hf = HuggingFaceSource("h", HubRepo("org/ds", extra_hosts=frozenset({"cdn-lfs.hf.co"})))
    local = LocalSource("l", str(tmp_path))
    objects = ObjectStoreSource("o", f"file://{tmp_path}")
    assert allowed_hosts([web, hf, local, objects]) == {
        "data.example", "cdn.example", "huggingface.co", "cdn-lfs.hf.co"
    }


# --- Hugging Face Hub -------------------------------------------------------------------------


@dataclass
class FakeHub:
    hub: Server
    cdn: Server
    files: dict[str, bytes]  # path in repo -> bytes
    tree_url: str


def make_hub(server: Callable[..., Server], tmp_path: Path) -> FakeHub:
    hub, cdn = server(), server("localhost")
    files = {
        "data/a.parquet": write_parquet(tmp_path / "hub" / "a.parquet", 40, 1),
        "data/sub/b part.parquet": write_parquet(tmp_path / "hub" / "b.parquet", 60, 2),
        "data/c.parquet": write_parquet(tmp_path / "hub" / "c.parquet", 5, 3),  # not LFS
    }

    def lfs(path: str) -> dict[str, Any]:
        body = files[path]
        return {"type": "file", "path": path, "size": 134, "oid": "f" * 40,
                "lfs": {"oid": sha(body), "size": len(body), "pointerSize": 134}}

    page1 = [{"type": "directory", "path": "data/sub", "oid": "d" * 40, "size": 0},
             lfs("data/a.parquet"),
             {"type": "file", "path": "data/README.md", "oid": "e" * 40, "size": 12}]
    page2 = [lfs("data/sub/b part.parquet"),
             {"type": "file", "path": "data/c.parquet", "oid": "c" * 40,
              "size": len(files["data/c.parquet"])}]
    first = "/api/datasets/org/ds/tree/main/data?recursive=true"
    hub.routes[first] = Reply(200, json.dumps(page1).encode(), {
        "Content-Type": "application/json",
        "Link": f'<{hub.base}{first}&cursor=abc>; rel="next"',
    })
    hub.routes[first + "&cursor=abc"] = Reply(200, json.dumps(page2).encode(),
                                              {"Content-Type": "application/json"})
    for path in ("data/a.parquet", "data/sub/b part.parquet"):
        blob = f"/xet/{sha(files[path])}?X-Amz-Signature=sig"
        cdn.routes[blob] = Reply(200, files[path])
        quoted = path.replace(" ", "%20")
        hub.routes[f"/datasets/org/ds/resolve/main/{quoted}"] = Reply(
            302, b"", {"Location": cdn.base + blob}
        )
    hub.routes["/datasets/org/ds/resolve/main/data/c.parquet"] = Reply(200, files["data/c.parquet"])
    return FakeHub(hub, cdn, files, hub.base + first)


TOKEN = SecretStr(CANARY)


def hf_source(
    hub: FakeHub,
    token: SecretStr | None = TOKEN,
    sleep: Callable[[float], None] = no_sleep,
    **policy_options: Any,
) -> HuggingFaceSource:
    """The fake Hub's `org/ds` under `data/`, with a policy of `policy_options`."""
    repo = HubRepo("org/ds", path="data", endpoint=hub.hub.base,
                   extra_hosts=frozenset({hub.cdn.base.split("/")[-1]}))
    options: dict[str, Any] = {"attempts": 2, "backoff": 0.0, **policy_options}
    policy = DownloadPolicy(allowed_hosts=repo.hosts, **options)
    return HuggingFaceSource("hf", repo, token=token, policy=policy, sleep=sleep)


def test_hf_lists_pages_and_fetches_through_the_cdn_without_the_token(
    server: Callable[..., Server], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = make_hub(server, tmp_path)
    source = hf_source(hub)
    assert source.hub.tree_url() == hub.tree_url
    shards = source.list()
    base = f"{hub.hub.base}/datasets/org/ds/resolve/main"
    assert [s.uri for s in shards] == [
        f"{base}/data/a.parquet", f"{base}/data/c.parquet", f"{base}/data/sub/b%20part.parquet"
    ]
    assert [s.name for s in shards] == ["a.parquet", "c.parquet", "b part.parquet"]
    a, c, b = shards
    assert (a.sha256, a.size, a.etag) == (sha(hub.files["data/a.parquet"]),
                                          len(hub.files["data/a.parquet"]), "f" * 40)
    assert (c.sha256, c.size, c.etag) == (None, len(hub.files["data/c.parquet"]), "c" * 40)

    cache = tmp_path / "cache"
    for s, path in ((a, "data/a.parquet"), (b, "data/sub/b part.parquet"),
                    (c, "data/c.parquet")):
        got = source.fetch(s, cache)
        assert got.path.parent == cache and got.path.read_bytes() == hub.files[path]
        assert got.sha256 == file_sha(got.path) == sha(hub.files[path])
        if s.sha256 is not None:
            assert got.sha256 == s.sha256  # the LFS oid

    bearer = f"Bearer {CANARY}"
    assert len(hub.hub.seen) == 5 and len(hub.cdn.seen) == 2  # 2 pages + 3 resolves; 2 blobs
    assert all(r.headers.get("authorization") == bearer for r in hub.hub.seen)
    assert all("authorization" not in r.headers for r in hub.cdn.seen)
    assert all(CANARY not in json.dumps(r.headers) for r in hub.cdn.seen)
    assert CANARY not in repr(source) and "**********" in repr(source)
    names = {r.name for r in caplog.records}
    assert {"shardwatch.acquire.hub", "urllib3.connectionpool"} <= names
    assert CANARY not in caplog.text
    assert all(CANARY not in str(r.args) for r in caplog.records)


def test_hf_without_token_sends_no_authorization(
    server: Callable[..., Server], tmp_path: Path
) -> None:
    hub = make_hub(server, tmp_path)
    source = hf_source(hub, token=None)
    [a, _, _] = source.list()
    source.fetch(a, tmp_path / "cache")
    assert all("authorization" not in r.headers for r in hub.hub.seen + hub.cdn.seen)


def test_hf_errors_never_show_the_token(
    server: Callable[..., Server], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = make_hub(server, tmp_path)
    first = "/api/datasets/org/ds/tree/main/data?recursive=true"
    errors: list[Exception] = []

    hub.hub.routes[first] = Reply(401, b'{"error": "Invalid credentials"}')
    with pytest.raises(SourceError, match=r"HTTP 401 .*private or gated") as info:
        hf_source(hub).list()
    errors.append(info.value)

    hub.hub.routes[first] = Reply(200, b"[{", {"Content-Type": "application/json"})
    with pytest.raises(SourceError, match="invalid JSON") as info:
        hf_source(hub).list()
    errors.append(info.value)

    hub.hub.routes[first] = Reply(200, b"[]", {"Link": '<http://localhost:9/steal>; rel="next"'})
    with pytest.raises(SourceError, match="next page on host 'localhost'") as info:
        hf_source(hub).list()
    errors.append(info.value)

    hub.hub.routes[first] = Reply(200, json.dumps(
        [{"type": "file", "path": "data/../../x.parquet", "size": 1}]).encode())
    with pytest.raises(SourceError, match="unsafe path") as info:
        hf_source(hub).list()
    errors.append(info.value)

    hub.hub.routes[first] = Reply(302, b"", {"Location": "http://169.254.169.254/latest"})
    refused = r"redirect to host 169\.254\.169\.254 is not allowed"
    with pytest.raises(SourceError, match=refused) as info:
        hf_source(hub).list()
    errors.append(info.value)

    hub.hub.routes[first] = Reply(503, b"busy", {"Retry-After": "0"})
    with pytest.raises(SourceError, match=r"HTTP 503 \(after 2 attempts\)") as info:
        hf_source(hub).list()
    errors.append(info.value)

    # A shard from elsewhere never gets the token.
    stray = RemoteShard("hf", f"{hub.cdn.base}/datasets/org/ds/resolve/main/x.parquet",
                        "x.parquet", None, None, None)
    with pytest.raises(SourceError, match="is not on") as info:
        hf_source(hub).fetch(stray, tmp_path / "cache")
    errors.append(info.value)

    assert all(CANARY not in str(e) and CANARY not in repr(e) for e in errors)
    assert CANARY not in caplog.text
    assert hub.cdn.seen == []


def test_hf_listing_retries_a_transient_error(
    server: Callable[..., Server], tmp_path: Path
) -> None:
    hub = make_hub(server, tmp_path)
    first = "/api/datasets/org/ds/tree/main/data?recursive=true"
    good = hub.hub.routes[first]
    assert isinstance(good, Reply)
    hub.hub.routes[first] = [Reply(429, b"slow down", {"Retry-After": "7"}), good]
    waits: list[float] = []
    shards = hf_source(hub, sleep=waits.append, backoff_cap=5.0).list()
    assert len(shards) == 3 and waits == [5.0]  # Retry-After, capped


def test_hf_listing_redirect_off_the_endpoint_drops_the_token(
    server: Callable[..., Server], tmp_path: Path
) -> None:
    hub = make_hub(server, tmp_path)
    first = "/api/datasets/org/ds/tree/main/data?recursive=true"
    page = [{"type": "file", "path": "data/a.parquet", "size": 3, "oid": "a" * 40}]
    hub.cdn.routes["/mirror/tree"] = Reply(200, json.dumps(page).encode())
    hub.hub.routes[first] = Reply(307, b"", {"Location": f"{hub.cdn.base}/mirror/tree"})
    [listed] = hf_source(hub).list()
    assert listed.uri == f"{hub.hub.base}/datasets/org/ds/resolve/main/data/a.parquet"
    assert [r.path for r in hub.cdn.seen] == ["/mirror/tree"]
    assert "authorization" not in hub.cdn.seen[0].headers
    assert hub.hub.seen[0].headers["authorization"] == f"Bearer {CANARY}"


def test_hf_urls_quote_revision_and_path_and_validate_repo() -> None:
    source = HubRepo("org/ds-1.0", revision="refs/convert/parquet", path="/default/train/")
    assert source.tree_url() == (
        "https://huggingface.co/api/datasets/org/ds-1.0/tree/refs%2Fconvert%2Fparquet/"
        "default/train?recursive=true"
    )
    assert source.resolve_url("default/train/0000 #?.parquet") == (
        "https://huggingface.co/datasets/org/ds-1.0/resolve/refs%2Fconvert%2Fparquet/"
        "default/train/0000%20%23%3F.parquet"
    )
    assert HubRepo("org/ds").tree_url().endswith("/tree/main?recursive=true")
    for repo in ("org", "org/ds/x", "../..", "org/..", "org/ds?x", "o rg/ds", ""):
        with pytest.raises(ValueError, match="repo"):
            HubRepo(repo)
    with pytest.raises(ValueError, match="path"):
        HubRepo("org/ds", path="a/../../b")
    with pytest.raises(ValueError, match="endpoint"):
        HubRepo("org/ds", endpoint="file:///etc")


# --- object store (file://) ------------------------------------------------------------------


def test_object_store_lists_recursively(tmp_path: Path) -> None:
    root = tmp_path / "bucket" / "laion"
    a = write_parquet(root / "a.parquet", 3)
    write_parquet(root / "part=1" / "b.parquet", 4)
    (root / "part=1" / "_SUCCESS").write_text("")
    source = ObjectStoreSource("obj", f"file://{root}")
    shards = source.list()
    assert [s.uri for s in shards] == [
        f"file://{root}/a.parquet", f"file://{root}/part=1/b.parquet"
    ]
    assert [s.name for s in shards] == ["a.parquet", "b.parquet"]
    assert shards[0].size == len(a) and shards[0].etag is None and shards[0].sha256 is None
    st = (root / "a.parquet").stat()
    mtime = shards[0].mtime
    assert mtime is not None and mtime.tzinfo == UTC
    assert abs(mtime.timestamp() - st.st_mtime_ns / 1e9) < 2e-6
    with pytest.raises(SourceError, match="cannot list"):
        ObjectStoreSource("obj", f"file://{tmp_path}/missing").list()


def test_object_store_fetch_caches_with_a_sidecar_and_reuses_it(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    data = write_parquet(root / "x" / "a.parquet", 200)
    source = ObjectStoreSource("obj", f"file://{root}")
    [listed] = source.list()
    cache = tmp_path / "cache"
    got = source.fetch(listed, cache)
    assert got.path == cache / cache_name(listed) and got.path.read_bytes() == data
    assert got.sha256 == sha(data) and got.size == len(data)
    sidecar = cache / (got.path.name + ".sha256")
    assert sidecar.read_text().strip() == sha(data)
    assert sorted(p.name for p in cache.iterdir()) == [got.path.name, sidecar.name]
    before = got.path.stat()

    (root / "x" / "a.parquet").unlink()  # a re-use must not read the source
    again = source.fetch(listed, cache)
    assert again == got
    after = got.path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)

    sidecar.write_text("not a hash\n")  # a broken sidecar: fetch again (source gone: error)
    with pytest.raises(SourceError, match="cannot read"):
        source.fetch(listed, cache)


def test_object_store_same_size_rewrite_is_fetched_again(tmp_path: Path) -> None:
    path = tmp_path / "bucket" / "a.parquet"
    path.parent.mkdir()
    path.write_bytes(b"A" * 1000)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    source = ObjectStoreSource("obj", f"file://{tmp_path / 'bucket'}")
    cache = tmp_path / "cache"
    first = source.fetch(source.list()[0], cache)
    path.write_bytes(b"B" * 1000)  # same size, new mtime
    second = source.fetch(source.list()[0], cache)
    assert first.sha256 == sha(b"A" * 1000) and second.sha256 == sha(b"B" * 1000)
    assert second.path.read_bytes() == b"B" * 1000


def test_object_store_size_mismatch_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "bucket" / "a.parquet"
    write_parquet(path, 10)
    source = ObjectStoreSource("obj", f"file://{tmp_path / 'bucket'}")
    [listed] = source.list()
    with path.open("ab") as fh:
        fh.write(b"grown")
    cache = tmp_path / "cache"
    with pytest.raises(SourceError, match="size mismatch"):
        source.fetch(listed, cache)
    path.write_bytes(b"tiny")
    with pytest.raises(SourceError, match="size mismatch: read 4 bytes"):
        source.fetch(listed, cache)
    assert list(cache.iterdir()) == []


def test_object_store_refuses_foreign_uris_and_bad_locations(tmp_path: Path) -> None:
    source = ObjectStoreSource("obj", f"file://{tmp_path}/bucket")
    for uri in ("file:///etc/passwd", f"file://{tmp_path}/bucket/../secret.parquet",
                f"s3://{tmp_path}/bucket/a.parquet"):
        with pytest.raises(SourceError, match="is not under"):
            source.fetch(RemoteShard("obj", uri, "a.parquet", 1, None, None), tmp_path / "c")
    for uri in ("s3://", "s3:///key", "ftp://host/x", "file://relative/dir", "bucket/prefix"):
        with pytest.raises(ValueError):
            ObjectStoreSource("obj", uri)
    assert repr(ObjectStoreSource("o", "s3://bucket/prefix", region="eu-west-1")) == (
        "ObjectStoreSource(name='o', uri='s3://bucket/prefix')"
    )
