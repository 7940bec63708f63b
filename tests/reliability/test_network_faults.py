"""Scenario 4, network faults on downloads (docs/reliability.md): a slow drip (body and
headers), a hang (before the headers and mid-body), a reset mid-body, a Content-Length
shorter and longer than the body, 503 + Retry-After and a gzip bomb in Content-Encoding, all
from a real HTTP server on loopback (tests/support/reliability/netfaults_server.py).

Each fault gives up within bounded attempts and seconds (reported per fault), never leaves a
file at the shard's path that was not verified, and through the monitor's stages the faulty
shards end `failed` (retried next pass) or `quarantined` with their reason while the good
shards among them are done; nothing half-downloaded is scanned or validated. The source's
signed manifest URL, an Authorization header and the database password are canaries."""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from support.builders import tagged_table
from support.reliability.leaks import Canaries, LeakWatch
from support.reliability.netfaults_server import GZIP_BOMB_SIZE, FaultServer, gzip_bomb
from support.store_checks import SUITES, shards

from shardwatch.acquire.download import download
from shardwatch.acquire.footer import FooterLimits, ShardRejected, check_footer
from shardwatch.acquire.http import fetch_bytes
from shardwatch.acquire.policy import DownloadError, DownloadPolicy
from shardwatch.pipeline.monitor import discover, process, start
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import load_settings
from shardwatch.store.database import make_engine

S = "4 network faults"


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


SHARD = parquet_bytes(tagged_table(200, 3, seed=41))
SHA = hashlib.sha256(SHARD).hexdigest()
BOMB = gzip_bomb()  # built once, before any server serves it (it takes ~0.5 s)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    yield srv
    srv.close()


# every test here talks to loopback servers directly (each test marks its own kind)
pytestmark = pytest.mark.usefixtures("no_proxy")


def policy(server: FaultServer, canaries: Canaries, **overrides: Any) -> DownloadPolicy:
    """Short timeouts for CI: read 0.5 s, at least 1 KiB/s over 1 s, 3 attempts."""
    base: dict[str, Any] = {
        "allowed_hosts": frozenset({server.origin}),
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
        "min_speed": 1024,
        "speed_window": 1.0,
        "attempts": 3,
        "backoff": 0.05,
        "backoff_cap": 1.0,
        "headers": {"Authorization": f"Bearer {canaries.webhook}"},
    }
    return DownloadPolicy(**{**base, **overrides})


