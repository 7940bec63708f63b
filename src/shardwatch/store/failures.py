"""Failures: how a shard version that could not be stored ends, and what it remembers.

A failure ends the version `failed` (tried again later) or `quarantined` (its content is
refused). Each failure joins the version's `history` (the last `HISTORY` are kept: time,
status, reason), and a failure once the version has been tried `max_attempts` times (its
claims count the tries) quarantines it: "retry budget spent: failed N times; last: ...".
`--force` claims it once more.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shardwatch.store import models as t

HISTORY = 10  # failures kept per shard version


def end_shard(
    s: Session,
    shard_id: int,
    owner: str,
    reason: str,
    quarantine: bool,
    max_attempts: int | None,
) -> tuple[str, str] | None:
    """End the version `owner` holds; the status and reason recorded, or None when `owner`
    does not hold its lease (nothing is written)."""
    row = s.scalar(select(t.Shard).where(t.Shard.id == shard_id, t.Shard.lease_owner == owner))
    if row is None:
        return None
    status = "quarantined" if quarantine else "failed"
    if status == "failed" and max_attempts is not None and row.attempts >= max_attempts:
        status = "quarantined"
        reason = f"retry budget spent: failed {row.attempts} times; last: {reason}"
    now = t.utcnow()
    entry = {"at": now.isoformat(), "status": status, "reason": reason[:1000]}
    s.execute(
        update(t.Shard)
        .where(t.Shard.id == shard_id, t.Shard.lease_owner == owner)
        .values(
            status=status,
            reason=reason,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            history=[*(row.history or [])[-(HISTORY - 1) :], entry],
        )
    )
    return status, reason
