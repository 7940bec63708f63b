"""Scenario 22, PostgreSQL restarted in the middle of a pass (docs/reliability.md): an ingest
pass over six shards, with alerts on; as the third shard's results transaction is about to
commit, the server is stopped with `pg_ctlcluster ... stop -m immediate` and started again
about a second later. The pass goes on: it either completes the in-flight shard once the
server is back (recognising a COMMIT that landed) or fails that shard alone, and processes
every other shard. The next pass then completes every shard exactly once: each is `done`
with one set of result rows and one alert notice per key.

The restart disturbs every other PostgreSQL test running at the same moment, so it runs once,
and the outage is kept short. Helpers: tests/support/reliability/crash_checks.py (the
cluster, as scenario 6).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from support.builders import tagged_table, write_shard
from support.reliability.crash_checks import Cluster, cluster
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import ingest, shards

from shardwatch.core.alerts import AlertPlan, Rule
from shardwatch.pipeline.ingest import IngestResult
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.exclusive]

SCENARIO = "13 PG restart mid-pass"
TAG = Rule("tag", "nsfw_tag_rate", "critical", "shard", max=0.05, min_support=10)
SHARDS = 6
HIT = 3  # the shard whose results transaction meets the restart
DOWN = 1.0  # seconds the server stays stopped
LEASE = 3.0


@pytest.fixture
def restart_cluster(postgres_server: Any) -> Cluster:
    found = cluster()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"scenario 22 must restart PostgreSQL in CI: {found}", pytrace=False)
        pytest.skip(found)
    assert found.ready(), f"PostgreSQL {found} is not running"
    return found


def test_postgres_restarted_mid_pass_fails_at_most_the_in_flight_shard(
    fresh_postgres_url: str,
    restart_cluster: Cluster,
    tmp_path: Path,
    canaries: Canaries,
    leaks: LeakWatch,
    caplog: pytest.LogCaptureFixture,
    figure: Callable[[str, str, object], None],
) -> None:
    url = canaries.postgres_url(fresh_postgres_url)
    engine = make_engine(url)
    upgrade(engine)
    store = ResultStore(engine)
    folder = tmp_path / "shards"
    folder.mkdir()
    paths = [
        write_shard(tagged_table(200, 30, seed=i), folder, f"part-{i}.parquet")
        for i in range(SHARDS)
    ]
    plan = AlertPlan((TAG,), ("team",))
    commits = [0]
    restarted: list[threading.Thread] = []
    times: dict[str, float] = {}

    def restart_later() -> None:
        time.sleep(DOWN)
        restart_cluster.ctl("start")
        times["ready"] = restart_cluster.wait_ready()

    def crash_before_commit(_session: Session) -> None:
        commits[0] += 1
        if commits[0] == HIT:
            times["stopped"] = time.monotonic()
            restart_cluster.ctl("stop", "-m", "immediate")
            restarted.append(threading.Thread(target=restart_later, daemon=True))
            restarted[0].start()

    first: list[IngestResult] = []
    error: BaseException | None = None
    try:
        try:
            first = ingest(
                paths, store, alerts=plan, before_commit=crash_before_commit, lease_seconds=LEASE
            )
        except Exception as exc:  # the pass must not end here: recorded, asserted below
            error = exc
        finally:
            for thread in restarted:
                thread.join(timeout=120)
            if not restart_cluster.ready():
                restart_cluster.ctl("start")
            restart_cluster.wait_ready()
        assert restarted, "the restart never happened"
        assert error is None, f"the pass ended at the restart: {type(error).__name__}: {error}"
        outcomes = Counter(r.outcome for r in first)
        assert len(first) == SHARDS
        assert outcomes["done"] >= SHARDS - 1 and outcomes["done"] + outcomes["failed"] == SHARDS

        time.sleep(LEASE + 0.2)  # a failed in-flight shard's claim may still be leased
        second = ingest(paths, store, alerts=plan, lease_seconds=LEASE)
        done = Counter(r.uri for r in (*first, *second) if r.outcome == "done")
        assert sorted(done.values()) == [1] * SHARDS, (first, second)
        rows = shards(engine)
        assert [r["status"] for r in rows] == ["done"] * SHARDS
        with engine.connect() as conn:
            metrics = conn.execute(text("SELECT count(*) FROM shard_metrics")).scalar_one()
            notices = conn.execute(
                text("SELECT alert_id, count(*) FROM alert_outbox GROUP BY alert_id")
            ).all()
        assert metrics == SHARDS
        assert len(notices) == SHARDS and all(n == 1 for _, n in notices), notices
        leaks.text("restart log", caplog.text)
        leaks.texts("pass results", [repr(r) for r in (*first, *second)])
        leaks.database("restart store", url)
    finally:
        engine.dispose()
    outage = times["ready"] - times["stopped"]
    figure(
        SCENARIO, "first pass: shards done / failed", f"{outcomes['done']} / {outcomes['failed']}"
    )
    figure(SCENARIO, "seconds the server was unavailable", outage)
    figure(SCENARIO, "shards done exactly once after the next pass", f"{len(done)} of {SHARDS}")
