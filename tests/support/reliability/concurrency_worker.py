"""The worker process of the concurrency and soak scenarios (7 and 10): `ingest_shards` over
SHARD... with its own claim owner, reporting every claim call and every outcome.

    PYTHONPATH=src:tests python tests/support/reliability/concurrency_worker.py --url URL
        --owner NAME [--lease S] [--seed N] [--ready FILE [--go FILE]] [--until-done SECONDS]
        [--alerts] SHARD...

Prints JSON lines on stdout, flushed as they happen, each with its wall-clock time `t`:
  {"event": "claim", "shard_id", "ok", "seconds"}   one per `ResultStore.claim` call, timed
                                                     from the call to its return
  {"event": "result", "uri", "outcome", "shard_id", ...}   one per shard outcome
  {"event": "pass", "busy": N}                      the end of one pass over the shards
`--seed` shuffles the shard order. `--ready`: create FILE once imported and connected;
`--go`: then wait for that file, so that several workers start together. `--until-done`:
after a pass, go over the shards reported `busy` again (held by another worker, perhaps a
dead one whose lease has yet to expire) until none is, giving up (exit 1) after SECONDS.
`--alerts`: judge tests/support/ingest_worker.py's `ALERTS` as the monitor does with alerts
on: the shard rules in each shard's transaction, the dataset rules once after each pass.
The timing wrapper lives here, never in the production code.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from shardwatch.core.profiles import LAION400M
from shardwatch.pipeline.ingest import IngestJob, IngestResult, ingest_shards
from shardwatch.store.database import make_engine
from shardwatch.store.repository import ResultStore
from support.ingest_worker import ALERTS
from support.store_checks import DATASET, LEXICON


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({**record, "t": time.time()}) + "\n")
    sys.stdout.flush()


class TimedStore(ResultStore):
    """The real store; each claim call is timed and reported."""

    def claim(self, shard_id: int, owner: str, lease_seconds: float, force: bool = False) -> bool:
        start = time.perf_counter()
        ok = super().claim(shard_id, owner, lease_seconds, force)
        seconds = time.perf_counter() - start
        emit({"event": "claim", "shard_id": shard_id, "ok": ok, "seconds": seconds})
        return ok


def _on_result(result: IngestResult) -> None:
    emit({"event": "result", **asdict(result)})


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"worker: {path} did not appear within {timeout} s")
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--go", type=Path)
    parser.add_argument("--until-done", type=float)
    parser.add_argument("--alerts", action="store_true")
    parser.add_argument("shards", nargs="+", type=Path)
    args = parser.parse_args()

    paths = list(args.shards)
    if args.seed is not None:
        random.Random(args.seed).shuffle(paths)
    engine = make_engine(args.url)
    try:
        store = TimedStore(engine)
        store.dataset_id(DATASET)  # connected (and the dataset exists) before `ready`
        if args.ready is not None:
            args.ready.touch()
        if args.go is not None:
            _wait_for(args.go, timeout=60)
        deadline = time.monotonic() + (args.until_done or 0.0)
        while True:
            job = IngestJob(
                store=store,
                dataset=DATASET,
                profile=LAION400M,
                lexicon=LEXICON,
                lease_seconds=args.lease,
                owner=args.owner,
                workers=1,
                alerts=ALERTS if args.alerts else None,
                max_attempts=None,
            )
            results = ingest_shards(job, paths, on_result=_on_result)
            busy = {r.uri for r in results if r.outcome == "busy"}
            emit({"event": "pass", "busy": len(busy)})
            if not busy or args.until_done is None:
                break
            if time.monotonic() > deadline:
                sys.exit(f"worker {args.owner}: {len(busy)} shard(s) still busy")
            paths = [p for p in paths if str(p.resolve()) in busy]
            time.sleep(0.1)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