class Sleeps(list[float]):
    """Records each wait and really sleeps it (the time to give up includes the waits)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


# (mode, permanent, reason fragment, requests made)
FAULTS = [
    ("drip", False, "too slow", 3),
    ("drip-headers", False, "too slow", 3),
    ("hang", False, "timed out", 3),
    ("hang-body", False, "timed out while reading", 3),
    ("reset", False, "body truncated", 3),
    ("short", False, "body truncated", 3),
    ("503:0.3", False, "HTTP 503", 3),
    ("503:3600", False, "HTTP 503", 3),  # Retry-After capped at backoff_cap (1 s)
    ("gzip-bomb", True, "refused Content-Encoding 'gzip'", 1),
]


@pytest.mark.integration
@pytest.mark.parametrize(("mode", "permanent", "reason", "requests"), FAULTS)
def test_each_fault_gives_up_bounded_and_leaves_no_shard(
    server: FaultServer,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    permanent: bool,
    reason: str,
    requests: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = server.add("/shard.parquet", SHARD, mode) + f"?sig={canaries.webhook}"
    dest = tmp_path / "cache" / "shard.parquet"
    sleeps = Sleeps()

    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(url, dest, policy=policy(server, canaries), sleep=sleeps)
    seconds = time.monotonic() - started

    assert info.value.permanent is permanent
    assert reason in info.value.reason, info.value.reason
    assert server.count("/shard.parquet") == requests  # bounded: `attempts`, or 1 if permanent
    assert not dest.exists()  # nothing unverified ever sits at the shard's path
    part = dest.with_name(dest.name + ".part")
    assert not part.exists() or part.stat().st_size <= len(SHARD)  # what arrived, to resume
    assert seconds < 15  # generous: 3 attempts of ~1.5 s plus capped waits
    if mode.startswith("503"):
        assert sleeps == [0.3, 0.3] if mode == "503:0.3" else sleeps == [1.0, 1.0]
    if mode == "reset":  # every retry resumed what had arrived, with Range
        assert [h.range is not None for h in server.hits] == [False, True, True]
    if mode == "gzip-bomb":  # refused before its body was read: nothing was decoded
        assert not part.exists()
        assert server.hits[0].accept_encoding == "identity"
    figure(
        S, f"seconds to give up (read 0.5 s, 1 KiB/s over 1 s, 3 tries): {mode}", round(seconds, 2)
    )
    figure(S, f"attempts: {mode}", server.count("/shard.parquet"))
    leaks.text(f"error ({mode})", f"{info.value!s} {info.value!r} {info.value.reason}")
    leaks.text(f"log ({mode})", caplog.text)
    leaks.tree(f"cache ({mode})", tmp_path)


@pytest.mark.integration
def test_gzip_bomb_is_never_inflated(
    server: FaultServer, canaries: Canaries, leaks: LeakWatch, figure: Any, tmp_path: Path
) -> None:
    """The bomb refused by download() and by fetch_bytes() (manifests): the bytes written and
    the memory grown stay far below what it would inflate to."""
    url = server.add("/bomb.parquet", SHARD, "gzip-bomb")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with pytest.raises(DownloadError) as shard_error:
        download(url, tmp_path / "bomb.parquet", policy=policy(server, canaries))
    with pytest.raises(DownloadError) as manifest_error:
        fetch_bytes(url, policy=policy(server, canaries))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before

    for error in (shard_error.value, manifest_error.value):
        assert error.permanent and "refused Content-Encoding 'gzip'" in error.reason
    written = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert written == 0
    assert grown < GZIP_BOMB_SIZE // 4  # peak RSS: nowhere near the 256 MiB it inflates to
    figure(S, "gzip bomb: compressed bytes sent", len(BOMB))
    figure(S, "gzip bomb: bytes it inflates to", GZIP_BOMB_SIZE)
    figure(S, "gzip bomb: bytes written / decoded", written)
    figure(S, "gzip bomb: peak RSS growth (MiB)", round(grown / 2**20, 1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figure(S, "gzip bomb: peak RSS of the test process so far (MiB)", round(peak, 1))
    leaks.text("gzip errors", f"{shard_error.value} {manifest_error.value}")


@pytest.mark.integration
def test_wrong_content_length_is_never_a_complete_shard(
    server: FaultServer, canaries: Canaries, leaks: LeakWatch, tmp_path: Path
) -> None:
    """Longer body than declared: with the listed size it is refused at once; without a size
    or checksum the declared prefix is all HTTP can tell, and the footer check refuses it
    before anything is decoded. Shorter body than declared: refused at once against the
    listed size; without one it is a truncated body, retried (test above), never renamed."""
    long_url = server.add("/long.parquet", SHARD, "long")
    with pytest.raises(DownloadError) as info:
        download(
            long_url,
            tmp_path / "a" / "long.parquet",
            policy=policy(server, canaries),
            expected_size=len(SHARD),
            expected_sha256=SHA,
        )
    assert info.value.permanent
    assert info.value.reason == f"declares {len(SHARD) - 1000:,} bytes, expected {len(SHARD):,}"
    assert list((tmp_path / "a").iterdir()) == []

    prefix = download(long_url, tmp_path / "b" / "long.parquet", policy=policy(server, canaries))
    assert prefix.size == len(SHARD) - 1000 and prefix.sha256 != SHA
    with pytest.raises(ShardRejected):
        check_footer(prefix.path, FooterLimits())

    short_url = server.add("/short.parquet", SHARD, "short")
    with pytest.raises(DownloadError) as short:
        download(
            short_url,
            tmp_path / "c" / "short.parquet",
            policy=policy(server, canaries),
            expected_size=len(SHARD),
            expected_sha256=SHA,
        )
    assert short.value.permanent
    assert short.value.reason == f"declares {len(SHARD) + 1000:,} bytes, expected {len(SHARD):,}"
    assert server.count("/short.parquet") == 1 and list((tmp_path / "c").iterdir()) == []
    leaks.text("wrong length errors", f"{info.value} {short.value}")
    leaks.tree("wrong length cache", tmp_path)


@pytest.mark.integration
def test_retry_after_is_honoured(
    server: FaultServer, canaries: Canaries, leaks: LeakWatch, figure: Any, tmp_path: Path
) -> None:
    url = server.add("/busy.parquet", SHARD, "503-once:1")
    sleeps = Sleeps()
    got = download(url, tmp_path / "busy.parquet", policy=policy(server, canaries), sleep=sleeps)
    first, second = server.hits
    assert got.sha256 == SHA and sleeps == [1.0]
    assert second.at - first.at >= 0.95  # waited as asked before asking again
    figure(S, "503 + Retry-After: 1 -> seconds until the retry", round(second.at - first.at, 2))
    leaks.tree("retry-after cache", tmp_path)


@pytest.mark.unit
def test_default_policy_bounds(figure: Any) -> None:
    """The worst case with the shipped defaults, from the policy itself: every attempt is cut
    by the read timeout (a hang) or the speed window (a drip; +1 s watchdog tick), plus the
    capped backoff between attempts."""
    p = DownloadPolicy(allowed_hosts=frozenset())
    waits = sum(p.delay(i) for i in range(1, p.attempts))
    hang = p.attempts * (p.connect_timeout + p.read_timeout) + waits
    drip = p.attempts * (p.speed_window + 1.0) + waits
    assert p.min_speed > 0 and p.speed_window > 0 and p.attempts <= 20
    figure(S, "default policy: at most seconds to give up on a hang", hang)
    figure(S, "default policy: at most seconds to give up on a drip", drip)
    figure(S, "default policy: attempts per download (x3 with the flow's task retries)", p.attempts)


# --------------------------------------------------------------- through the monitor path
GOOD = ("a", "b", "c")
FAULTY = {
    "d": ("drip", "failed", "download failed: too slow"),
    "e": ("gzip-bomb", "quarantined", "download refused: refused Content-Encoding 'gzip'"),
    "f": ("long", "quarantined", "download refused: declares"),
    "g": ("reset", "failed", "download failed: body truncated"),
    "h": ("hang", "failed", "download failed: timed out"),
}


@pytest.mark.integration
def test_faulty_shards_among_good_ones_through_the_monitor(
    server: FaultServer,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Any,
    postgres_server: Any,
    fresh_postgres_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    files = {
        name: parquet_bytes(tagged_table(120 + i, i, seed=60 + i))
        for i, name in enumerate((*GOOD, *FAULTY))
    }
    for name, body in files.items():
        server.add(f"/data/{name}.parquet", body, FAULTY.get(name, ("ok",))[0])
    manifest = [
        {"url": f"{name}.parquet", "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        for name, b in files.items()
    ]
    server.add("/data/manifest.json", json.dumps(manifest).encode())
    db = canaries.postgres_url(postgres_server.url(fresh_postgres_database))
    cfg = tmp_path / "etc" / "shardwatch.toml"  # the input: it holds the canaries
    cfg.parent.mkdir()
    cfg.write_text(f"""
