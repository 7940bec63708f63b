"""Peak RSS and wall time of validating one LAION-400M-like shard with Great Expectations."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SUITES_DIR = Path(__file__).resolve().parents[1] / "expectations"
SUITE, DATASET = "laion400m", "laion_like"
RSS_TARGET_MB = 2560.0
MIB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def peak_mib() -> float:
    """This process's peak RSS so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """This process's current RSS, from /proc (0 where there is no /proc)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------- phases (children)
def phase_generate(args: argparse.Namespace) -> dict[str, Any]:
    from shardwatch.demo.synth import write_shard

    t0 = time.perf_counter()
    write_shard(args.shard, args.rows, args.seed, args.row_group_size, log=log)
    wall = time.perf_counter() - t0
    log(f"generated {args.shard} in {wall:.1f}s ({args.shard.stat().st_size / 1e6:,.0f} MB)")
    return {"wall_s": wall}


def phase_scan(args: argparse.Namespace) -> dict[str, Any]:
    """The bare streaming scan: metrics only, no feature table."""
    t0 = time.perf_counter()
    from shardwatch.core.lexicon import BIRHANE2021
    from shardwatch.core.profiles import LAION400M
    from shardwatch.scan.engine import scan_shard

    t1 = time.perf_counter()
    metrics = scan_shard(args.shard, LAION400M, BIRHANE2021, workers=args.workers)
    t2 = time.perf_counter()
    return {"rows": metrics.rows, "import_s": t1 - t0, "scan_s": t2 - t1, "wall_s": t2 - t0,
            "peak_rss_mib": peak_mib()}


def phase_validate(args: argparse.Namespace) -> dict[str, Any]:
    """What `shardwatch ingest` does per shard with a validator: scan collecting the feature
    batches, one table from them, validate (GX checkpoint), publish (Data Docs page)."""
    steps: dict[str, dict[str, float]] = {}
    t0 = last = time.perf_counter()

    def mark(step: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[step] = {"s": now - last, "peak_rss_mib": peak_mib(), "rss_mib": rss_mib()}
        last = now
        s = steps[step]
        log(f"validate phase, {step}: {s['s']:.2f}s, RSS now {s['rss_mib']:,.0f} MiB, "
            f"peak so far {s['peak_rss_mib']:,.0f} MiB")

    from shardwatch.core.lexicon import BIRHANE2021
    from shardwatch.core.profiles import LAION400M
    from shardwatch.scan.engine import scan_shard
    from shardwatch.validate.compact import FeatureCollector
    from shardwatch.validate.gx_adapter import GxPaths, GxValidator

    validator = GxValidator(GxPaths(args.workdir / "gx", args.workdir / "docs"), SUITES_DIR, SUITE)
    validator.checkpoint(SUITE)  # suite load and GX objects: not part of the per-shard cost
    mark("setup")

    collector = FeatureCollector()  # as ingest does: features compacted while scanning
    scan_shard(args.shard, LAION400M, BIRHANE2021, workers=args.workers, on_features=collector)
    n_batches = len(collector.batches)
    table = collector.table()  # the table holds the only references
    rows, nbytes, columns = table.num_rows, table.nbytes, table.num_columns
    mark("scan_collect")

    validation = validator.validate(table, DATASET, 1, 1)
    del table
    mark("validate")

    validator.publish(validation)
    mark("publish")

    page = Path(validation.docs_page) if validation.docs_page else None
    return {
        "rows": rows,
        "batches": n_batches,
        "feature_columns": columns,
        "feature_bytes": nbytes,
        "steps": steps,
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mib": peak_mib(),
        "summary": validation.summary(),
        "counts": {s: validation.count(s) for s in ("passed", "failed", "errored")},
        "not_passed": [c.describe() for c in validation.checks if c.status != "passed"],
        "docs_page_written": bool(page and page.is_file()),
    }


PHASES = {"generate": phase_generate, "scan": phase_scan, "validate": phase_validate}


# ---------------------------------------------------------------------------- parent
def run_phase(phase: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase in a child (so its peak RSS is its own) and read its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase,
           "--rows", str(args.rows), "--seed", str(args.seed), "--shard", str(args.shard),
           "--workdir", str(args.workdir), "--workers", str(args.workers),
           "--row-group-size", str(args.row_group_size)]
    log(f"{phase}: running in a child ...")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"phase {phase} exited {proc.returncode}")
    lines = proc.stdout.strip().splitlines()
    try:
        doc: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as e:
        raise RuntimeError(f"phase {phase}: no JSON line on stdout ({e}): "
                           f"{proc.stdout[-300:]!r}") from e
    doc["process_s"] = wall  # including interpreter start-up and imports
    if "peak_rss_mib" in doc:
        log(f"{phase}: {doc['wall_s']:.2f}s, peak RSS {doc['peak_rss_mib']:,.0f} MiB")
    return doc


