"""Export queries: the shard versions a dataset's report sums, with what a re-read needs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, select

from shardwatch.store import tables as t
from shardwatch.store.boundary import translated
from shardwatch.store.errors import UnknownDataset
from shardwatch.store.snapshots import latest_done


@dataclass(frozen=True)
class DoneShard:
    """The current done version of one shard URI, as it was scanned (no ORM row leaves)."""

    uri: str
    version: int
    content_sha256: str
    profile: str
    lexicon: str
    rows: int
    similarity_threshold: float | None  # None: the shard had no similarity column
    list_version: str | None = None  # the version of the blocklist asked for it was checked
    # against (None: not asked, or never checked against it)


@translated
def done_shards(engine: Engine, dataset: str, blocklist: str | None = None) -> list[DoneShard]:
    """The latest done version of every shard URI of `dataset` (the report's set), in URI
    order; with `blocklist`, the version of that list each was checked against. Raises
    UnknownDataset."""
    sm, shard, sb = t.shard_metrics, t.shards, t.shard_blocklists
    with engine.connect() as conn:
        dataset_id = conn.scalar(select(t.datasets.c.id).where(t.datasets.c.name == dataset))
        if dataset_id is None:
            known = conn.scalars(select(t.datasets.c.name).order_by(t.datasets.c.name)).all()
            raise UnknownDataset(dataset, known)
        latest = latest_done(dataset_id)
        rows = conn.execute(
            select(latest.c.uri, latest.c.version, shard.c.content_sha256)
            .add_columns(sm.c.profile, sm.c.lexicon, sm.c.rows, sm.c.similarity_threshold)
            .add_columns(sb.c.version.label("list_version"))
            .join(shard, shard.c.id == latest.c.id)
            .join(sm, sm.c.shard_id == latest.c.id)
            .outerjoin(sb, and_(sb.c.shard_id == latest.c.id, sb.c.name == (blocklist or "")))
            .order_by(latest.c.uri)
        ).all()
    return [
        DoneShard(
            r.uri,
            int(r.version),
            r.content_sha256,
            r.profile,
            r.lexicon,
            int(r.rows),
            None if r.similarity_threshold is None else float(r.similarity_threshold),
            r.list_version if blocklist else None,
        )
        for r in rows
    ]
