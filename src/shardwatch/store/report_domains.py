"""The dataset's domain sketch rebuilt from the stored shards: the same DomainSketch that
merging the shards' sketches gives (scan's total), so `report --json`'s total carries
`domains` key for key. Listed counts are summed over the shards that listed a domain; the
error of a domain is the floors of the shards that did not (metrics.DomainSketch.merge)."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.sql.selectable import CTE

from shardwatch.core.domain_sketch import DomainSketch, DomainStat
from shardwatch.store import tables as t
from shardwatch.store.aggregates import plain


def domain_sketch(conn: Connection, latest: CTE) -> DomainSketch | None:
    """The merged sketch of the latest done shards that have one (None: no shard has)."""
    return sketch_of(domain_sums(conn, latest))


def domain_sums(conn: Connection, latest: CTE) -> dict[str, Any] | None:
    """The sums `sketch_of` builds the sketch from, as plain values (None: no shard has a
    sketch)."""
    sm, sd = t.shard_metrics, t.shard_domains
    totals = conn.execute(
        select(
            func.count().label("shards"),
            func.max(sm.c.domain_k).label("k"),
            func.sum(sm.c.domain_floor_rows).label("floor_rows"),
            func.sum(sm.c.domain_floor_keyword).label("floor_keyword"),
            func.sum(sm.c.domain_floor_tag).label("floor_tag"),
            func.sum(sm.c.domain_rest_rows).label("rest_rows"),
            func.sum(sm.c.domain_rest_keyword).label("rest_keyword"),
            func.sum(sm.c.domain_rest_tag).label("rest_tag"),
        )
        .join(latest, latest.c.id == sm.c.shard_id)
        .where(sm.c.domain_k.is_not(None))
    ).one()
    if not totals.shards:
        return None
    listed = conn.execute(
        select(
            sd.c.domain,
            func.sum(sd.c.rows).label("rows"),
            func.sum(sd.c.keyword_nsfw).label("keyword"),
            func.sum(sd.c.tag_nsfw).label("tag"),
            func.sum(sm.c.domain_floor_rows).label("floor_rows"),
            func.sum(sm.c.domain_floor_keyword).label("floor_keyword"),
            func.sum(sm.c.domain_floor_tag).label("floor_tag"),
        )
        .join(latest, latest.c.id == sd.c.shard_id)
        .join(sm, sm.c.shard_id == sd.c.shard_id)
        .group_by(sd.c.domain)
        .order_by(sd.c.domain)
    ).all()
    return {
        "totals": {k: plain(v) for k, v in totals._mapping.items()},
        "listed": [[plain(v) for v in row] for row in listed],
    }


def sketch_of(sums: Mapping[str, Any] | None) -> DomainSketch | None:
    """The merged sketch from `domain_sums`."""
    if sums is None:
        return None
    totals = SimpleNamespace(**sums["totals"])
    floor_rows = int(totals.floor_rows or 0)
    floor_keyword = int(totals.floor_keyword or 0)
    floor_tag = int(totals.floor_tag or 0)
    top = {
        domain: DomainStat(
            rows=int(rows),
            keyword_nsfw=int(keyword),
            tag_nsfw=int(tag),
            rows_error=floor_rows - int(f_rows or 0),
            keyword_error=floor_keyword - int(f_keyword or 0),
            tag_error=floor_tag - int(f_tag or 0),
        )
        for domain, rows, keyword, tag, f_rows, f_keyword, f_tag in sums["listed"]
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
