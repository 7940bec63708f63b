"""Export a multi-million-row shard's flagged rows and show that memory does not grow with it.

For each size in `--rows` (default 1M and 4M rows), writes a deterministic LAION-400M-like
shard with `shardwatch.demo.synth` (reused when present), ingests it into a SQLite results store
(validation and alerts off), then runs `python -m shardwatch export-flagged` on it as a child
process and prints the wall time, shard rows read per second, rows written, the output's size
and the child's peak RSS (`os.wait4`; the set-up runs in its own child, so the parent, whose
size a forked child's peak RSS starts from, stays small). Bounded memory shows as a peak RSS
that stays flat as the shard grows. The export's row count is checked against the stored
report (exit 1 if it differs) for rules the report has a figure for.

    .venv/bin/python benchmarks/export_memory.py                       # 1M and 4M rows
    .venv/bin/python benchmarks/export_memory.py --rows 2000000 12900000 --with-text
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".shardwatch" / "bench" / "export"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
# The report figure each rule's row count equals (absent: no stored figure).
FIGURES: dict[str, Any] = {
    "keyword-nsfw": lambda t: t.keyword_nsfw_rows,
    "tag-nsfw": lambda t: t.nsfw_flag_counts["NSFW"],
    "keyword-nsfw-tagged-unlikely": lambda t: t.keyword_nsfw_by_tag["UNLIKELY"],
    "below-similarity-cutoff": lambda t: t.similarity.below_threshold,
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def prepare(out: Path, rows: int, seed: int, database_url: str, rule: str) -> None:
    """In a child process (the parent stays small: a forked child's peak RSS starts at its
    parent's): write the shard and ingest it as its own dataset, both reused when present.
    Prints the dataset name and the report's figure for `rule` as JSON."""
    from shardwatch.core.lexicon import BIRHANE2021
    from shardwatch.core.profiles import LAION400M
    from shardwatch.demo import synth
    from shardwatch.pipeline.ingest import IngestJob, ingest_shards
    from shardwatch.scan.engine import CompiledLexicon
    from shardwatch.store.database import make_engine, upgrade
    from shardwatch.store.report import dataset_report
    from shardwatch.store.repository import ResultStore

    shard = out / f"laion_like_{rows}_{seed}.parquet"
    if not shard.is_file():
        log(f"generating {shard.name}")
        synth.write_shard(shard, rows, seed)
    dataset = f"bench-export-{rows}-{seed}"
    engine = make_engine(database_url)
    upgrade(engine)
    started = time.perf_counter()
    job = IngestJob(
        store=ResultStore(engine),
        dataset=dataset,
        profile=LAION400M,
        lexicon=CompiledLexicon(BIRHANE2021),
        lease_seconds=3600,
        max_attempts=None,
    )
    (result,) = ingest_shards(job, [shard])
    if result.outcome not in ("done", "skipped"):
        raise SystemExit(f"ingest of {shard} failed: {result.reason}")
    log(f"ingest {result.outcome} in {time.perf_counter() - started:.1f} s")
    figure = FIGURES.get(rule)
    expected = figure(dataset_report(engine, dataset).total) if figure else None
    print(json.dumps({"dataset": dataset, "expected": expected}))


def export(
    config: Path, dataset: str, rule: str, target: Path, with_text: bool
) -> tuple[float, int, str]:
    """Run the export in a child process: (wall seconds, peak RSS in KiB, summary line)."""
    cmd = [sys.executable, "-m", "shardwatch", "export-flagged", "--config", str(config)]
    cmd += ["--dataset", dataset, "--rule", rule, "--out", str(target), "--no-progress"]
    cmd += ["--with-text"] if with_text else []
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export failed ({status}):\n{stderr}")
    return wall, int(usage.ru_maxrss), stdout.strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rule", default="any-nsfw")
    p.add_argument("--with-text", action="store_true", help="Also write the captions.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{args.out / 'store.sqlite'}"
    if args.prepare_only:
        prepare(args.out, args.rows[0], args.seed, database_url, args.rule)
        return 0
    config = args.out / "shardwatch.toml"
    config.write_text(
        f'database_url = "{database_url}"\n[validation]\nenabled = false\n'
        "[alerts]\nenabled = false\n"
    )
    problems = 0
    results = []
    for rows in args.rows:
        setup = [sys.executable, __file__, "--prepare-only", "--rows", str(rows)]
        setup += ["--seed", str(args.seed), "--rule", args.rule, "--out", str(args.out)]
        ready = json.loads(subprocess.run(setup, check=True, capture_output=True, env=ENV).stdout)
        target = args.out / f"remove_{rows}.parquet"
        wall, rss_kib, line = export(config, ready["dataset"], args.rule, target, args.with_text)
        log(line)
        found = re.match(r"wrote ([\d,]+) rows", line)
        written = int(found.group(1).replace(",", "")) if found else -1
        if ready["expected"] is not None and written != ready["expected"]:
            log(f"MISMATCH: {written:,} rows written, the report says {ready['expected']:,}")
            problems += 1
        results.append((rows, wall, rss_kib, written, target.stat().st_size))

    text = " --with-text" if args.with_text else ""
    print(f"\nexport-flagged --rule {args.rule}{text}, one shard per size (start-up included)")
    print(f"{'shard rows':>12} {'wall s':>7} {'rows/s':>11} {'written':>10} {'out MiB':>8} "
          f"{'peak RSS MiB':>13}")  # fmt: skip
    for rows, wall, rss_kib, written, size in results:
        print(f"{rows:>12,} {wall:>7.1f} {rows / wall:>11,.0f} {written:>10,} "
              f"{size / 2**20:>8.1f} {rss_kib / 1024:>13,.0f}")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
