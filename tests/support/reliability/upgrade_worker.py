"""The worker of the killed-upgrade scenario (test_killed_upgrade.py): forks one child per job,
each running `shardwatch db upgrade` (the CLI, in the child) on its database and SIGKILLing
itself at a chosen point.

    PYTHONPATH=src:tests python tests/support/reliability/upgrade_worker.py JOBS.json

JOBS.json is a list of `{"url": URL, "stop": K | "commit" | null}`:
- `K`: the child kills itself just before the K-th SQL statement it would execute (counted
  from 1 over the whole command, migrations and bookkeeping alike);
- `"commit"`: just before the first COMMIT that follows a statement touching
  `alembic_version` (the upgrade's own commit, every migration run);
- `null`: no kill; the child reports how many statements it ran before each COMMIT;
- `{"fraction": F}`: `K` = F times the statements the last `null` job ran up to its last
  COMMIT (at least 1), so one run can count a clean upgrade and then kill inside it.

The parent imports everything once, then forks the children one after the other and prints
`{"job": I, "signal": N, "code": N, "statements": [...]}` per child (`statements` only for a
child that was not killed). The hooks live here, never in the production code.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from shardwatch.cli import root as cli


def child(job: dict[str, Any], report: Path) -> None:
    stop = job["stop"]
    seen = {"statements": 0, "versioned": False}
    commits: list[int] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen["statements"] = int(seen["statements"]) + 1
        if stop == seen["statements"]:
            os.kill(os.getpid(), signal.SIGKILL)
        if "alembic_version" in statement:
            seen["versioned"] = True

    def commit(_conn: Any) -> None:
        if stop == "commit" and seen["versioned"]:
            os.kill(os.getpid(), signal.SIGKILL)
        commits.append(int(seen["statements"]))

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "commit", commit)
    os.environ["SHARDWATCH_DATABASE_URL"] = job["url"]
    try:
        cli.app(["db", "upgrade"], standalone_mode=False)
    finally:
        report.write_text(json.dumps(commits))


def main() -> None:
    jobs = json.loads(Path(sys.argv[1]).read_text())
    total = 0
    for i, job in enumerate(jobs):
        if isinstance(job["stop"], dict):
            job = {**job, "stop": max(1, int(total * job["stop"]["fraction"]))}
        report = Path(sys.argv[1]).with_name(f"commits-{i}.json")
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child(job, report)
            except BaseException as exc:
                print(f"job {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
                code = 3
            finally:
                sys.stdout.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        record: dict[str, Any] = {
            "job": i,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        }
        if report.exists():
            record["statements"] = json.loads(report.read_text())
            total = record["statements"][-1] if record["statements"] else total
        record["stop"] = job["stop"]
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
