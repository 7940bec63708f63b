"""Runs: a `runs` row never stays `running` once its process has ended.

A run that ends by an exception is closed `failed` by its caller (`ResultStore.fail_run`,
with the exception's type as the error). A process that never gets to say so (SIGKILL, the
OOM killer, a power cut) leaves its row `running`; the next run started anywhere closes it:

- a row of this host whose process id no longer exists: "its process ... ended";
- any row older than `STALE_AFTER` (its host may be another machine, whose processes
  cannot be seen from here): "still running after ...".

A process id can be reused, so a row of this host may stay `running` until the age rule
closes it; a closed run whose process was in fact alive is overwritten by its own
`finish_run` (the counts are never lost, only the status shown in between).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shardwatch.store import models as t

STALE_AFTER = timedelta(hours=24)
_HOST_CHARS = 255


def this_host() -> str:
    return socket.gethostname()[:_HOST_CHARS]


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_ended_runs(s: Session) -> int:
    """Mark `failed` every `running` row whose process has ended (module docstring); the
    number closed."""
    host, now = this_host(), t.utcnow()
    rows = s.execute(
        select(t.Run.id, t.Run.host, t.Run.pid, t.Run.started_at).where(t.Run.status == "running")
    ).all()
    closed = 0
    for run_id, run_host, pid, started in rows:
        if run_host == host and pid is not None and pid != os.getpid() and not pid_alive(pid):
            error = f"its process (pid {pid}) ended without finishing the run"
        elif started is not None and _aware(started) < now - STALE_AFTER:
            error = f"still running after {STALE_AFTER}: its process is presumed gone"
        else:
            continue
        s.execute(
            update(t.Run)
            .where(t.Run.id == run_id, t.Run.status == "running")
            .values(status="failed", finished_at=now, error=error)
        )
        closed += 1
    return closed


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes: they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
