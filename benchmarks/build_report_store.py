"""Build a results store of 500 shards x 25 terms and time `shardwatch report --json` on it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shardwatch.core.lexicon import BIRHANE2021, Lexicon, Pattern
from shardwatch.core.profiles import LAION400M
from shardwatch.demo.synth import Generator
from shardwatch.pipeline.ingest import IngestJob, IngestResult, ingest_shards
from shardwatch.scan.engine import CompiledLexicon
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


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


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


def ensure_database(url: str) -> None:
    """Create a PostgreSQL database named in `url` if it does not exist yet."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = create_engine(
        parsed.set(drivername="postgresql+psycopg2", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shards", type=int, default=500)
    p.add_argument("--rows", type=int, default=2000, help="rows per shard")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="shards and the SQLite store")
    p.add_argument(
        "--database-url",
        help="SQLAlchemy URL of the store (default: SQLite under --out); a PostgreSQL "
        "database that does not exist is created",
    )
    p.add_argument("--repeat", type=int, default=3, help="report runs (best of N)")
    args = p.parse_args(argv)

    url = args.database_url or f"sqlite:///{args.out / 'report_store.sqlite'}"
    t0 = time.perf_counter()
    paths = write_shards(args.out / "shards", args.shards, args.rows, args.seed)
    generated = time.perf_counter() - t0
    log(f"{len(paths)} shards of {args.rows:,} rows under {args.out / 'shards'} ({generated:.1f}s)")

    ensure_database(url)
    engine = make_engine(url)
    upgrade(engine)
    store = ResultStore(engine)
    outcomes: dict[str, int] = {}

    def count(result: IngestResult) -> None:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        done = sum(outcomes.values())
        if done % 100 == 0:
            log(f"ingested {done}/{len(paths)}: {outcomes}")

    t1 = time.perf_counter()
    job = IngestJob(
        store=store,
        dataset=DATASET,
        profile=LAION400M,
        lexicon=CompiledLexicon(LEXICON),
        lease_seconds=600,
        workers=1,
        max_attempts=None,
    )
    ingest_shards(job, paths, on_result=count)
    ingested = time.perf_counter() - t1
    if outcomes.get("failed") or outcomes.get("busy") or outcomes.get("lost"):
        raise SystemExit(f"ingest did not complete: {outcomes}")

    t2 = time.perf_counter()
    library = dataset_report(store, DATASET)
    in_process = time.perf_counter() - t2
    engine.dispose()
    wall, stdout = time_cli(url, args.repeat, "report", "--json", "--dataset", DATASET)
    startup, _ = time_cli(url, args.repeat, "--version")
    total = json.loads(stdout)["total"]
    assert isinstance(total, dict)
    terms = len(total["terms"])
    if total["shards"] != args.shards or total["rows"] != args.shards * args.rows:
        raise SystemExit(f"unexpected report: {total['shards']} shards, {total['rows']} rows")
    if total != library.total.to_dict():
        raise SystemExit("the CLI's total differs from the library's")

    print(f"store            {masked(url)}")
    print(f"shards x terms   {args.shards} x {terms} ({args.rows:,} rows each)")
    print(
        f"build            {generated + ingested:.1f} s (generate {generated:.1f} s, ingest "
        f"{ingested:.1f} s: {outcomes})"
    )
    print(f"report (library) {in_process:.3f} s, in process")
    print(
        f"report (CLI)     {wall:.3f} s wall, best of {args.repeat}, "
        "`shardwatch report --json` including interpreter start-up"
    )
    print(f"start-up         {startup:.3f} s wall, best of {args.repeat}, `shardwatch --version`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
