"""Scenario 10, soak (docs/reliability.md): small shards, a concurrency limit of 2 and random
worker kills, on the real PostgreSQL. 50 shards in CI; 500 with SHARDWATCH_SLOW=1.

Two tests/support/reliability/concurrency_worker.py processes run at a time (the concurrency
limit), each over every shard in its own order, going back over the shards another worker holds
until none is left, judging alert rules as the monitor does (`--alerts`: shard rules in each
shard's transaction, dataset rules once after each pass):

- the keeper lives through the whole soak; it is the process whose RSS is sampled;
- the other slot is killed with SIGKILL at a random moment 0.2-1.0 s after its replacement
  became ready (mid-claim, mid-scan or mid-transaction, wherever it happens to be), and a new
  worker takes its place at once. Kills stop when the keeper is done.

A killed worker's claim stays until its short lease (3 s) expires; then another worker takes
the shard over. Meanwhile the test samples, every 50 ms, the connections PostgreSQL has open to
the soak database (pg_stat_activity, per worker through its application_name) and the
keeper's RSS (psutil). Asserted at the end:

- 0 stuck claims: every shard `done`, no lease left, and every worker finished by itself;
- exactly once: one result set per shard, with the rows pyarrow decodes from its file; every
  extra claim of a shard is accounted for by a kill (or a lease reported lost); one outbox
  notice per alert key, and the dataset alert holds the exact NSFW total of the files;
- connections: each worker's engine is one SQLAlchemy QueuePool (`make_engine`: pool_size 5,
  max_overflow 10) and a worker does one thing at a time, so it must never hold more than ONE
  connection (more would be a connection leaked or held across transactions); the total for
  the database (keeper, victim and the moment a killed worker's backend takes to go) must stay
  <= the pool size of 5; within 5 s of the soak's end no backend is left;
- RSS flat: the keeper's last-third mean <= 1.5 x its first-third mean + 20 MB.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from support.reliability.concurrency_checks import (
    Worker,
    file_rows,
    stored_rows,
    write_small_shards,
)
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import shards

from shardwatch.store.database import make_engine, upgrade

pytestmark = pytest.mark.integration

SCENARIO = "10 soak"
LEASE = 3.0
SAMPLE_EVERY = 0.05
MB = 1 << 20


@dataclass
class Samples:
    """What the soak saw while it ran."""

    rss: list[int] = field(default_factory=list)  # the keeper's RSS, bytes
    total: list[int] = field(default_factory=list)  # connections to the soak database
    per_worker: Counter[str] = field(default_factory=Counter)  # the most seen, per worker

    def take(self, pg: Any, database: str, keeper: Worker) -> None:
        with pg.cursor() as cur:
            cur.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid() GROUP BY 1",
                (database,),
            )
            seen = dict(cur.fetchall())
        self.total.append(sum(seen.values()))
        for name, n in seen.items():
            self.per_worker[name] = max(self.per_worker[name], n)
        if keeper.proc.poll() is not None:
            return  # finished: its last samples are in (a zombie's RSS would read as 0)
        with contextlib.suppress(psutil.Error):  # it exited just now
            self.rss.append(psutil.Process(keeper.proc.pid).memory_info().rss)


def _processing_times(workers: list[Worker]) -> list[tuple[float, float]]:
    """(time done, seconds from its won claim to its reported commit) of every shard a
    worker finished (kills and lease waits excluded: it is one worker's work on one shard)."""
    times = []
    for w in workers:
        won = {c["shard_id"]: c["t"] for c in w.events("claim") if c["ok"]}
        for r in w.events("result"):
            if r["outcome"] == "done":
                times.append((r["t"], r["t"] - won[r["shard_id"]]))
    return times


@pytest.mark.parametrize(
    "n_shards",
    [pytest.param(50, id="50-shards"), pytest.param(500, id="500-shards", marks=pytest.mark.slow)],
)
def test_soak_with_random_worker_kills_leaves_no_stuck_claim_or_leak(
    n_shards: int,
    postgres_server: Any,
    fresh_postgres_database: str,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Callable[[str, str, object], None],
    tmp_path: Path,
) -> None:
    database = fresh_postgres_database
    url = canaries.postgres_url(postgres_server.url(database))
    engine = make_engine(url)
    upgrade(engine)
    pool_size = engine.pool.size()  # type: ignore[attr-defined]
    engine.dispose()  # the test holds no connection to the soak database while it runs
    paths = write_small_shards(tmp_path / "shards", n_shards, rows=(100, 300), seed=n_shards)
    budget = 120.0 + 0.5 * n_shards
    rng = random.Random(n_shards)

    def start(owner: str, seed: int) -> Worker:
        return Worker.start(
            f"{url}?application_name={owner}",
            owner,
            paths,
            tmp_path,
            *("--seed", str(seed), "--lease", str(LEASE), "--until-done", str(budget)),
            "--alerts",
        )

    pg = postgres_server.connect()
    samples = Samples()
    workers = [start("soak-keeper", 0)]
    kills = 0
    try:
        victim = start("soak-1", 1)
        workers.append(victim)
        keeper = workers[0]
        deadline = time.monotonic() + budget
        while not (keeper.ready.exists() and victim.ready.exists()):
            assert keeper.proc.poll() is None, keeper.err.read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.01)
        started = time.monotonic()
        kill_at = started + rng.uniform(0.2, 1.0)
        while keeper.proc.poll() is None or victim.proc.poll() is None:
            assert time.monotonic() < deadline, f"the soak did not finish in {budget} s"
            samples.take(pg, database, keeper)
            now = time.monotonic()
            if keeper.proc.poll() is None and victim.proc.poll() is None and now >= kill_at:
                os.kill(victim.proc.pid, signal.SIGKILL)
                victim.proc.wait(timeout=30)
                kills += 1
                victim = start(f"soak-{kills + 1}", kills + 1)
                workers.append(victim)
                while not victim.ready.exists():  # its random moment counts from here
                    assert victim.proc.poll() is None, victim.err.read_text()
                    samples.take(pg, database, keeper)
                    time.sleep(SAMPLE_EVERY)
                kill_at = time.monotonic() + rng.uniform(0.2, 1.0)
            time.sleep(SAMPLE_EVERY)
        wall = time.monotonic() - started
        samples.take(pg, database, keeper)
        settle = time.monotonic() + 5  # a backend takes a moment to go after its client
        while samples.total[-1] and time.monotonic() < settle:
            time.sleep(SAMPLE_EVERY)
            samples.take(pg, database, keeper)
        after = samples.total[-1]

        for w in workers:
            leaks.text(f"{w.owner} stdout", w.out.read_bytes())
            leaks.text(f"{w.owner} stderr", w.err.read_bytes())
        killed = workers[1:-1]
        assert all(w.proc.returncode == -signal.SIGKILL for w in killed)
        for w in (keeper, victim):  # the survivors finished by themselves, nothing busy
            assert w.proc.returncode == 0, f"{w.owner}: {w.err.read_text()}"

        # 0 stuck claims
        engine = make_engine(url)
        rows = shards(engine)
        assert len(rows) == n_shards
        status = Counter(r["status"] for r in rows)
        assert status == {"done": n_shards}, status
        leftover = [r for r in rows if r["lease_owner"] or r["lease_expires_at"]]
        assert not leftover, f"claims left behind: {leftover[:3]}"

        # exactly once, and every redo explained by a kill
        expected = file_rows(paths)
        assert stored_rows(engine) == {uri: [n] for uri, n in expected.items()}
        results = [r for w in workers for r in w.events("result")]
        done = Counter(r["shard_id"] for r in results if r["outcome"] == "done")
        assert max(done.values()) == 1, "a shard was reported done twice"
        lost = sum(1 for r in results if r["outcome"] == "lost")
        assert set(Counter(r["outcome"] for r in results)) <= {"done", "busy", "skipped", "lost"}
        extra = sum(r["attempts"] - 1 for r in rows)
        redone = sum(1 for r in rows if r["attempts"] > 1)
        assert extra <= kills + lost, f"{extra} extra claims, {kills} kills, {lost} lost"
        assert kills >= 1, "no worker was killed: the soak proved nothing"
        tags = [pq.read_table(p, columns=["NSFW"]).column(0).to_pylist() for p in paths]
        nsfw = [t.count("NSFW") for t in tags]
        with engine.connect() as conn:
            alerts = conn.execute(text("SELECT scope, detail FROM alerts")).all()
            notices = conn.execute(
                text("SELECT alert_id, count(*) FROM alert_outbox GROUP BY alert_id")
            ).all()
        dataset_alert = [detail for scope, detail in alerts if scope == "dataset"]
        assert dataset_alert == [f"{sum(nsfw)} of {sum(expected.values())}"]
        assert len(alerts) == 1 + sum(1 for n in nsfw if n)  # the dataset + breaching shards
        assert len(notices) == len(alerts) and {n for _, n in notices} == {1}, notices

        # connections (see the module docstring for the bounds)
        peak = max(samples.total)
        assert max(samples.per_worker.values()) <= 1, dict(samples.per_worker)
        assert peak <= pool_size, f"{peak} connections > pool size {pool_size}"
        assert after == 0, f"{after} connection(s) left after the soak"

        # RSS flat
        third = max(1, len(samples.rss) // 3)
        first = statistics.mean(samples.rss[:third]) / MB
        last = statistics.mean(samples.rss[-third:]) / MB
        assert last <= 1.5 * first + 20, f"keeper RSS grew from {first:.1f} to {last:.1f} MB"

        n = f"{n_shards} shards"
        per_shard = sorted(_processing_times(workers))  # (when done, seconds), in time order
        k = len(per_shard) // 3
        early = statistics.median(d for _, d in per_shard[:k])
        late = statistics.median(d for _, d in per_shard[-k:])
        figure(
            SCENARIO,
            f"ms per shard from claim to commit, median of first / last third ({n})",
            f"{1000 * early:.0f} / {1000 * late:.0f}",
        )
        figure(SCENARIO, f"rows/s ({n}, 2 workers, kills)", sum(expected.values()) / wall)
        figure(SCENARIO, f"seconds ({n})", wall)
        figure(SCENARIO, f"worker kills ({n})", kills)
        figure(SCENARIO, f"shards redone after a kill ({n})", redone)
        figure(SCENARIO, f"stuck claims ({n})", sum(1 for r in rows if r["status"] != "done"))
        figure(
            SCENARIO,
            f"max connections, total / per worker ({n})",
            f"{peak} / {max(samples.per_worker.values())} (pool size {pool_size})",
        )
        figure(SCENARIO, f"keeper RSS MB, first / last third ({n})", f"{first:.1f} / {last:.1f}")
        leaks.database("soak results", url.replace("postgresql:", "postgresql+psycopg2:"))
    finally:
        for w in workers:
            w.stop()
        pg.close()
        engine.dispose()
