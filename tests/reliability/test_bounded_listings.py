"""Scenario 12: listings a hostile server wrote are bounded; one bad source never stops a
pass; a run row never stays `running` once its process has ended.

Loopback servers only. The attacks: a 400 KB manifest of 200,000 nested brackets (it raised
RecursionError and stopped the whole pass), a manifest over the byte limit, one with more
values than allowed (JSON and text), a Hub endpoint that offers a new `next` page forever
(it grew a run to 3 GB), and a process killed (SIGKILL) or interrupted (SIGINT) in the
middle of `shardwatch ingest`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from support.reliability.leaks import Canaries, LeakWatch
from support.reliability.netfaults_server import FaultServer
from support.store_checks import subprocess_env, write_shards

from shardwatch.acquire.http_listing import HttpListingSource
from shardwatch.acquire.hub import HubRepo, HuggingFaceSource
from shardwatch.acquire.policy import DownloadPolicy
from shardwatch.acquire.sources import SourceError
from shardwatch.core.bounded_json import ListingLimits
from shardwatch.pipeline.monitor import discover, finish, process, start
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import load_settings
from shardwatch.store.database import make_engine, upgrade

pytestmark = pytest.mark.integration

S = "bounded listings"
Figure = Callable[[str, str, object], None]
NESTED = b"[" * 200_000 + b"]" * 200_000


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class EndlessHub:
    """A Hub tree endpoint whose every page links to a new next page (a tiny JSON list)."""

    def __init__(self) -> None:
        self.pages = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub.pages += 1
                body = json.dumps([{"type": "file", "path": f"p{hub.pages}.txt"}]).encode()
                nxt = f"http://127.0.0.1:{hub.port}/api/next?cursor={hub.pages}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Link", f'<{nxt}>; rel="next"')
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    yield srv
    srv.close()


@pytest.fixture
def hub() -> Iterator[EndlessHub]:
    h = EndlessHub()
    yield h
    h.close()


def _source(server: FaultServer, path: str, limits: ListingLimits) -> HttpListingSource:
    policy = DownloadPolicy(allowed_hosts=frozenset({server.origin}), attempts=1)
    return HttpListingSource("web", server.url(path), policy=policy, listing=limits)


@pytest.mark.parametrize(
    ("name", "body", "limits", "reason"),
    [
        ("nested", NESTED, ListingLimits(), "refused: nested 200,000 levels deep"),
        # 200,000 escaped quotes and no closing one: one regular expression for strings with
        # escapes backtracks quadratically on it (about 10 minutes); the scan stays linear.
        ("escapes", b'["' + b'\\"' * 200_000, ListingLimits(), "invalid JSON at line 1"),
        ("bytes", b"[" + b'"a",' * 5_000_000 + b'"a"]', ListingLimits(), "limit of 16,777,216"),
        (
            "values",
            b"[" + b"{}," * 2_000_000 + b"{}]",
            ListingLimits(max_bytes=64 * 1024**2),
            # one "[", 2,000,001 "{" and 2,000,000 ","
            "4,000,002 values or more, above the limit of 1,000,000",
        ),
        (
            "lines",
            b"\n".join(b"http://x/%d.parquet" % i for i in range(2_001)),
            ListingLimits(max_entries=2_000),
            "lists 2,001 URLs, above the limit of 2,000",
        ),
    ],
)
def test_a_hostile_manifest_is_a_source_error_naming_the_limit(
    server: FaultServer,
    name: str,
    body: bytes,
    limits: ListingLimits,
    reason: str,
    figure: Figure,
) -> None:
    server.add("/m.json" if name != "lines" else "/m.txt", body)
    source = _source(server, "/m.json" if name != "lines" else "/m.txt", limits)
    started = time.perf_counter()
    with pytest.raises(SourceError) as refused:
        source.list()
    figure(
        S,
        f"manifest '{name}' ({len(body):,} bytes): seconds to refuse",
        round(time.perf_counter() - started, 3),
    )
    assert reason in refused.value.reason
    assert str(refused.value).startswith("source 'web': manifest ")


def test_a_deep_but_allowed_manifest_still_parses(server: FaultServer) -> None:
    """The limit is a limit: 60 levels (under 64) of lists around one entry still parse
    (and fail as a manifest, not as JSON)."""
    server.add("/m.json", b"[" * 60 + b"]" * 60)
    with pytest.raises(SourceError) as bad:
        _source(server, "/m.json", ListingLimits()).list()
    assert "entry 0: expected a URL string" in bad.value.reason


def test_endless_hub_pagination_stops_at_the_page_cap_in_flat_memory(
    hub: EndlessHub, figure: Figure, canaries: Canaries, leaks: LeakWatch
) -> None:
    limits = ListingLimits(max_pages=500)
    repo = HubRepo("org/data", endpoint=f"http://127.0.0.1:{hub.port}", extra_hosts=frozenset())
    source = HuggingFaceSource(
        "hub",
        repo,
        token=SecretStr(canaries.webhook),  # sent to the endpoint, never shown
        policy=DownloadPolicy(allowed_hosts=repo.hosts, attempts=1),
        listing=limits,
    )
    before = _rss_mb()
    started = time.perf_counter()
    with pytest.raises(SourceError) as refused:
        source.list()
    seconds = time.perf_counter() - started
    grown = _rss_mb() - before
    figure(S, "endless Hub: pages requested before the cap", hub.pages)
    figure(S, "endless Hub: seconds", round(seconds, 2))
    figure(S, "endless Hub: RSS growth MB", round(grown, 1))
    assert "refused: more than 500 pages" in refused.value.reason
    assert hub.pages == 500
    leaks.texts("endless Hub error", [str(refused.value), repr(source)])
    assert grown < 50


def test_a_pass_lists_the_healthy_source_beside_hostile_ones(
    server: FaultServer,
    hub: EndlessHub,
    tmp_path: Path,
    figure: Figure,
    canaries: Canaries,
    leaks: LeakWatch,
) -> None:
    """Through the monitor's stages: the nested manifest and the endless Hub are source
    errors naming their source; the local folder's shard is done; the run is completed."""
    server.add("/nested.json", NESTED)
    good = write_shards(tmp_path / "good", 1, seed=3)[0]
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "bounded"
database_url = "sqlite:///{tmp_path / "store.db"}"
state_dir = "{tmp_path / ".shardwatch"}"
[validation]
enabled = false
[alerts]
enabled = false
[download]
attempts = 1
max_listing_pages = 300
[sources.a-nested]
type = "http"
manifest = "{server.url("/nested.json")}"
[sources.b-hub]
type = "hf"
repo = "org/data"
endpoint = "http://127.0.0.1:{hub.port}"
extra_hosts = []
[sources.c-good]
type = "local"
path = "{good.parent}"
""")
    settings = load_settings(cfg)
    res = Resources(settings)
    run_id = start(res)
    found = discover(res)
    outcomes = [process(res, s, run_id) for s in found.new]
    finish(res, run_id, found, outcomes, "no alerts")
    errors = sorted(found.errors)
    figure(S, "pass with 2 hostile sources: source errors", len(errors))
    assert len(errors) == 2, errors
    assert errors[0].startswith("source 'a-nested': manifest ") and "nested" in errors[0]
    assert errors[1] == "source 'b-hub': Hub tree: refused: more than 300 pages"
    assert [(o.source, o.outcome) for o in outcomes] == [("c-good", "done")]
    engine = make_engine(settings.database_url.get_secret_value())
    with engine.connect() as c:
        status = c.execute(text("SELECT status FROM runs WHERE id = :i"), {"i": run_id}).scalar()
    engine.dispose()
    assert status == "completed"
    leaks.texts("bounded pass errors", found.errors)
    leaks.texts("bounded pass outcomes", [f"{o.uri} {o.reason}" for o in outcomes])
    leaks.database("bounded pass store", f"sqlite:///{tmp_path / 'store.db'}")


def _runs(url: str) -> list[tuple[int, str, str | None]]:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(text("SELECT id, status, error FROM runs ORDER BY id")).all()
    finally:
        engine.dispose()
    return [(r[0], r[1], r[2]) for r in rows]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_run_row_never_stays_running_once_its_process_has_ended(
    how: str,
    tmp_path: Path,
    postgres_server: Any,
    fresh_postgres_database: str,
    figure: Figure,
) -> None:
    """`shardwatch ingest` is held inside its run (the test locks the shards table), then
    killed or interrupted. SIGINT: the process closes its own row `failed`. SIGKILL: the row
    stays `running` until the next run, which closes it (its process is gone)."""
    url = postgres_server.url(fresh_postgres_database)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    shard = write_shards(tmp_path / "shards", 1, seed=4)[0]
    env = subprocess_env(SHARDWATCH_DATABASE_URL=url)
    lock = psycopg2.connect(url)
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE shards IN ACCESS EXCLUSIVE MODE")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shardwatch",
                "ingest",
                "--no-alerts",
                "--no-validate",
                "--dataset",
                "held",
                str(shard),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not _runs(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _runs(url) and _runs(url)[0][1] == "running"
        time.sleep(0.3)  # inside `register`, waiting for the lock
        os.kill(proc.pid, signal.SIGKILL if how == "SIGKILL" else signal.SIGINT)
    finally:
        lock.rollback()  # releases the lock: an interrupted call returns and raises
        lock.close()
    proc.communicate(timeout=60)
    after_end = _runs(url)
    figure(S, f"{how}: run row once the process ended", after_end[0][1])
    if how == "SIGINT":
        assert after_end == [(after_end[0][0], "failed", "the pass ended by KeyboardInterrupt")]
        return
    assert after_end[0][1] == "running"  # nothing could close it from inside
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "shardwatch",
            "ingest",
            "--no-alerts",
            "--no-validate",
            "--dataset",
            "held",
            str(shard),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    runs = _runs(url)
    figure(S, "SIGKILL: run row after the next run started", runs[0][1])
    assert runs[0] == (
        runs[0][0],
        "failed",
        f"its process (pid {proc.pid}) ended without finishing the run",
    )
    assert [r[1] for r in runs[1:]] == ["completed"]
