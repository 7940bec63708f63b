"""`shardwatch ingest` (default suite, fresh SQLite store) against a bare `shardwatch scan`.

Issue 19, target 1: ingest of one 12.9M-row shard takes at most 1.8x the bare scan of the same
file, at or under 1.5 GB peak RSS, with every verdict and count kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RATIO_TARGET = 1.8
RSS_TARGET_MB = 1500.0  # the 1.5 GB, in MB (10^6 bytes)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """One command in a child: wall time, peak RSS (os.wait4), exit code and its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDWATCH_")}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss * 1024 / 1e6, "rc": proc.returncode,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "stdout": stdout, "stderr": stderr}


def checks_of(stdout: str) -> list[tuple[Any, ...]]:
    """Every check of every shard in `ingest --json`'s output: (position, status, observed)."""
    doc = json.loads(stdout)
    found: list[tuple[Any, ...]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "position" in node and "status" in node and "expectation" in node:
                found.append((node["position"], node["expectation"], node["status"],
                              json.dumps(node.get("observed"), sort_keys=True)))
                return
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return sorted(found)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=12_900_000, help="rows of the generated shard")
    p.add_argument("--shard", type=Path, help="existing shard (default .shardwatch/bench/"
                   "laion_like_<rows>.parquet, generated if missing)")
    p.add_argument("--shardwatch", type=Path, default=Path(sys.executable).parent / "shardwatch",
                   help="the shardwatch executable to measure (default: this venv's)")
    p.add_argument("--repeat", type=int, default=1, help="alternate scan and ingest N times")
    p.add_argument("--keep", type=Path, help="write the ingest --json output of the last run here")
    args = p.parse_args(argv)
    shard = args.shard or Path(f".shardwatch/bench/laion_like_{args.rows}.parquet")
    if not shard.exists():
        log(f"generating {shard} ({args.rows:,} rows) ...")
        shard.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "validate_shard.py"), "--phase", "generate",
                        "--rows", str(args.rows), "--shard", str(shard)], check=True,
                       stdout=subprocess.DEVNULL)
    shard = shard.resolve()
    exe = str(args.shardwatch.absolute())
    scans, ingests = [], []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="ingest_vs_scan_") as tmp:
            cwd = Path(tmp)
            log(f"round {i + 1}: scan ...")
            scan = run([exe, "scan", "--json", str(shard)], cwd)
            if scan["rc"] != 0:
                print(f"error: scan exited {scan['rc']}: {scan['stderr'][-500:]}", file=sys.stderr)
                return 2
            log(f"round {i + 1}: ingest (fresh store in {cwd}) ...")
            ingest = run([exe, "ingest", "--json", "--no-alerts", str(shard)], cwd)
            if ingest["rc"] not in (0, 1):  # 1: a check failed, which the data may do
                print(f"error: ingest exited {ingest['rc']}: {ingest['stderr'][-500:]}",
                      file=sys.stderr)
                return 2
            ingest["checks"] = checks_of(ingest["stdout"])
            if args.keep:
                args.keep.write_text(ingest["stdout"])
            pages = list((cwd / ".shardwatch" / "docs").rglob("*.html"))
            ingest["pages"] = len(pages)
            shutil.rmtree(cwd / ".shardwatch", ignore_errors=True)
        log(f"round {i + 1}: scan {scan['wall_s']:.2f}s, ingest {ingest['wall_s']:.2f}s")
        scans.append(scan)
        ingests.append(ingest)
    best_scan = min(s["wall_s"] for s in scans)
    best_ingest = min(s["wall_s"] for s in ingests)
    ratio = max(i["wall_s"] / s["wall_s"] for s, i in zip(scans, ingests, strict=True))
    peak = max(i["peak_mb"] for i in ingests)
    print(f"\nshard: {shard.name} ({shard.stat().st_size / 1e6:,.0f} MB), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, {exe}")
    print(f"{'round':>5}  {'scan (s)':>9} {'scan RSS (MB)':>14}  {'ingest (s)':>10} "
          f"{'ingest RSS (MB)':>16}  {'ratio':>6}   {'CPU s: scan':>11} {'ingest':>7} {'ratio':>6}")
    for n, (s, i) in enumerate(zip(scans, ingests, strict=True), start=1):
        print(f"{n:>5}  {s['wall_s']:>9.2f} {s['peak_mb']:>14,.0f}  {i['wall_s']:>10.2f} "
              f"{i['peak_mb']:>16,.0f}  {i['wall_s'] / s['wall_s']:>5.2f}x   "
              f"{s['cpu_s']:>11.1f} {i['cpu_s']:>7.1f} {i['cpu_s'] / s['cpu_s']:>5.2f}x")
    print("(CPU s: user + system of the child, from wait4; less sensitive to other load than "
          "wall time)")
    last = ingests[-1]
    statuses = [c[2] for c in last["checks"]]
    print(f"checks: {len(statuses)} ({statuses.count('passed')} passed, "
          f"{statuses.count('failed')} failed, {statuses.count('errored')} errored); "
          f"Data Docs pages: {last['pages']}; ingest exit {last['rc']}")
    same = all(i["checks"] == last["checks"] for i in ingests)
    print(f"checks identical across rounds: {'yes' if same else 'NO'}")
    ok_ratio, ok_rss = ratio <= RATIO_TARGET, peak <= RSS_TARGET_MB
    print(f"\ningest / scan (worst round): {ratio:.2f}x   target <= {RATIO_TARGET}x   "
          f"{verdict(ok_ratio)}   (best: scan {best_scan:.2f}s, ingest {best_ingest:.2f}s)")
    print(f"ingest peak RSS (worst):     {peak:,.0f} MB   target <= {RSS_TARGET_MB:,.0f} MB   "
          f"{verdict(ok_rss)}")
    return 0 if ok_ratio and ok_rss else 1


if __name__ == "__main__":
    sys.exit(main())
