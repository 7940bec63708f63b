"""The worker process of the crash scenario (6): forks one ingest worker per job, each of which
stops at a chosen point of its shard and waits there to be SIGKILLed.

    PYTHONPATH=src:tests python tests/support/reliability/crash_worker.py --url URL
        --plan PLAN.json --pauses DIR [--parallel N]

PLAN.json is a list of jobs `{"shard": PATH, "owner": NAME, "pause": POINT, "force": BOOL,
"lease": SECONDS}`. The parent imports everything once, then forks one child per job (a fresh
interpreter per kill point would cost a second of CPU each), at most N (default 4) alive at a
time, so that each is killed soon after its claim. It prints
`{"event": "child", "job": I, "pid": PID}` per child, and `{"event": "exit", "job": I,
"signal": N, "code": N}` as each one ends. A child opens its own engine and runs
`ingest_shards` on its shard, judging tests/support/ingest_worker.py's `ALERTS` as the monitor does
with alerts on, and stops at POINT:

- `scan`: mid-shard: the claim is committed and the first batch of rows was scanned;
- `sql:K`: mid-transaction: right after the K-th statement of the shard's results transaction
  (`ResultStore.complete`), or just before its COMMIT if that has fewer statements;
- `commit`: just before COMMIT, every row flushed.

There it writes DIR/job-I.json: `{"pid", "point", "statement": K, "verb": "INSERT",
"uncommitted": {table: rows of its shard}}` (rows its own transaction sees; outside a
transaction for `scan`), then sleeps. A child that never reaches its point (it should)
prints its outcome and exits 3. The hooks live here, never in the production code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from shardwatch.core.profiles import LAION400M
from shardwatch.pipeline.ingest import IngestJob, ingest_shards
from shardwatch.store.database import make_engine
from shardwatch.store.repository import ResultStore
from support.ingest_worker import ALERTS
from support.store_checks import DATASET, LEXICON, SHARD_RESULT_TABLES

# Tables a shard's results transaction writes, counted for the shard (alerts: all rows).
PER_SHARD = (*SHARD_RESULT_TABLES, "shard_domains")
BATCH_ROWS = 16


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


class Pause:
    """Where a child stops, and what it reports there."""

    def __init__(self, job: int, point: str, pauses: Path) -> None:
        self.job, self.point, self.pauses = job, point, pauses
        self.after = int(point.split(":")[1]) if point.startswith("sql:") else None
        self.shard_id: int | None = None
        self.statements = 0  # statements of the results transaction so far
        self.verb = ""

    def stop(self, dbapi_conn: Any, where: str) -> None:
        """Report what this transaction sees (through its own DBAPI connection), then hang."""
        counts: dict[str, int] = {}
        if dbapi_conn is not None and self.shard_id is not None:
            cur = dbapi_conn.cursor()
            for name in PER_SHARD:  # allow-listed names; the id is an int
                cur.execute(f"SELECT count(*) FROM {name} WHERE shard_id = {int(self.shard_id)}")
                counts[name] = int(cur.fetchone()[0])
            for name in ("alerts", "alert_outbox"):
                cur.execute(f"SELECT count(*) FROM {name}")
                counts[name] = int(cur.fetchone()[0])
            cur.close()
        report = {
            "pid": os.getpid(),
            "t": time.time(),
            "point": where,
            "statement": self.statements,
            "verb": self.verb,
            "uncommitted": counts,
        }
        target = self.pauses / f"job-{self.job}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(report))
        tmp.replace(target)  # atomic: the test never reads half a file
        time.sleep(600)


class PausingStore(ResultStore):
    """The real store; `complete` marks the shard so the statement hook knows it is inside."""

    pause: Pause

    def complete(self, shard_id: int, *args: Any, **kwargs: Any) -> bool:
        self.pause.shard_id = shard_id
        self.pause.statements = 0
        return super().complete(shard_id, *args, **kwargs)


def run_child(url: str, job: int, spec: dict[str, Any], pauses: Path) -> None:
    engine = make_engine(url)
    pause = Pause(job, spec["pause"], pauses)
    store = PausingStore(engine)
    store.pause = pause

    @event.listens_for(engine, "after_cursor_execute")
    def _count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if pause.shard_id is None or pause.after is None:
            return
        pause.statements += 1
        pause.verb = statement.split(None, 1)[0].upper()
        if pause.statements == pause.after:
            pause.stop(conn.connection.dbapi_connection, f"after statement {pause.after}")

    def before_commit(session: Session) -> None:
        if pause.point != "scan":  # sql:K beyond the transaction's length stops here too
            dbapi = session.connection().connection.dbapi_connection
            pause.stop(dbapi, "before COMMIT")

    scanned = False

    def progress(_rows: int) -> None:
        nonlocal scanned
        if pause.point == "scan" and not scanned:
            scanned = True
            pause.stop(None, "mid-scan")

    ingest_job = IngestJob(
        store=store,
        dataset=DATASET,
        profile=LAION400M,
        lexicon=LEXICON,
        lease_seconds=float(spec["lease"]),
        owner=spec["owner"],
        force=bool(spec.get("force")),
        batch_size=BATCH_ROWS,
        workers=1,
        progress=progress,
        before_commit=before_commit,
        alerts=ALERTS,
        max_attempts=None,
    )
    results = ingest_shards(ingest_job, [Path(spec["shard"])])
    emit({"event": "unpaused", "job": job, "results": [asdict(r) for r in results]})
    sys.exit(3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--pauses", type=Path, required=True)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text())

    children: dict[int, int] = {}

    def reap_one() -> None:
        pid, status = os.wait()
        job = children.pop(pid)
        signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        emit({"event": "exit", "job": job, "signal": signal_number, "code": code})

    for job, spec in enumerate(plan):
        while len(children) >= args.parallel:
            reap_one()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                run_child(args.url, job, spec, args.pauses)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # report, never fall back into the parent's loop
                sys.stderr.write(f"job {job}: {type(exc).__name__}: {exc}\n")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = job
        emit({"event": "child", "job": job, "pid": pid})
    while children:
        reap_one()


if __name__ == "__main__":
    main()
