"""Build a results store of 10,000 shards x 25 terms; time the real ingest path's per-shard
commit at about 100 and about 10,000 stored shards, and `shardwatch report --json` on it."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from shardwatch.core.alerts import DEFAULT_RULES, AlertPlan
from shardwatch.core.lexicon import BIRHANE2021, Lexicon, Pattern
from shardwatch.core.profiles import LAION400M
from shardwatch.demo.synth import Generator
from shardwatch.pipeline.ingest import IngestJob, IngestResult, ingest_shards
from shardwatch.scan.engine import CompiledLexicon
from shardwatch.store import models as t
from shardwatch.store.database import make_engine, masked, upgrade
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".shardwatch" / "bench" / "report"
DATASET = "bench-report"
# The same four extra terms as scan_vs_duckdb.py's 25-term lexicon.
EXTRA_TERMS = ("girl", "woman", "wife", "bride")
LEXICON = Lexicon(
    name="birhane2021-25",
    description="birhane2021's 21 terms plus 4, for the report benchmark",
    terms=BIRHANE2021.terms + tuple(Pattern(term, "word") for term in EXTRA_TERMS),
    keywords=BIRHANE2021.keywords,
)
# Every default rule, dataset rules included, with one channel: what `shardwatch run` judges.
PLAN = AlertPlan(DEFAULT_RULES, ("console",))
COMMIT_RATIO_TARGET = 2.0  # per-shard commit at ~10,000 stored shards <= 2x at ~100
REPORT_TARGET_S = 2.0  # `shardwatch report --json`, subprocess wall time
RESULT_TABLES = (
    t.ShardMetricsRow,
    t.ShardTagCount,
    t.ShardDomain,
    t.SimilarityBin,
    t.TermMetricsRow,
    t.TermTagCount,
)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class TimedStore(ResultStore):
    """The real store; the benchmark only times its result commits and dataset judgements."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.commits: list[float] = []
        self.judgements: list[float] = []

    def complete(self, *args: Any, **kwargs: Any) -> bool:
        t0 = time.perf_counter()
        try:
            return super().complete(*args, **kwargs)
        finally:
            self.commits.append(time.perf_counter() - t0)

    def judge_dataset(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return super().judge_dataset(*args, **kwargs)
        finally:
            self.judgements.append(time.perf_counter() - t0)


def write_shards(directory: Path, shards: int, rows: int, seed: int) -> list[Path]:
    """`shards` deterministic LAION-like shards, reused when a complete set is present.

    One synth Generator writes them in sequence (its set-up costs 0.3 s, a 2,000-row chunk
    10 ms), so the set is only deterministic as a whole: a partial set is rewritten.
    """
    paths = [directory / f"part-{i:05d}.parquet" for i in range(shards)]
    marker = directory / f".complete-{shards}x{rows}-seed{seed}"
    if marker.is_file() and all(p.is_file() for p in paths):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    gen = Generator(seed)
    for i, path in enumerate(paths):
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(gen.chunk(i, i * rows, rows), tmp, compression="snappy")
        tmp.replace(path)
    marker.write_text("")
    return paths


def ensure_database(url: str, fresh: bool) -> None:
    """Create the PostgreSQL database named in `url` (dropped first when `fresh`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = create_engine(
        parsed.set(drivername="postgresql+psycopg2", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        if fresh:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        exists = conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
        )
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def time_cli(url: str, repeat: int, *args: str) -> tuple[float, str]:
    """Best wall time of `shardwatch ARGS` over `repeat` subprocess runs, and its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDWATCH_")}
    env["SHARDWATCH_DATABASE_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    best, out = float("inf"), ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "shardwatch", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"shardwatch {args[0]} failed ({proc.returncode}): {proc.stderr}")
        best, out = min(best, wall), proc.stdout
    return best, out


def clone_shards(engine: Engine, pool: list[int], upto: int, prefix: str) -> int:
    """The build's fast path: copy the stored results of the `pool` shard versions (ingested
    through the real path) under new URIs and content hashes, until the dataset holds `upto`
    done shards. Bulk inserts, no scan, no alert judgement. Returns the shards added."""
    with engine.begin() as conn:
        dataset_id = conn.scalar(select(t.Dataset.id).where(t.Dataset.name == DATASET))
        have = conn.scalar(
            select(func.count()).where(t.Shard.dataset_id == dataset_id, t.Shard.status == "done")
        )
        rows = {
            table: [
                dict(r._mapping)
                for r in conn.execute(select(table.__table__).where(table.shard_id.in_(pool)))
            ]
            for table in RESULT_TABLES
        }
    by_shard: dict[type, dict[int, list[dict[str, Any]]]] = {}
    for table, found in rows.items():
        grouped: dict[int, list[dict[str, Any]]] = {}
        for r in found:
            grouped.setdefault(r["shard_id"], []).append(r)
        by_shard[table] = grouped
    n = max(0, upto - int(have or 0))
    now = t.utcnow()
    for start in range(0, n, 500):
        batch = range(start, min(n, start + 500))
        shard_rows = [
            {
                "dataset_id": dataset_id,
                "uri": f"{prefix}/clone-{start + k:05d}-{i}.parquet",
                "content_sha256": hashlib.sha256(f"{prefix}|{i}".encode()).hexdigest(),
                "version": 1,
                "status": "done",
                "attempts": 1,
                "created_at": now,
                "last_seen_at": now,
                "updated_at": now,
                "finished_at": now,
            }
            for k, i in enumerate(batch)
        ]
        with engine.begin() as conn:
            ids = conn.scalars(
                insert(t.Shard).returning(t.Shard.id, sort_by_parameter_order=True), shard_rows
            ).all()
            for table in RESULT_TABLES:
                copies = [
                    {**r, "shard_id": new_id}
                    for j, new_id in enumerate(ids)
                    for r in by_shard[table].get(pool[(start + j) % len(pool)], [])
                ]
                if copies:
                    conn.execute(insert(table), copies)
    return n


def measure(store: TimedStore, paths: list[Path]) -> tuple[float, float, float | None]:
    """Ingest `paths` through the real path (pipeline/ingest, every default alert rule on),
    one pass; the median per-shard commit and ingest times, and the pass's dataset
    judgement (None when commits judge the dataset rules themselves)."""
    store.commits.clear()
    store.judgements.clear()
    walls: list[float] = []
    last = [time.perf_counter()]

    def lap(result: IngestResult) -> None:
        if result.outcome != "done":
            raise SystemExit(f"{result.uri}: {result.outcome} ({result.reason})")
        now = time.perf_counter()
        walls.append(now - last[0])
        last[0] = now

    job = _job(store, alerts=PLAN)
    ingest_shards(job, paths, on_result=lap)
    judged = sum(store.judgements) if store.judgements else None
    return statistics.median(store.commits), statistics.median(walls), judged


def _job(store: ResultStore, *, alerts: AlertPlan | None) -> IngestJob:
    return IngestJob(
        store=store,
        dataset=DATASET,
        profile=LAION400M,
        lexicon=CompiledLexicon(LEXICON),
        lease_seconds=600,
        workers=1,
        max_attempts=None,
        alerts=alerts,
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shards", type=int, default=10_000, help="stored shards at the end")
    p.add_argument("--rows", type=int, default=1000, help="rows per shard")
    p.add_argument("--pool", type=int, default=100, help="shards ingested before cloning")
    p.add_argument("--measure", type=int, default=20, help="shards timed at each size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="shards and the SQLite store")
    p.add_argument(
        "--database-url",
        help="SQLAlchemy URL of the store (default: SQLite under --out); a PostgreSQL "
        "database is (re)created",
    )
    p.add_argument("--repeat", type=int, default=3, help="report runs (best of N)")
    args = p.parse_args(argv)

    url = args.database_url or f"sqlite:///{args.out / 'report_store.sqlite'}"
    t0 = time.perf_counter()
    files = args.pool + 2 * args.measure
    paths = write_shards(args.out / f"shards-{args.rows}", files, args.rows, args.seed)
    generated = time.perf_counter() - t0
    log(f"{len(paths)} shards of {args.rows:,} rows ({generated:.1f}s)")
    pool, small, large = (
        paths[: args.pool],
        paths[args.pool : args.pool + args.measure],
        paths[args.pool + args.measure :],
    )

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    ensure_database(url, fresh=True)
    engine = make_engine(url)
    upgrade(engine)
    store = TimedStore(engine)

    t1 = time.perf_counter()
    pooled = ingest_shards(_job(store, alerts=None), pool)
    if any(r.outcome != "done" for r in pooled):
        raise SystemExit(f"pool ingest did not complete: {[r.outcome for r in pooled]}")
    pool_ids = [r.shard_id for r in pooled if r.shard_id is not None]
    log(f"pool of {len(pool)} ingested ({time.perf_counter() - t1:.1f}s)")
    commit_small, wall_small, judged_small = measure(store, small)
    stored_small = args.pool + args.measure
    log(f"measured at {stored_small} stored: commit {commit_small * 1000:.1f} ms")
    t2 = time.perf_counter()
    cloned = clone_shards(engine, pool_ids, args.shards - args.measure, str(args.out))
    log(f"cloned {cloned} ({time.perf_counter() - t2:.1f}s)")
    commit_large, wall_large, judged_large = measure(store, large)
    built = time.perf_counter() - t0
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).where(t.Shard.status == "done"))

    t3 = time.perf_counter()
    library = dataset_report(store, DATASET)
    in_process = time.perf_counter() - t3
    for _ in range(args.repeat - 1):
        t3 = time.perf_counter()
        library = dataset_report(store, DATASET)
        in_process = min(in_process, time.perf_counter() - t3)
    engine.dispose()
    wall, stdout = time_cli(url, args.repeat, "report", "--json", "--dataset", DATASET)
    startup, _ = time_cli(url, args.repeat, "--version")
    total = json.loads(stdout)["total"]
    assert isinstance(total, dict)
    terms = len(total["terms"])
    if total["shards"] != stored or total["rows"] != stored * args.rows:
        raise SystemExit(f"unexpected report: {total['shards']} shards, {total['rows']} rows")
    if total != library.total.to_dict():
        raise SystemExit("the CLI's total differs from the library's")

    ratio = commit_large / commit_small

    def judged(value: float | None) -> str:
        return "in every commit" if value is None else f"{value * 1000:.0f} ms once per pass"

    print(f"store              {masked(url)}")
    print(f"shards x terms     {stored} x {terms} ({args.rows:,} rows each)")
    print(
        f"build              {built:.1f} s (generate {generated:.1f} s, pool {args.pool}, "
        f"cloned {cloned}, {2 * args.measure} timed)"
    )
    print("                   per-shard commit   per-shard ingest   dataset rules")
    for stored_at, commit, wall_at, judged_at in (
        (stored_small, commit_small, wall_small, judged_small),
        (stored, commit_large, wall_large, judged_large),
    ):
        print(
            f"at {stored_at:>6} stored   {commit * 1000:9.1f} ms       {wall_at * 1000:9.1f} ms"
            f"       {judged(judged_at)}"
        )
    print(
        f"commit ratio       {ratio:.2f}x (target <= {COMMIT_RATIO_TARGET:g}x) "
        f"{verdict(ratio <= COMMIT_RATIO_TARGET)}"
    )
    print(f"report (library)   {in_process:.3f} s in process, best of {args.repeat}")
    print(
        f"report (CLI)       {wall:.3f} s wall, best of {args.repeat} (target <= "
        f"{REPORT_TARGET_S:g} s) {verdict(wall <= REPORT_TARGET_S)}"
    )
    print(f"start-up           {startup:.3f} s wall, best of {args.repeat}, `shardwatch --version`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
