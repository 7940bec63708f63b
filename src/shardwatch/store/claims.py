"""Claims: a shard is leased to one worker at a time (FOR UPDATE SKIP LOCKED on PostgreSQL),
and a retried claim recognises its own committed lease."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from shardwatch.store import models as t
from shardwatch.store.boundary import translated
from shardwatch.store.database import db_now, is_sqlite, transaction
from shardwatch.store.retry import retry_on_disconnect


class Claims:
    """ResultStore's claim operations (a mixin: `engine` and `sessions` are the store's)."""

    engine: Engine
    sessions: sessionmaker[Session]

    @translated
    def claim(self, shard_id: int, owner: str, lease_seconds: float, force: bool = False) -> bool:
        """Take the shard for processing if nobody holds a live lease on it.

        Claimable: discovered or failed shards, processing shards whose lease expired, and
        (with `force`) done shards. On PostgreSQL the row is locked with FOR UPDATE SKIP
        LOCKED, so concurrent claimers never wait on each other; SQLite serialises writers.
        If the connection drops, a retry that finds the lease already ours (the COMMIT landed)
        returns True.
        """
        return retry_on_disconnect(
            lambda retry: (
                self._claim(shard_id, owner, lease_seconds, force)
                or (retry and self._leased_to(shard_id, owner))
            )
        )

    def _claim(self, shard_id: int, owner: str, lease_seconds: float, force: bool) -> bool:
        with transaction(self.sessions) as s:
            now = db_now(s)  # one clock for every worker, whatever its host's
            statuses = ["discovered", "failed", *(["done", "quarantined"] if force else [])]
            claimable = or_(
                t.Shard.status.in_(statuses),
                (t.Shard.status == "processing") & (t.Shard.lease_expires_at < now),
            )
            query = select(t.Shard.id).where(t.Shard.id == shard_id, claimable)
            if not is_sqlite(self.engine):
                query = query.with_for_update(skip_locked=True)
            if s.scalar(query) is None:
                return False
            result = s.execute(
                update(t.Shard)
                .where(t.Shard.id == shard_id, claimable)
                .values(
                    status="processing",
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=t.Shard.attempts + 1,
                    started_at=now,
                    reason=None,
                )
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def _leased_to(self, shard_id: int, owner: str) -> bool:
        with self.sessions() as s:
            return self._holds_lease(s, shard_id, owner)

    def _holds_lease(self, s: Session, shard_id: int, owner: str) -> bool:
        query = select(t.Shard.id).where(
            t.Shard.id == shard_id, t.Shard.status == "processing", t.Shard.lease_owner == owner
        )
        if not is_sqlite(self.engine):
            query = query.with_for_update()
        return s.scalar(query) is not None