def report(args: argparse.Namespace, scan: dict[str, Any], val: dict[str, Any]) -> bool:
    steps, target = val["steps"], args.rss_target_mb
    ok = val["peak_rss_mib"] <= target
    ratio = val["wall_s"] / scan["wall_s"]
    per_shard = sum(steps[s]["s"] for s in ("scan_collect", "validate", "publish"))
    print(f"\nshard: {args.shard}\n  {val['rows']:,} rows, "
          f"{args.shard.stat().st_size / 1e6:,.0f} MB on disk, {os.cpu_count()} CPUs, "
          f"workers={args.workers}, load average {args.load:.1f} at start")
    print(f"  feature table: {val['feature_columns']} columns, {val['batches']} batches, "
          f"{val['feature_bytes'] / MIB:,.0f} MiB (table.nbytes before validation)\n")
    print(f"{'':36}{'wall (s)':>10}{'peak RSS (MiB)':>16}{'RSS after (MiB)':>17}")
    print(f"{'bare scan phase, total':36}{scan['wall_s']:>10.2f}{scan['peak_rss_mib']:>16,.0f}")
    print(f"  {'imports':34}{scan['import_s']:>10.2f}")
    print(f"  {'scan (no features)':34}{scan['scan_s']:>10.2f}")
    print(f"{'validate phase, total':36}{val['wall_s']:>10.2f}{val['peak_rss_mib']:>16,.0f}")
    names = {"setup": "imports + GX context + suite",
             "scan_collect": "scan + collect (compacted)",
             "validate": "validate (narrow frames, GX)", "publish": "publish (Data Docs page)"}
    for key, label in names.items():
        s = steps[key]
        print(f"  {label:34}{s['s']:>10.2f}{s['peak_rss_mib']:>16,.0f}{s['rss_mib']:>17,.0f}")
    print("  (peak RSS per step: the process's peak so far, at the end of that step)")
    print(f"\nvalidate phase total / bare scan phase total:           {ratio:.2f}x")
    print(f"per shard (scan+collect, validate, publish) / bare scan: "
          f"{per_shard / scan['scan_s']:.2f}x")
    print(f"checks: {val['summary']}")
    for line in val["not_passed"]:
        print(f"  {line}")
    print(f"Data Docs page written: {'yes' if val['docs_page_written'] else 'NO'}")
    print(f"\ntarget: validate peak RSS <= {target:,.0f} MiB: {val['peak_rss_mib']:,.0f} MiB  "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


HELP = """Generates (or reuses) a deterministic LAION-400M-like parquet shard, then runs two
phases, each in its own child process so each peak RSS is its own (getrusage in the child):
`scan`, the bare shardwatch scan (laion400m profile, birhane2021 lexicon, no features); and
`validate`, what `shardwatch ingest` does per shard with a validator: scan collecting the feature
batches, pa.Table.from_batches, GX validation with expectations/laion400m.json, and publishing
the shard's Data Docs page (timed separately). Prints both, the ratio and PASS/FAIL of the
validate phase's peak RSS against --rss-target-mb. Exits 1 on FAIL, 2 if a phase fails."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"{__doc__}\n\n{HELP}",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--rows", type=int, default=12_900_000, help="rows to generate (default: one real part)")
    add("--seed", type=int, default=0, help="generator seed (default 0)")
    add("--shard", type=Path, help="existing shard to use (default .shardwatch/bench/"
        "laion_like_<rows>.parquet, or ..._<rows>_<seed>.parquet for a seed other than 0; "
        "generated if missing)")
    add("--workdir", type=Path, help="GX project and Data Docs folder (default: a temporary "
        "folder, removed afterwards)")
    add("--rss-target-mb", type=float, default=RSS_TARGET_MB,
        help=f"validate phase peak RSS target in MiB (default {RSS_TARGET_MB:.0f})")
    add("--workers", type=int, default=2, help="scan worker threads (default 2)")
    add("--row-group-size", type=int, default=1_048_576, help="rows per row group when generating")
    add("--phase", choices=sorted(PHASES), help="internal: run one phase, print its JSON line")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)), flush=True)
        return 0
    args.load = os.getloadavg()[0]
    if args.shard is None:
        suffix = "" if args.seed == 0 else f"_{args.seed}"
        args.shard = Path(f".shardwatch/bench/laion_like_{args.rows}{suffix}.parquet")
        if not args.shard.exists():  # in a child, so this process stays small
            run_phase("generate", args)
        else:
            log(f"reusing {args.shard}")
    elif not args.shard.is_file():
        print(f"error: {args.shard}: no such file", file=sys.stderr)
        return 2
    args.shard = args.shard.resolve()
    temp = args.workdir is None
    args.workdir = Path(tempfile.mkdtemp(prefix="validate_shard_")) if temp else args.workdir
    args.workdir = args.workdir.resolve()
    try:
        scan = run_phase("scan", args)
        val = run_phase("validate", args)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if temp:
            shutil.rmtree(args.workdir, ignore_errors=True)
    if scan["rows"] != val["rows"]:
        print(f"error: scan saw {scan['rows']:,} rows, validate {val['rows']:,}", file=sys.stderr)
        return 2
    return 0 if report(args, scan, val) else 1


if __name__ == "__main__":
    sys.exit(main())
