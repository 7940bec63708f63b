"""Slot utilisation of a monitor pass with one shard 8x larger than the others.

Generates (or reuses) 7 LAION-like shards of --rows rows and one of 8 x --rows (listed
first), then runs `shardwatch run` (thread runner, `monitor.concurrency` = 2, validation off,
a fresh SQLite store) in a fresh process, with its temporary Prefect server. Each shard's busy
interval is its `shard` task's run (fetch, check, scan, store), read from that server's
database. Prints, side by side from that one run:
- the rolling queue's utilisation: sum of busy time / (slots x (last task end - first task start));
- what fixed groups of `concurrency` shards (the flow before issue 19) would reach with the
  same durations: each group lasts as long as its slowest shard;
and PASS or MISS against the target: the rolling queue keeps the slots at least 90% busy
(fixed groups: about 70% in issue 19). Opt-in: about a minute.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLOTS, SMALL, TARGET = 2, 7, 0.90


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def shards(folder: Path, rows: int) -> list[Path]:
    """part-0 (8 x rows) and part-1..7 (rows each), generated once."""
    from shardwatch.demo.synth import write_shard

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(SMALL + 1):
        n = rows * 8 if i == 0 else rows
        path = folder / f"part-{i}-{n}.parquet"
        if not path.is_file():
            log(f"generating {path.name} ({n:,} rows) ...")
            write_shard(path, n, seed=i)
        paths.append(path)
    return paths


def busy_intervals(prefect_db: Path) -> list[tuple[datetime, datetime]]:
    """Each `shard` task's run (fetch, check, scan, store), from the temporary Prefect
    server's own database."""
    with sqlite3.connect(prefect_db) as conn:
        rows = conn.execute(
            "SELECT start_time, end_time FROM task_run WHERE name LIKE 'shard-%'"
        ).fetchall()
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in rows]


def fixed_groups_wall(durations: list[float], slots: int) -> float:
    """Groups of `slots` shards in listing order, each waiting for its slowest."""
    return sum(max(durations[i : i + slots]) for i in range(0, len(durations), slots))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=500_000, help="rows per small shard")
    parser.add_argument("--out", type=Path, default=ROOT / ".shardwatch/bench/rolling")
    args = parser.parse_args(argv)
    paths = shards(args.out.resolve(), args.rows)
    exe = str(Path(sys.executable).with_name("shardwatch"))
    with tempfile.TemporaryDirectory(prefix="sw-rolling-bench-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDWATCH_")}
        env.update(PREFECT_HOME=str(work / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        config = work / "shardwatch.toml"
        config.write_text(
            'dataset = "bench"\n[validation]\nenabled = false\n[alerts]\nenabled = false\n'
            f'[monitor]\nconcurrency = {SLOTS}\n'
            f'[sources.bench]\ntype = "local"\npath = "{paths[0].parent}/part-*.parquet"\n'
        )
        log("shardwatch run ...")
        t0 = time.perf_counter()
        done = subprocess.run(
            [exe, "run", "--config", str(config)], cwd=work, env=env, capture_output=True,
            text=True, check=False,
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"shardwatch run exited {done.returncode}:\n{done.stderr[-2000:]}")
        intervals = busy_intervals(work / "prefect" / "prefect.db")
    if len(intervals) != SMALL + 1:
        sys.exit(f"expected {SMALL + 1} shards stored, found {len(intervals)}")
    ordered = sorted(intervals)
    durations = [(b - a).total_seconds() for a, b in ordered]
    span = (max(b for _, b in ordered) - ordered[0][0]).total_seconds()
    busy = sum(durations)
    rolling = busy / (SLOTS * span)
    fixed = busy / (SLOTS * fixed_groups_wall(durations, SLOTS))
    verdict = "PASS" if rolling >= TARGET else "MISS"
    print(f"\n{SMALL} shards of {args.rows:,} rows + 1 of {8 * args.rows:,}, {SLOTS} slots "
          f"(thread runner), {os.cpu_count()} CPUs; `shardwatch run` {wall:.1f} s wall")
    print("  busy time (task run), per shard: "
          + ", ".join(f"{d:.1f}" for d in durations) + " s")
    print(f"  {'':32} {'pass span':>10} {'utilisation':>12}   target")
    print(f"  {'rolling queue (measured)':32} {span:9.1f}s {rolling:11.0%}    >= {TARGET:.0%}"
          f"  {verdict}")
    print(f"  {'fixed groups (same durations)':32} {fixed_groups_wall(durations, SLOTS):9.1f}s "
          f"{fixed:11.0%}")


if __name__ == "__main__":
    main()
