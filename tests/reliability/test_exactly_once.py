"""Scenario 13: the same bytes under two names are counted once, whatever the entry point.

Byte-identical copies (`a.parquet`, `b.parquet`) go through:

- the monitor's stages on two threads at once (the default `monitor.concurrency = 2`), the
  two passes released together by a barrier, so both scan before either stores: before the
  fix, the check ran ahead of the transaction and both ended done (the total doubled);
- `shardwatch ingest DIR`, one after the other (it had no cross-name check at all);
- two `ingest` worker processes started together, each holding its transaction open 0.5 s
  before COMMIT (tests/support/ingest_worker.py `--delay`).

Each time exactly one copy is done, the other quarantined "identical content to <uri>", and
the dataset total equals one copy's rows. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import DATASET, run_shardwatch, start_worker, write_shards

from shardwatch.acquire.sources import RemoteShard
from shardwatch.pipeline.monitor import ShardOutcome, discover, finish, ingest_fetched, start
from shardwatch.pipeline.monitor import fetch as fetch_shard
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import load_settings
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.report import dataset_report

pytestmark = pytest.mark.integration

S = "exactly once"
Figure = Callable[[str, str, object], None]


def _twins(folder: Path, seed: int) -> tuple[Path, Path, int]:
    a = write_shards(folder, 1, rows=500, seed=seed)[0].rename(folder / "a.parquet")
    b = folder / "b.parquet"
    shutil.copyfile(a, b)
    return a, b, pq.read_metadata(a).num_rows


def _secret(url: str, canaries: Canaries) -> str:
    """PostgreSQL URLs carry the canary password (trust auth ignores it)."""
    return canaries.postgres_url(url) if url.startswith("postgres") else url


def _total_rows(url: str, dataset: str) -> int:
    engine = make_engine(url)
    try:
        return dataset_report(engine, dataset).total.rows
    finally:
        engine.dispose()


def _check(outcomes: dict[str, tuple[str, str | None]], a: Path, b: Path) -> None:
    """One copy done, the other quarantined naming the first (either order)."""
    kinds = sorted(o for o, _ in outcomes.values())
    assert kinds == ["done", "quarantined"], outcomes
    done = next(name for name, (o, _) in outcomes.items() if o == "done")
    copy = next(name for name, (o, _) in outcomes.items() if o == "quarantined")
    original = a if done == a.name else b
    assert outcomes[copy][1] == f"identical content to {original.resolve()}", outcomes
    assert copy != done


def test_two_monitor_workers_finishing_copies_together_count_them_once(
    database_url: str,
    tmp_path: Path,
    figure: Figure,
    canaries: Canaries,
    leaks: LeakWatch,
) -> None:
    database_url = _secret(database_url, canaries)
    a, b, rows = _twins(tmp_path / "shards", seed=21)
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "twins"
database_url = "{database_url}"
state_dir = "{tmp_path / ".shardwatch"}"
[validation]
enabled = false
[alerts]
enabled = false
[sources.folder]
type = "local"
path = "{a.parent}"
""")
    settings = load_settings(cfg)
    res = Resources(settings)
    run_id = start(res)
    found = discover(res)
    assert sorted(s.name for s in found.new) == ["a.parquet", "b.parquet"]  # no checksums
    barrier = threading.Barrier(2)
    outcomes: dict[str, ShardOutcome] = {}

    def worker(shard: RemoteShard) -> None:
        fetched = fetch_shard(res, shard)
        barrier.wait(timeout=30)  # both fetched, neither stored: the old check passes twice
        outcomes[Path(fetched.shard.uri).name] = ingest_fetched(res, fetched, run_id)

    threads = [threading.Thread(target=worker, args=(s,)) for s in found.new]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    finish(res, run_id, found, list(outcomes.values()), "no alerts")
    _check({n: (o.outcome, o.reason) for n, o in outcomes.items()}, a, b)
    total = _total_rows(database_url, "twins")
    figure(
        S,
        f"monitor, 2 threads ({database_url.split(':')[0]}): total rows / one copy",
        f"{total:,} / {rows:,}",
    )
    assert total == rows
    assert discover(res).new == ()  # the copy stays quarantined while unchanged
    leaks.texts("twins outcomes", [f"{o.uri} {o.reason}" for o in outcomes.values()])
    leaks.database("twins store", database_url)


