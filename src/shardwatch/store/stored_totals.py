"""Stored totals: the sums over a dataset's latest done versions, kept by the pass's closing
judgement (`ResultStore.judge_dataset`, under the dataset lock) so that a report reads them
instead of summing every stored row again.

Exact by construction: the kept sums carry `shards_key`, a digest of the ids and result
stamps (`finished_at`) of the versions they cover. A version's results are written only by
`ResultStore.complete`, which stamps a new `finished_at` in the same transaction, and which
versions are latest changes only with ids (a new version done, a version claimed again, one
seen again: A -> B -> A). So a report that finds the same key, in its own snapshot, finds
the same sums it would compute; any other key, and it sums the stored rows itself.
`ResultStore.verify_total` recomputes the sums and compares them (and rebuilds them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.sql.selectable import CTE

from shardwatch.store import tables as t
from shardwatch.store.aggregates import Aggregates, aggregate
from shardwatch.store.report_domains import domain_sums
from shardwatch.store.snapshots import latest_done


@dataclass(frozen=True)
class KeptSums:
    """What a report sums over the latest done versions: the aggregates and domain sums."""

    aggregates: Aggregates
    domains: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"aggregates": self.aggregates.to_json(), "domains": self.domains}


def shards_key(conn: Connection, latest: CTE) -> str:
    """The digest of the ids and result stamps of the versions `latest` lists."""
    rows = conn.execute(
        select(latest.c.id, t.shards.c.finished_at)
        .join(t.shards, t.shards.c.id == latest.c.id)
        .order_by(latest.c.id)
    ).all()
    digest = hashlib.sha256()
    for shard_id, finished in rows:
        digest.update(f"{shard_id}:{finished.isoformat() if finished else ''};".encode())
    return digest.hexdigest()


def summed(conn: Connection, latest: CTE) -> KeptSums:
    """The sums, from the stored rows."""
    return KeptSums(aggregate(conn, latest), domain_sums(conn, latest))


def keep_total(conn: Connection, dataset_id: int) -> KeptSums:
    """Sum the dataset's latest done versions and keep the sums with their key (in the
    caller's transaction, which holds the dataset lock: no result commit interleaves).
    Claims and discovery do not take that lock, and on PostgreSQL each statement reads
    its own snapshot, so the key is read before and after the sums: if the latest versions
    changed in between, nothing is kept (the report sums the rows until the next pass)."""
    latest = latest_done(dataset_id)
    key = shards_key(conn, latest)
    sums = summed(conn, latest)
    conn.execute(delete(t.dataset_totals).where(t.dataset_totals.c.dataset_id == dataset_id))
    if shards_key(conn, latest) == key:
        conn.execute(
            insert(t.dataset_totals).values(
                dataset_id=dataset_id, shards_key=key, sums=sums.to_json(), computed_at=t.utcnow()
            )
        )
    return sums


def kept_key(conn: Connection, dataset_id: int) -> str | None:
    """The key of the dataset's kept sums (None: none kept)."""
    key: str | None = conn.execute(
        select(t.dataset_totals.c.shards_key).where(t.dataset_totals.c.dataset_id == dataset_id)
    ).scalar_one_or_none()
    return key


def kept_total(conn: Connection, dataset_id: int, latest: CTE) -> KeptSums | None:
    """The kept sums if they still cover exactly the versions `latest` lists (None: none
    kept, or stale)."""
    row = conn.execute(
        select(t.dataset_totals.c.shards_key, t.dataset_totals.c.sums).where(
            t.dataset_totals.c.dataset_id == dataset_id
        )
    ).one_or_none()
    if row is None or row.shards_key != shards_key(conn, latest):
        return None
    data = row.sums
    return KeptSums(Aggregates.from_json(data["aggregates"]), data["domains"])


def same_sums(a: KeptSums, b: KeptSums) -> bool:
    """Equal sums, compared as they are kept (through JSON)."""
    return bool(json.loads(json.dumps(a.to_json())) == json.loads(json.dumps(b.to_json())))
