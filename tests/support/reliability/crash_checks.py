"""Helpers of the crash scenario (6): the PostgreSQL cluster the test may stop and restart,
per-shard row counts, and the independent counts they are compared with.

The cluster is `SHARDWATCH_TEST_PG_CLUSTER` ("VERSION NAME", default: the machine's only
version, `main`). It must be the one listening on `SHARDWATCH_TEST_PG_PORT` (default 5432):
`cluster()` refuses a mismatch, so a run against a private cluster can never stop another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from shardwatch.core.metrics import ShardMetrics
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore
from support.store_checks import SHARD_RESULT_TABLES, ingest

# Every table holding one shard version's results.
RESULT_TABLES = (*SHARD_RESULT_TABLES, "shard_domains")
Counts = dict[str, int]


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL cluster driven with pg_ctlcluster (Debian's postgresql-common)."""

    version: str
    name: str
    port: int
    host: str = "127.0.0.1"

    def ctl(self, action: str, *options: str) -> None:
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                self.version,
                self.name,
                action,
                *options,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def ready(self) -> bool:
        probe = ["pg_isready", "-h", self.host, "-p", str(self.port)]
        return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0

    def wait_ready(self, timeout: float = 90) -> float:
        """Wait until the cluster accepts connections; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL {self} not ready within {timeout} s")
            time.sleep(0.05)
        return time.monotonic()

    def __str__(self) -> str:
        return f"{self.version}/{self.name} on {self.host}:{self.port}"


def cluster() -> Cluster | str:
    """The cluster under test, or why it cannot be stopped and restarted here."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return "pg_ctlcluster is not installed (Debian's postgresql-common)"
    spec = os.environ.get("SHARDWATCH_TEST_PG_CLUSTER", "").split()
    if not spec:
        versions = sorted(os.listdir("/etc/postgresql"))
        if not versions:
            return "no cluster under /etc/postgresql"
        spec = [versions[-1], "main"]
    if len(spec) != 2:
        return "SHARDWATCH_TEST_PG_CLUSTER must be 'VERSION NAME', e.g. '15 main'"
    conf = Path("/etc/postgresql") / spec[0] / spec[1] / "postgresql.conf"
    if not conf.is_file():
        return f"no cluster {spec[0]}/{spec[1]} ({conf} is missing)"
    port = 5432
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "port":
            port = int(value.split("#")[0].strip())
    host = os.environ.get("SHARDWATCH_TEST_PG_HOST", "127.0.0.1")
    under_test = int(os.environ.get("SHARDWATCH_TEST_PG_PORT", "5432"))
    if port != under_test:
        return (
            f"cluster {spec[0]}/{spec[1]} listens on port {port}, not on the port under test "
            f"{under_test}: set SHARDWATCH_TEST_PG_CLUSTER to the cluster being tested"
        )
    if os.geteuid() != 0:
        return "stopping and starting the cluster needs root (pg_ctlcluster)"
    return Cluster(spec[0], spec[1], port, host)


def counts_by_uri(engine: Engine) -> dict[str, Counts]:
    """Committed rows per shard URI in each result table (one version per URI here)."""
    out: dict[str, Counts] = {}
    with engine.connect() as conn:
        uris = [str(uri) for (uri,) in conn.execute(text("SELECT uri FROM shards"))]
        for uri in uris:
            out[uri] = dict.fromkeys(RESULT_TABLES, 0)
        for table in RESULT_TABLES:  # allow-listed names only
            query = (
                f"SELECT s.uri, count(*) FROM {table} r JOIN shards s ON s.id = r.shard_id"
                " GROUP BY s.uri"
            )
            for uri, n in conn.execute(text(query)):
                out[str(uri)][table] = int(n)
    return out


def reference_counts(paths: list[Path], folder: Path) -> dict[str, Counts]:
    """The rows a clean, crash-free ingest stores per shard, in a SQLite file of its own."""
    engine = make_engine(f"sqlite:///{folder / 'reference.sqlite'}")
    try:
        upgrade(engine)
        results = ingest(paths, ResultStore(engine))
        assert {r.outcome for r in results} == {"done"}, results
        return counts_by_uri(engine)
    finally:
        engine.dispose()


def expected_counts(m: ShardMetrics) -> Counts:
    """The rows one stored result set has, counted from the metrics (not from a database)."""
    sim, terms = m.similarity, m.terms or {}
    return {
        "shard_metrics": 1,
        "shard_tag_counts": len(m.nsfw_flag_counts or {}),
        "similarity_bins": 0 if sim is None else sum(1 for c in sim.histogram.counts if c),
        "term_metrics": len(terms),
        "term_tag_counts": sum(len(s.nsfw_flag_counts or {}) for s in terms.values()),
        "validation_results": 0,
        "shard_domains": 0 if m.domains is None else len(m.domains.top),
        "shard_blocklists": len(m.blocklists or {}),
        "shard_blocklist_matches": sum(len(b.matched) for b in (m.blocklists or {}).values()),
    }
