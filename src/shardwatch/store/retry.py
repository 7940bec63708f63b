"""Store operations that run again when the database server drops the connection or cannot
be reached yet (a restart, a terminated backend), for a bounded time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from shardwatch.store.boundary import server_unavailable
from shardwatch.store.errors import StoreUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

# A store operation whose connection dropped (the server restarted, the backend was
# terminated), or that could not connect because the server is down or still starting,
# runs again on a new connection (pool_pre_ping) for up to DISCONNECT_PATIENCE seconds, after
# DISCONNECT_PAUSE seconds, doubled each time up to DISCONNECT_PAUSE_MAX. A server down for
# longer fails the operation (and only the shard it was for: ingest goes on to the next).
DISCONNECT_PATIENCE = 30.0
DISCONNECT_PAUSE = 0.2
DISCONNECT_PAUSE_MAX = 2.0


def retry_on_disconnect(op: Callable[[bool], T]) -> T:
    """`op(False)`; while it fails because the server is unavailable, `op(True)` again.

    A dropped connection leaves the last COMMIT in doubt: the server may have committed and
    then lost the connection before replying. `op(True)` must therefore recognise its own
    committed work and not do it twice. Any other error is raised at once.
    """
    deadline = time.monotonic() + DISCONNECT_PATIENCE
    pause, retry = DISCONNECT_PAUSE, False
    while True:
        try:
            return op(retry)
        except (DBAPIError, StoreUnavailable) as exc:
            if not server_unavailable(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning(
                "database connection lost or refused (%s); retrying on a new connection",
                exc.driver if isinstance(exc, StoreUnavailable) else type(exc.orig).__name__,
            )
        retry = True
        time.sleep(pause)
        pause = min(pause * 2, DISCONNECT_PAUSE_MAX)
