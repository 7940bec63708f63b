"""Scenario 16, no splicing and no missed same-size change (issue 17, items 2 and 9;
docs/reliability.md).

A pass is cut off mid-body, leaving a partial download of file A; the server's file then
becomes B, of the same size, with a new validator. The next download (a new call with only
what is on disk, as a new pass or a Prefect retry of the fetch task has) must end with
exactly B's bytes: it resumes only under `If-Range` with the validator persisted beside the
partial file, and discards a 206 that carries another validator. Without any validator it
starts from zero (no Range). The server is honest (answers a stale If-Range with the whole
file) or naive (serves the Range regardless, the splicing attacker). A meta file that is
garbage is no validator.

Through the monitor: a manifest giving `size` but no `sha256`; the same-size change is
found by one conditional request with the validator recorded at the last fetch, and becomes
a new version; an unchanged pass costs one 304 per such shard. Shard URLs are signed (a
canary in the query): the persisted meta keeps a hash of the URL, never the URL."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from support.builders import tagged_table
from support.reliability.leaks import Canaries, LeakWatch
from support.reliability.versioned_server import VersionedServer
from support.store_checks import SUITES

from shardwatch.acquire.download import download
from shardwatch.acquire.policy import DownloadError, DownloadPolicy
from shardwatch.pipeline.monitor import discover, process, start
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import load_settings
from shardwatch.store.database import make_engine

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_proxy")]

S = "11 no splicing"
SIZE = 300_000
A = random.Random(1).randbytes(SIZE)
B = random.Random(2).randbytes(SIZE)
PATH = "/data/shard.parquet"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



@pytest.fixture
def servers() -> Iterator[list[VersionedServer]]:
    made: list[VersionedServer] = []
    yield made
    for srv in made:
        srv.close()


def policy(srv: VersionedServer, attempts: int) -> DownloadPolicy:
    return DownloadPolicy(
        allowed_hosts=frozenset({srv.origin}),
        connect_timeout=1.0,
        read_timeout=1.0,
        attempts=attempts,
        backoff=0.01,
        backoff_cap=0.05,
    )


def cut_pass(srv: VersionedServer, dest: Path, url: str) -> Path:
    """The first pass: A is cut off half-way; its partial download stays behind."""
    srv.put(PATH, A)
    srv.cut(PATH, SIZE // 2)
    with pytest.raises(DownloadError):
        download(url, dest, policy=policy(srv, 1), expected_size=SIZE)
    part = dest.with_name(dest.name + ".part")
    assert part.stat().st_size == SIZE // 2 and part.read_bytes() == A[: SIZE // 2]
    return part


@pytest.mark.parametrize("naive", [False, True], ids=["honest", "naive"])
@pytest.mark.parametrize("validators", ["etag", "last-modified", "none"])
def test_a_resume_never_splices_two_versions(
    servers: list[VersionedServer],
    figure: Any,
    canaries: Canaries,
    leaks: LeakWatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    validators: Any,
    naive: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    srv = VersionedServer(validators, naive)
    servers.append(srv)
    dest = tmp_path / "cache" / "shard.parquet"
    url = srv.url(PATH) + f"?sig={canaries.webhook}"  # a signed URL
    cut_pass(srv, dest, url)
    leaks.tree("partial download and its meta", dest.parent)
    srv.put(PATH, B)  # same size, new validator

    got = download(url, dest, policy=policy(srv, 3), expected_size=SIZE)
    leaks.text("download log", caplog.text)

    assert got.sha256 == sha(dest.read_bytes()) == sha(B)  # B exactly: never A's head + B's tail
    later = srv.of(PATH)[1:]
    if validators == "none":  # nothing to prove the part is B's: from zero
        assert [h.headers.get("range") for h in later] == [None]
        assert not got.resumed
    else:
        first = later[0]
        assert first.headers["range"] == f"bytes={SIZE // 2}-"
        stale = (
            '"v1"'
            if validators == "etag"
            else srv.validator(dataclasses.replace(srv.files[PATH], version=1))["Last-Modified"]
        )
        assert first.headers["if-range"] == stale  # A's validator, read back from disk
        assert [h.status for h in later] == ([206, 200] if naive else [200])
    assert sorted(p.name for p in dest.parent.iterdir()) == ["shard.parquet"]
    mode = "naive" if naive else "honest"
    figure(S, f"requests after the change ({validators}, {mode} server)", len(later))
    figure(S, f"sha256 equals B ({validators}, {mode} server)", got.sha256 == sha(B))


@pytest.mark.parametrize(
    "meta",
    [b"", b"{", b"[" * 5000, b"x" * 10_000, b'{"version": 1, "url": 1}', "ünï".encode()],
    ids=["empty", "truncated", "deep", "large", "wrong-type", "not-json"],
)
def test_a_garbage_meta_file_is_no_validator(
    servers: list[VersionedServer], leaks: LeakWatch, tmp_path: Path, meta: bytes
) -> None:
    srv = VersionedServer("etag", naive=True)
    servers.append(srv)
    dest = tmp_path / "cache" / "shard.parquet"
    part = cut_pass(srv, dest, srv.url(PATH))
    part.with_name(part.name + ".meta").write_bytes(meta)
    srv.put(PATH, B)

    got = download(srv.url(PATH), dest, policy=policy(srv, 2), expected_size=SIZE)

    assert got.sha256 == sha(B) and "range" not in srv.of(PATH)[-1].headers
    leaks.tree("cache after a garbage meta", dest.parent)


def same_size_pair() -> tuple[bytes, bytes]:
    """Two parquet shards of exactly the same size and different rows."""
    first = tagged_table(300, 4, seed=71)
    texts = [t.replace("tree", "bush") for t in first.column("TEXT").to_pylist()]
    index = first.schema.get_field_index("TEXT")
    second = first.set_column(index, first.schema.field(index), pa.array(texts))
    out = []
    for table in (first, second):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="none")
        out.append(bytes(sink.getvalue().to_pybytes()))
    assert len(out[0]) == len(out[1]) and out[0] != out[1]
    return out[0], out[1]


@pytest.mark.parametrize("validators", ["etag", "last-modified"])
def test_a_same_size_change_is_a_new_version(
    servers: list[VersionedServer],
    figure: Any,
    canaries: Canaries,
    leaks: LeakWatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    validators: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    first, second = same_size_pair()
    srv = VersionedServer(validators)
    servers.append(srv)
    srv.put(PATH, first)
    manifest = [{"url": "shard.parquet", "size": len(first)}]  # size, no sha256, no etag
    srv.put("/data/manifest.json", json.dumps(manifest).encode())
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "changes"
database_url = "{db}"
state_dir = "{tmp_path / ".shardwatch"}"
[validation]
suites_dir = "{SUITES}"
[alerts]
enabled = false
[download]
attempts = 2
backoff = 0.05
connect_timeout = 1
read_timeout = 1
[sources.web]
type = "http"
manifest = "{srv.url("/data/manifest.json")}?sig={canaries.webhook}"
""")
    settings = load_settings(cfg)
    res = Resources(settings)

    def one_pass() -> tuple[int, list[str], int]:
        before = len(srv.of(PATH))
        run = start(res)
        found = discover(res)
        outcomes: list[str] = [process(res, s, run).outcome for s in found.new]
        return found.unchanged, outcomes, len(srv.of(PATH)) - before

    assert one_pass() == (0, ["done"], 1)
    srv.put(PATH, second)  # same size, new ETag / Last-Modified
    changed = one_pass()
    quiet = one_pass()

    assert changed[:2] == (0, ["done"])  # the change was seen and fetched
    assert quiet == (1, [], 1)  # unchanged: one conditional request...
    assert srv.of(PATH)[-1].status == 304  # ...answered 304, no body
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT version, content_sha256 FROM shards ORDER BY version")
            ).all()
    finally:
        engine.dispose()
    assert [(v, s) for v, s in rows] == [(1, sha(first)), (2, sha(second))]
    leaks.tree("store and state", tmp_path / ".shardwatch")
    leaks.tree("store", tmp_path / "store.sqlite")
    leaks.text("monitor log", caplog.text)
    figure(S, f"same-size change ({validators}): versions stored", len(rows))
    figure(S, f"requests for an unchanged size-only shard ({validators})", quiet[2])
