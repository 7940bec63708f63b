"""Scenario 5, SSRF (docs/reliability.md): a shard server on loopback redirects to
127.0.0.1:5432 (PostgreSQL), to 169.254.169.254 (cloud metadata), to other loopback ports
(a canary TCP listener) under several spellings, and in loops. Every one is refused before
any connection, by origin (scheme, host and port), and by address when a name resolves to a
loopback or private address the sources are not on. The canary listener counts every
connection it accepts: it must count 0 at the end of each test."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import tagged_table
from support.reliability.leaks import Canaries, LeakWatch
from support.reliability.netfaults_server import CanaryListener, FaultServer

from shardwatch.acquire.download import download
from shardwatch.acquire.http import fetch_bytes
from shardwatch.acquire.http_listing import HttpListingSource
from shardwatch.acquire.policy import DownloadError, DownloadPolicy
from shardwatch.acquire.sources import SourceError
from shardwatch.pipeline.monitor import discover, process, start
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_proxy")]

S = "5 SSRF"
BODY = b"PAR1" + b"\x00" * 100 + b"PAR1"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    yield srv
    srv.close()


@pytest.fixture
def canary() -> Iterator[CanaryListener]:
    listener = CanaryListener()
    yield listener
    listener.close()



def policy(server: FaultServer, canaries: Canaries, **overrides: Any) -> DownloadPolicy:
    base: dict[str, Any] = {
        "allowed_hosts": frozenset({server.origin}),
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "attempts": 3,
        "backoff": 0.05,
        "headers": {"Authorization": f"Bearer {canaries.webhook}"},
    }
    return DownloadPolicy(**{**base, **overrides})


def targets(canary: CanaryListener) -> dict[str, tuple[str, str]]:
    """Redirect target -> the origin its refusal names."""
    q = canary.port
    return {
        "postgres": ("http://127.0.0.1:5432/", "127.0.0.1:5432"),
        "metadata": ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254"),
        "canary port": (f"http://127.0.0.1:{q}/x", f"127.0.0.1:{q}"),
        "canary by name": (f"http://localhost:{q}/x", f"localhost:{q}"),
        "canary over https": (f"https://127.0.0.1:{q}/x", f"127.0.0.1:{q}"),
        "canary, short IPv4": (f"http://127.1:{q}/x", f"127.1:{q}"),
        "canary, decimal IPv4": (f"http://2130706433:{q}/x", f"2130706433:{q}"),
        "canary, 0.0.0.0": (f"http://0.0.0.0:{q}/x", f"0.0.0.0:{q}"),
        "canary, IPv6 loopback": (f"http://[::1]:{q}/x", f"[::1]:{q}"),
        "canary, IPv4-mapped IPv6": (f"http://[::ffff:127.0.0.1]:{q}/x", f"[::ffff:127.0.0.1]:{q}"),
        "canary, credentials": (f"http://user:pw@127.0.0.1:{q}/x", f"127.0.0.1:{q}"),
    }


def test_redirects_off_the_allowed_origin_are_refused_before_connecting(
    server: FaultServer,
    canary: CanaryListener,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    slowest = 0.0
    for i, (label, (location, origin)) in enumerate(targets(canary).items()):
        url = server.add(f"/r{i}.parquet", BODY, f"redirect:{location}")
        dest = tmp_path / f"r{i}.parquet"
        for call in ("download", "fetch_bytes"):
            started = time.monotonic()
            with pytest.raises(DownloadError) as info:
                if call == "download":
                    download(url, dest, policy=policy(server, canaries))
                else:
                    fetch_bytes(url, policy=policy(server, canaries))
            slowest = max(slowest, time.monotonic() - started)
            assert info.value.permanent, (label, info.value)
            assert info.value.reason == f"redirect to host {origin} is not allowed", label
            errors.append(f"{info.value!s} {info.value!r}")
        assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()
    assert canary.accepted == 0  # not one connection reached the canary listener
    assert len(server.hits) == 2 * len(targets(canary))  # one request each: no retry
    figure(S, "redirect targets refused (x2: shard and manifest fetch)", len(targets(canary)))
    figure(S, "canary listener connections", canary.accepted)
    figure(S, "slowest refusal (seconds)", round(slowest, 3))
    leaks.texts("ssrf errors", errors)
    leaks.text("ssrf log", caplog.text)


def test_redirect_loops_are_refused_and_named(
    server: FaultServer, canaries: Canaries, leaks: LeakWatch, tmp_path: Path
) -> None:
    a, b = server.url("/a"), server.url("/b")
    server.add("/a", BODY, f"redirect:{b}")
    server.add("/b", BODY, f"redirect:{a}?again")  # not the same URL: a longer loop
    server.add("/self", BODY, "redirect:/self")
    with pytest.raises(DownloadError) as loop:
        download(server.url("/self"), tmp_path / "x", policy=policy(server, canaries))
    assert loop.value.permanent
    assert loop.value.reason == f"redirect loop: {server.url('/self')} -> {server.url('/self')}"
    with pytest.raises(DownloadError) as bounded:
        download(a, tmp_path / "y", policy=policy(server, canaries))
    assert bounded.value.permanent
    # a -> b -> a?again -> b: b is seen twice (the query does not hide a loop of paths only
    # when the URL differs; then the hop bound ends it)
    assert bounded.value.reason.startswith("redirect loop: ")
    for n in range(1, 8):
        server.add(f"/chain{n}", BODY, f"redirect:/chain{n + 1}")
    with pytest.raises(DownloadError) as chain:
        download(server.url("/chain1"), tmp_path / "z", policy=policy(server, canaries))
    assert chain.value.reason == "more than 5 redirects"
    assert server.count("/chain6") == 1 and server.count("/chain7") == 0
    assert list(tmp_path.iterdir()) == []
    leaks.text("loop errors", f"{loop.value} {bounded.value} {chain.value}")


def test_names_resolving_to_internal_addresses_are_refused(
    server: FaultServer,
    canary: CanaryListener,
    canaries: Canaries,
    leaks: LeakWatch,
    tmp_path: Path,
) -> None:
    """A name on the allow-list that resolves to loopback (as a rebound public name would)
    is refused at connect time unless the sources are on internal addresses; link-local
    (cloud metadata) is refused even when listed."""
    on_public = policy(
        server, canaries, allowed_hosts=frozenset({f"localhost:{canary.port}"}), allow_private=False
    )
    with pytest.raises(DownloadError) as rebound:
        download(f"http://localhost:{canary.port}/x", tmp_path / "x", policy=on_public)
    assert rebound.value.permanent
    assert rebound.value.reason.startswith("connection to localhost (")
    assert "a loopback or private address" in rebound.value.reason
    metadata = policy(server, canaries, allowed_hosts=frozenset({"169.254.169.254"}))
    started = time.monotonic()
    with pytest.raises(DownloadError) as meta:
        download("http://169.254.169.254/latest/meta-data/", tmp_path / "m", policy=metadata)
    assert time.monotonic() - started < 0.5  # refused, not a connect timeout
    assert meta.value.permanent and "a link-local address (cloud metadata)" in meta.value.reason
    # the default: the allow-list names a loopback origin, so loopback is allowed on it
    assert policy(server, canaries).private_ok() and not on_public.private_ok()
    assert DownloadPolicy(allowed_hosts=frozenset({"data.example.org"})).private_ok() is False
    assert canary.accepted == 0
    leaks.text("address errors", f"{rebound.value} {meta.value}")


def test_manifest_entries_and_monitor_refuse_other_origins(
    server: FaultServer,
    canary: CanaryListener,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    postgres_server: Any,
    fresh_postgres_database: str,
) -> None:
    """Through the source and the monitor: a manifest on 127.0.0.1:P allows only that
    origin; an entry on :5432 is refused by name, and shards redirecting to the database or
    the canary are quarantined with the refused origin while the good shard is done."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    evil = [{"url": "http://127.0.0.1:5432/x.parquet"}]
    server.add("/evil.json", json.dumps(evil).encode())
    source = HttpListingSource(
        "web",
        server.url("/evil.json"),
        policy=policy(server, canaries, allowed_hosts=frozenset({server.origin})),
    )
    with pytest.raises(SourceError) as listed:
        source.list()
    assert "entry 0: host '127.0.0.1:5432' is not in the allowed hosts" in str(listed.value)

    sink = pa.BufferOutputStream()
    pq.write_table(tagged_table(50, 1, seed=5), sink)
    good = bytes(sink.getvalue().to_pybytes())
    files = {"good": good, "to-postgres": good + b"1", "to-canary": good + b"2"}
    server.add("/d/good.parquet", good)
    server.add("/d/to-postgres.parquet", b"", "redirect:http://127.0.0.1:5432/")
    server.add("/d/to-canary.parquet", b"", f"redirect:http://127.0.0.1:{canary.port}/")
    manifest = [
        {"url": f"{n}.parquet", "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        for n, b in files.items()
    ]
    server.add("/d/manifest.json", json.dumps(manifest).encode())
    db = canaries.postgres_url(postgres_server.url(fresh_postgres_database))
    cfg = tmp_path / "etc" / "shardwatch.toml"  # the input: it holds the canaries
    cfg.parent.mkdir()
    cfg.write_text(f"""
dataset = "ssrf"
database_url = "{db}"
state_dir = "{tmp_path / '.shardwatch'}"
[validation]
enabled = false
[alerts]
enabled = false
[download]
attempts = 2
backoff = 0.05
[sources.web]
type = "http"
manifest = "{server.url("/d/manifest.json")}?sig={canaries.webhook}"
""")
    settings = load_settings(cfg)
    res = Resources(settings)
    run_id = start(res)
    outcomes = {
        o.uri.rsplit("/", 1)[1]: o
        for o in (process(res, s, run_id) for s in discover(res).new)
    }
    assert outcomes["good.parquet"].outcome == "done"
    for name, origin in (
        ("to-postgres", "127.0.0.1:5432"),
        ("to-canary", f"127.0.0.1:{canary.port}"),
    ):
        o = outcomes[f"{name}.parquet"]
        assert o.outcome == "quarantined"
        assert o.reason == f"download refused: redirect to host {origin} is not allowed"
    assert discover(res).new == ()  # refused for good while the listing is unchanged
    assert canary.accepted == 0
    figure(S, "canary listener connections after the monitor pass", canary.accepted)
    leaks.text("ssrf source error", str(listed.value))
    leaks.texts("ssrf outcomes", [f"{o.uri} {o.reason}" for o in outcomes.values()])
    leaks.text("ssrf monitor log", caplog.text)
    leaks.tree("ssrf cache", tmp_path / ".shardwatch")
    leaks.database("ssrf store", db.replace("postgresql://", "postgresql+psycopg2://", 1))
