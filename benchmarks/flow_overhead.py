"""End-to-end overhead of the monitor flow on one LAION-400M-like shard vs a bare scan.

Generates (or reuses) a deterministic 12.9M-row shard, then times, each in a fresh process:
1. `shardwatch scan SHARD --json` (the bare streaming engine);
2. `shardwatch run` on a local source holding only that shard, into an empty SQLite store
   (Prefect's ephemeral API start-up, discovery, hashing, footer check, scan, GX validation
   unless --no-validate, the results transaction, alerts, Data Docs and the report);
3. the same `shardwatch run` again: nothing is new, so this is the flow's fixed cost.
Prints the wall times, peak RSS, and the ratio of (2) to (1). Opt-in: a few minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB of the child, stdout); the command must succeed or exit 1."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return wall, max(before, after) / 1024, done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=12_900_000, help="rows (default 12.9M)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", type=Path, help="default .shardwatch/bench/laion_like_N.parquet")
    parser.add_argument("--no-validate", action="store_true", help="skip GX validation")
    args = parser.parse_args(argv)
    shard = (args.shard or ROOT / f".shardwatch/bench/laion_like_{args.rows}.parquet").resolve()
    if not shard.is_file():
        from shardwatch.demo.synth import write_shard

        shard.parent.mkdir(parents=True, exist_ok=True)
        log(f"generating {shard} ({args.rows:,} rows) ...")
        write_shard(shard, args.rows, args.seed, log=log)
    exe = str(Path(sys.executable).with_name("shardwatch"))
    with tempfile.TemporaryDirectory(prefix="sw-flow-bench-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDWATCH_")}
        env.update(PREFECT_HOME=str(work / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        config = work / "shardwatch.toml"
        config.write_text(
            f'dataset = "bench"\n[validation]\nenabled = {str(not args.no_validate).lower()}\n'
            f'suites_dir = "{ROOT / "expectations"}"\n'
            f'[sources.bench]\ntype = "local"\npath = "{shard}"\n'
        )
        log("bare scan ...")
        scan_s, scan_rss, _ = timed([exe, "scan", str(shard), "--json"], work, env)
        log("monitor flow, first pass ...")
        flow_s, flow_rss, out = timed([exe, "run", "--config", str(config)], work, env)
        log("monitor flow, second pass (nothing new) ...")
        idle_s, _, idle_out = timed([exe, "run", "--config", str(config)], work, env)
    size = shard.stat().st_size / 1e6
    print(f"\nshard: {shard} ({args.rows:,} rows, {size:,.0f} MB), {os.cpu_count()} CPUs, "
          f"validation {'off' if args.no_validate else 'on'}")
    print(f"  bare `shardwatch scan`:        {scan_s:7.1f} s   peak RSS {scan_rss:,.0f} MiB")
    print(f"  `shardwatch run`, first pass:  {flow_s:7.1f} s   peak RSS (max so far) "
          f"{flow_rss:,.0f} MiB")
    print(f"  `shardwatch run`, nothing new: {idle_s:7.1f} s   (Prefect start-up + discovery)")
    print(f"  flow / bare scan: {flow_s / scan_s:.2f}x; flow minus fixed cost: "
          f"{(flow_s - idle_s) / scan_s:.2f}x the scan")
    print("  first pass said: " + " | ".join(
        line for line in out.splitlines() if line.startswith(("run ", "done", "alerts"))))
    print("  second pass said: " + " | ".join(
        line for line in idle_out.splitlines() if line.startswith("run ")))


if __name__ == "__main__":
    main()