dataset = "faults"
database_url = "{db}"
state_dir = "{tmp_path / '.shardwatch'}"
[validation]
suites_dir = "{SUITES}"
[alerts]
enabled = false
[download]
attempts = 2
backoff = 0.05
backoff_cap = 1
connect_timeout = 0.5
read_timeout = 0.5
speed_window = 1
[sources.web]
type = "http"
manifest = "{server.url("/data/manifest.json")}?sig={canaries.webhook}"
""")
    settings = load_settings(cfg)
    res = Resources(settings)

    started = time.monotonic()
    run_id = start(res)
    found = discover(res)
    passed = [process(res, s, run_id) for s in found.new]
    outcomes = {o.uri.rsplit("/", 1)[1][0]: o for o in passed}
    seconds = time.monotonic() - started

    assert found.errors == ()
    for name in GOOD:
        assert outcomes[name].outcome == "done", outcomes[name]
    for name, (_, status, reason) in FAULTY.items():
        assert outcomes[name].outcome == status, outcomes[name]
        assert (outcomes[name].reason or "").startswith(reason), outcomes[name].reason
    engine = make_engine(db)
    try:
        rows = {s["uri"].rsplit("/", 1)[1][0]: s for s in shards(engine)}
        with engine.connect() as conn:
            metrics = {r[0] for r in conn.execute(text("SELECT shard_id FROM shard_metrics"))}
            checked = {r[0] for r in conn.execute(text("SELECT shard_id FROM validation_results"))}
        done_ids = {rows[n]["id"] for n in GOOD}
        assert metrics == done_ids and checked == done_ids  # nothing else scanned or validated
        assert {n: rows[n]["status"] for n in FAULTY} == {n: f[1] for n, f in FAULTY.items()}
        assert not [
            p
            for p in (tmp_path / ".shardwatch" / "cache").glob("*")
            if not p.name.endswith((".part", ".part.meta"))  # a partial file and its validator
        ]

        # the next pass: the servers behave again; failed shards are retried (the reset one
        # resumes its part), refused ones stay quarantined until their listing changes
        for name in FAULTY:
            server.modes[f"/data/{name}.parquet"] = "ok"
        again = discover(res)
        retried = {s.uri.rsplit("/", 1)[1][0] for s in again.new}
        assert retried == {n for n, f in FAULTY.items() if f[1] == "failed"}
        second_run = start(res)
        assert all(process(res, s, second_run).outcome == "done" for s in again.new)
        resumed = [h for h in server.hits if h.path == "/data/g.parquet" and h.range]
        assert resumed  # the reset shard continued from its verified-on-completion part
    finally:
        engine.dispose()
    figure(S, "monitor pass with 5 faulty of 8 shards (seconds)", round(seconds, 1))
    reasons = "\n".join(f"{o.uri} {o.outcome} {o.reason}" for o in outcomes.values())
    leaks.text("monitor outcomes", reasons)
    leaks.text("monitor log", caplog.text)
    leaks.tree("monitor cache, GX and docs", tmp_path / ".shardwatch")
    # (leaks.database's plain create_engine would pick psycopg 3, which is not installed)
    leaks.database("monitor store", db.replace("postgresql://", "postgresql+psycopg2://", 1))
