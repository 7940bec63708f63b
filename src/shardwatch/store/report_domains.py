"""The dataset's domain sketch rebuilt from the stored shards: the same DomainSketch that
merging the shards' sketches gives (scan's total), so `report --json`'s total carries
`domains` key for key. Listed counts are summed over the shards that listed a domain; the
error of a domain is the floors of the shards that did not (metrics.DomainSketch.merge)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select
from sqlalchemy.sql.selectable import CTE

from shardwatch.core.domain_sketch import DomainSketch, DomainStat
from shardwatch.store import models as t


def domain_sketch(conn: Connection, latest: CTE) -> DomainSketch | None:
    """The merged sketch of the latest done shards that have one (None: no shard has)."""
    sm, sd = t.ShardMetricsRow, t.ShardDomain
    totals = conn.execute(
        select(
            func.count().label("shards"),
            func.max(sm.domain_k).label("k"),
            func.sum(sm.domain_floor_rows).label("floor_rows"),
            func.sum(sm.domain_floor_keyword).label("floor_keyword"),
            func.sum(sm.domain_floor_tag).label("floor_tag"),
            func.sum(sm.domain_rest_rows).label("rest_rows"),
            func.sum(sm.domain_rest_keyword).label("rest_keyword"),
            func.sum(sm.domain_rest_tag).label("rest_tag"),
        )
        .join(latest, latest.c.id == sm.shard_id)
        .where(sm.domain_k.is_not(None))
    ).one()
    if not totals.shards:
        return None
    floor_rows = int(totals.floor_rows or 0)
    floor_keyword = int(totals.floor_keyword or 0)
    floor_tag = int(totals.floor_tag or 0)
    listed = conn.execute(
        select(
            sd.domain,
            func.sum(sd.rows).label("rows"),
            func.sum(sd.keyword_nsfw).label("keyword"),
            func.sum(sd.tag_nsfw).label("tag"),
            func.sum(sm.domain_floor_rows).label("floor_rows"),
            func.sum(sm.domain_floor_keyword).label("floor_keyword"),
            func.sum(sm.domain_floor_tag).label("floor_tag"),
        )
        .join(latest, latest.c.id == sd.shard_id)
        .join(sm, sm.shard_id == sd.shard_id)
        .group_by(sd.domain)
    ).all()
    top = {
        r.domain: DomainStat(
            rows=int(r.rows),
            keyword_nsfw=int(r.keyword),
            tag_nsfw=int(r.tag),
            rows_error=floor_rows - int(r.floor_rows or 0),
            keyword_error=floor_keyword - int(r.floor_keyword or 0),
            tag_error=floor_tag - int(r.floor_tag or 0),
        )
        for r in listed
    }
    return DomainSketch(
        k=int(totals.k),
        top=top,
        floor_rows=floor_rows,
        floor_keyword=floor_keyword,
        floor_tag=floor_tag,
        rest_rows=int(totals.rest_rows or 0),
        rest_keyword=int(totals.rest_keyword or 0),
        rest_tag=int(totals.rest_tag or 0),
    )
