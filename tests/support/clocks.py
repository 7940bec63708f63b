"""Explicit clocks for the lease tests: a lease ends when the test says so, not when the wall
clock gets there (tests/README.md)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shardwatch.store.database import db_now

LONG_LEASE = 300.0  # seconds: never runs out by itself during a test; `expire_lease` ends it


def expire_lease(engine: Engine, shard_id: int) -> None:
    """The lease's time passes, explicitly instead of sleeping: the shard's lease expiry
    becomes 1 ms before now on the database's clock (the clock leases are judged by)."""
    with Session(engine) as s, s.begin():
        now = db_now(s)
        s.execute(
            text("UPDATE shards SET lease_expires_at = :at WHERE id = :id"),
            {"at": now - timedelta(milliseconds=1), "id": shard_id},
        )
