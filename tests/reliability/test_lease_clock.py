"""Scenario 14: leases are judged by the database's clock, not each worker's.

A worker claims a shard for 60 s. A second worker process whose clock runs an hour ahead
(time-machine moves its Python clock; the database's is untouched) tries to claim the same
shard: before the fix it compared the lease's expiry with its own clock, found the lease
expired and took over a live one. After: it is refused, and a worker whose clock runs an
hour behind still takes a lease that has really expired. SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.clocks import LONG_LEASE, expire_lease
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import DATASET, subprocess_env, write_shards

from shardwatch.pipeline.ingest import fingerprint
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

CLAIM = """
import sys, time_machine, datetime as dt
from shardwatch.store.database import make_engine
from shardwatch.store.repository import ResultStore
url, shard_id, hours = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
skewed = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
with time_machine.travel(skewed, tick=True):
    assert abs((dt.datetime.now(dt.UTC) - skewed).total_seconds()) < 60  # the skew holds
    engine = make_engine(url)
    print(ResultStore(engine).claim(shard_id, "skewed-worker", 60.0))
    engine.dispose()
"""


def _claim_skewed(url: str, shard_id: int, hours: float, leaks: LeakWatch | None = None) -> bool:
    proc = subprocess.run(
        [sys.executable, "-c", CLAIM, url, str(shard_id), str(hours)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    if leaks is not None:
        leaks.texts("lease clock worker output", [proc.stdout, proc.stderr])
    return proc.stdout.strip().splitlines()[-1] == "True"


def test_a_worker_with_a_fast_clock_cannot_take_a_live_lease(
    database_url: str,
    tmp_path: Path,
    figure: Callable[[str, str, object], None],
    canaries: Canaries,
    leaks: LeakWatch,
) -> None:
    if database_url.startswith("postgres"):  # the canary password (trust auth ignores it)
        database_url = canaries.postgres_url(database_url)
    engine = make_engine(database_url)
    upgrade(engine)
    store = ResultStore(engine)
    path = write_shards(tmp_path, 1, seed=31)[0]
    fp = fingerprint(path)
    sv = store.register(DATASET, str(path), fp.sha256, fp.size)
    assert store.claim(sv.id, "honest-worker", 60.0)
    taken = _claim_skewed(database_url, sv.id, hours=1, leaks=leaks)
    kind = database_url.split(":")[0]
    figure("lease clock", f"{kind}: live 60 s lease taken by a worker 1 h ahead", taken)
    assert not taken
    assert store.claim(sv.id, "honest-worker-2", 60.0) is False  # still held
    engine.dispose()
    leaks.database("lease clock store", database_url)


def test_a_worker_with_a_slow_clock_takes_an_expired_lease(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    store = ResultStore(engine)
    path = write_shards(tmp_path, 1, seed=32)[0]
    fp = fingerprint(path)
    sv = store.register(DATASET, str(path), fp.sha256, fp.size)
    assert store.claim(sv.id, "short-lease", LONG_LEASE)
    expire_lease(engine, sv.id)  # on the database's clock; the worker's runs an hour behind
    assert _claim_skewed(database_url, sv.id, hours=-1)
    engine.dispose()
