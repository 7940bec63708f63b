"""Twins: the same content is counted once in a dataset, whatever its names.

Two shards with byte-identical files (the same `content_sha256`) under different URIs would
double every count of the dataset total. The check runs inside the transaction that would
store the second one's results, under the dataset's lock, so two workers finishing copies at
the same moment cannot both pass it (a check before the transaction could):

- PostgreSQL: `SELECT ... FOR NO KEY UPDATE` on the dataset's row (the lock the alert judge
  takes too), so one results transaction of a dataset runs at a time;
- SQLite: a no-op `UPDATE` of that row as the transaction's first statement, which takes the
  database's write lock before anything is read (the driver begins the transaction there).

A twin is a done shard of the dataset, under another URI, that is that URI's current done
version (the report's rule: a URI whose content changed since no longer holds the old
content). The later copy is quarantined "identical content to <uri>"; it is checked again
when forced (`--force`) or when its own content changes.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shardwatch.store import models as t


def lock_dataset(s: Session, dataset_id: int, *, sqlite: bool) -> None:
    """Hold the dataset's lock until the transaction ends (module docstring)."""
    if sqlite:
        s.execute(update(t.Dataset).where(t.Dataset.id == dataset_id).values(id=t.Dataset.id))
    else:
        s.scalar(
            select(t.Dataset.id).where(t.Dataset.id == dataset_id).with_for_update(key_share=True)
        )


def current_twin(s: Session, dataset_id: int, uri: str, content_sha256: str) -> str | None:
    """The URI of another URI's current done version holding exactly this content."""
    candidates = s.execute(
        select(t.Shard.id, t.Shard.uri)
        .where(
            t.Shard.dataset_id == dataset_id,
            t.Shard.content_sha256 == content_sha256,
            t.Shard.status == "done",
            t.Shard.uri != uri,
        )
        .order_by(t.Shard.id)
    ).all()
    for shard_id, other in candidates:
        newest = s.scalar(
            select(t.Shard.id)
            .where(
                t.Shard.dataset_id == dataset_id,
                t.Shard.uri == other,
                t.Shard.status == "done",
            )
            .order_by(t.Shard.last_seen_at.desc(), t.Shard.version.desc())
            .limit(1)
        )
        if newest == shard_id:
            return str(other)
    return None
