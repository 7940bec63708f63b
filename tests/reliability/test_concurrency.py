"""Scenario 7, concurrency (docs/reliability.md): 3 worker processes race over 200 shards on
the real PostgreSQL, and each shard is processed exactly once.

The 200 shards (20-50 rows each) are registered up front; three
tests/support/reliability/concurrency_worker.py processes, each with every shard in the same
order (so nearly every shard is contested), start together (a go file) and time each claim call
inside the process (from the call to its return). Exactly once means:
the successful claims of the three workers are disjoint and cover all 200 shards; each
successful claim ended in one stored result set; every shard version is `done` after one
attempt with no lease left; and the stored row counts equal the rows pyarrow decodes from the
files. test_ingest.py races 50 shards; this goes to 200, with every shard already registered
(so all three claim the same rows from the first shard on), and measures the claims.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.reliability.concurrency_checks import (
    Worker,
    file_rows,
    percentile,
    stored_rows,
    write_small_shards,
)
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import DATASET, shards, table_counts

from shardwatch.pipeline.ingest import fingerprint
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

SCENARIO = "7 concurrency"
N_SHARDS = 200
N_WORKERS = 3


def test_three_workers_race_over_200_shards_and_each_is_processed_exactly_once(
    postgres_server: Any,
    fresh_postgres_database: str,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Callable[[str, str, object], None],
    tmp_path: Path,
) -> None:
    url = canaries.postgres_url(postgres_server.url(fresh_postgres_database))
    engine = make_engine(url)
    workers: list[Worker] = []
    try:
        upgrade(engine)
        paths = write_small_shards(tmp_path / "shards", N_SHARDS, rows=(20, 50))
        store = ResultStore(engine)
        for path in paths:  # registered up front: every worker finds all 200 claimable
            fp = fingerprint(path)
            store.register(DATASET, str(path.resolve()), fp.sha256, fp.size, mtime=fp.mtime)
        go = tmp_path / "go"
        workers = [
            Worker.start(url, f"racer-{i}", paths, tmp_path, "--lease", "60", "--go", str(go))
            for i in range(N_WORKERS)
        ]
        deadline = time.monotonic() + 120
        while not all(w.ready.exists() for w in workers):
            assert all(w.proc.poll() is None for w in workers), [w.err.read_text() for w in workers]
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.01)
        started = time.monotonic()
        go.touch()  # all three start together
        for w in workers:
            w.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        wall = time.monotonic() - started

        for w in workers:
            leaks.text(f"{w.owner} stdout", w.out.read_bytes())
            leaks.text(f"{w.owner} stderr", w.err.read_bytes())
            assert w.proc.returncode == 0, f"{w.owner}: {w.err.read_text()}"

        claims = {w.owner: w.events("claim") for w in workers}
        results = {w.owner: w.events("result") for w in workers}
        won = {o: [c["shard_id"] for c in cs if c["ok"]] for o, cs in claims.items()}
        done = {
            o: [r["shard_id"] for r in rs if r["outcome"] == "done"] for o, rs in results.items()
        }
        outcomes = {o: dict(Counter(r["outcome"] for r in rs)) for o, rs in results.items()}
        note = f"claims won { ({o: len(ids) for o, ids in won.items()}) }; outcomes {outcomes}"
        print(f"\nconcurrency: {note}")

        for owner, rs in results.items():
            assert len(rs) == N_SHARDS, f"{owner} reported {len(rs)} outcomes"
            assert set(outcomes[owner]) <= {"done", "busy", "skipped"}, note
            # Each won claim ended in exactly one stored result, and nothing else did.
            assert sorted(won[owner]) == sorted(done[owner]), note
            assert won[owner], f"{owner} processed nothing: the race did not happen ({note})"
        every_win = [i for ids in won.values() for i in ids]
        ids = {row["id"] for row in shards(engine)}
        assert len(ids) == N_SHARDS
        assert len(every_win) == len(set(every_win)), f"a shard was claimed twice: {note}"
        assert set(every_win) == ids, f"shards nobody claimed: {sorted(ids - set(every_win))}"

        rows = shards(engine)
        assert {r["status"] for r in rows} == {"done"}
        assert Counter(r["attempts"] for r in rows) == {1: N_SHARDS}  # one claim each, ever
        leftover = [r for r in rows if r["lease_owner"] or r["lease_expires_at"]]
        assert not leftover, f"leases left behind: {leftover[:3]}"
        counts = table_counts(engine)
        assert counts["shard_metrics"] == N_SHARDS and counts["datasets"] == 1
        expected = file_rows(paths)
        stored = stored_rows(engine)
        assert stored == {uri: [n] for uri, n in expected.items()}  # one result set, exact rows

        latencies = [c["seconds"] for cs in claims.values() for c in cs]
        lost = sum(1 for cs in claims.values() for c in cs if not c["ok"])
        figure(SCENARIO, "claim calls (won / lost to another worker)", f"{N_SHARDS} / {lost}")
        figure(SCENARIO, "p50 claim latency (ms)", 1000 * percentile(latencies, 0.50))
        figure(SCENARIO, "p95 claim latency (ms)", 1000 * percentile(latencies, 0.95))
        figure(SCENARIO, "max claim latency (ms)", 1000 * max(latencies))
        figure(SCENARIO, "shards per worker", " / ".join(str(len(won[w.owner])) for w in workers))
        figure(SCENARIO, "rows/s (3 workers, 200 shards)", sum(expected.values()) / wall)
        leaks.database("concurrency results", url.replace("postgresql:", "postgresql+psycopg2:"))
    finally:
        for w in workers:
            w.stop()
        engine.dispose()