def test_ingest_of_a_folder_counts_a_copy_once(
    database_url: str,
    tmp_path: Path,
    figure: Figure,
    canaries: Canaries,
    leaks: LeakWatch,
) -> None:
    database_url = _secret(database_url, canaries)
    a, _, rows = _twins(tmp_path / "shards", seed=22)
    proc = run_shardwatch(
        "ingest",
        "--json",
        "--no-validate",
        "--no-alerts",
        "--dataset",
        "twins",
        str(a.parent),
        cwd=tmp_path,
        SHARDWATCH_DATABASE_URL=database_url,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]  # a shard was quarantined
    leaks.texts("twins ingest output", [proc.stdout, proc.stderr])
    results = {
        Path(r["uri"]).name: (r["outcome"], r["reason"]) for r in json.loads(proc.stdout)["results"]
    }
    assert results == {
        "a.parquet": ("done", None),
        "b.parquet": ("quarantined", f"identical content to {a.resolve()}"),
    }
    total = _total_rows(database_url, "twins")
    figure(
        S,
        f"ingest DIR ({database_url.split(':')[0]}): total rows / one copy",
        f"{total:,} / {rows:,}",
    )
    assert total == rows


def test_two_ingest_processes_committing_copies_together_count_them_once(
    fresh_postgres_url: str,
    tmp_path: Path,
    figure: Figure,
    canaries: Canaries,
    leaks: LeakWatch,
) -> None:
    fresh_postgres_url = _secret(fresh_postgres_url, canaries)
    a, b, rows = _twins(tmp_path / "shards", seed=23)
    engine = make_engine(fresh_postgres_url)
    upgrade(engine)
    engine.dispose()
    go = tmp_path / "go"
    workers = [
        start_worker(
            fresh_postgres_url,
            [path],
            "--owner",
            name,
            "--delay",
            "0.5",
            "--ready",
            str(tmp_path / f"ready-{name}"),
            "--go",
            str(go),
        )
        for name, path in (("w1", a), ("w2", b))
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in ("w1", "w2")):
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.02)
    started = time.perf_counter()
    go.touch()
    outcomes: dict[str, tuple[str, str | None]] = {}
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err[-2000:]
        leaks.texts("twins worker output", [out, err])
        for line in out.splitlines():
            r = json.loads(line)
            outcomes[Path(r["uri"]).name] = (r["outcome"], r["reason"])
    figure(S, "2 ingest processes on PostgreSQL: seconds", round(time.perf_counter() - started, 2))
    _check(outcomes, a, b)
    total = _total_rows(fresh_postgres_url, DATASET)
    figure(S, "2 ingest processes on PostgreSQL: total rows / one copy", f"{total:,} / {rows:,}")
    assert total == rows


def test_a_copy_of_superseded_content_is_counted(database_url: str, tmp_path: Path) -> None:
    """Only an URI's current content is an original: once a.parquet changes, a copy of its
    old bytes under another name is new content for the dataset, and counted."""
    a, b, rows = _twins(tmp_path / "shards", seed=24)
    b.unlink()
    old = tmp_path / "old-a.parquet"
    shutil.copyfile(a, old)
    env = {"SHARDWATCH_DATABASE_URL": database_url}
    args = ("ingest", "--json", "--no-validate", "--no-alerts", "--dataset", "twins")
    assert run_shardwatch(*args, str(a), cwd=tmp_path, **env).returncode == 0
    write_shards(tmp_path / "new", 1, rows=300, seed=25)[0].replace(a)  # a changes
    assert run_shardwatch(*args, str(a), cwd=tmp_path, **env).returncode == 0
    shutil.copyfile(old, b)  # the old bytes under a new name
    proc = run_shardwatch(*args, str(b), cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert [r["outcome"] for r in json.loads(proc.stdout)["results"]] == ["done"]
    assert _total_rows(database_url, "twins") == 300 + rows
