"""A worker process for the store tests: `ingest_shards` over SHARD... with its own owner id.

    python tests/support/ingest_worker.py --url URL --owner NAME [--lease S] [--seed N]
        [--ready FILE --go FILE] [--hang FILE] [--alerts] [--delay S] SHARD...

Prints one JSON line per shard outcome as it happens (`{"uri", "outcome", "shard_id", ...}`).
`--seed` shuffles the shard order. `--ready`/`--go`: after the imports, create the ready file
and wait for the go file, so that several workers start together. `--hang`: inside each
shard's transaction, once its rows are flushed, write the row counts that transaction sees to
the hang file and sleep (the test SIGKILLs the process there). Hooks live here, never in the
production code. `--alerts`: judge `ALERTS` (any NSFW-tagged row breaches, per shard and
for the dataset) with one channel, `team`. `--delay`: sleep S seconds at the end of each
shard's transaction, just before it commits (widens any race between workers).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from shardwatch.core.alerts import AlertPlan, Rule
from shardwatch.core.profiles import LAION400M
from shardwatch.pipeline.ingest import IngestJob, IngestResult, ingest_shards
from shardwatch.store.database import make_engine
from shardwatch.store.repository import ResultStore
from support.store_checks import DATASET, LEXICON, SHARD_RESULT_TABLES

ALERTS = AlertPlan((Rule("tag", "nsfw_tag_rate", max=0.0),), ("team",))


def _hang_hook(signal_file: Path):  # type: ignore[no-untyped-def]
    def hook(session: Session) -> None:
        seen = {
            name: int(session.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
            for name in SHARD_RESULT_TABLES
        }
        tmp = signal_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "uncommitted": seen}))
        tmp.replace(signal_file)  # atomic: the test never reads half a file
        time.sleep(600)

    return hook


def _before_commit(hang: Path | None, delay: float | None):  # type: ignore[no-untyped-def]
    if hang is not None:
        return _hang_hook(hang)
    if delay is not None:
        return lambda _session: time.sleep(delay)
    return None


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"worker: {path} did not appear within {timeout} s")
        time.sleep(0.005)


def _emit(result: IngestResult) -> None:
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--go", type=Path)
    parser.add_argument("--hang", type=Path)
    parser.add_argument("--alerts", action="store_true")
    parser.add_argument("--delay", type=float)
    parser.add_argument("shards", nargs="+", type=Path)
    args = parser.parse_args()

    paths = list(args.shards)
    if args.seed is not None:
        random.Random(args.seed).shuffle(paths)
    engine = make_engine(args.url)
    try:
        store = ResultStore(engine)
        if args.ready is not None:
            args.ready.touch()
            _wait_for(args.go, timeout=60)
        job = IngestJob(
            store=store,
            dataset=DATASET,
            profile=LAION400M,
            lexicon=LEXICON,
            lease_seconds=args.lease,
            owner=args.owner,
            workers=1,
            before_commit=_before_commit(args.hang, args.delay),
            alerts=ALERTS if args.alerts else None,
            max_attempts=None,
        )
        ingest_shards(job, paths, on_result=_emit)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
