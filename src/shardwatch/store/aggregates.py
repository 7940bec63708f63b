"""The SQL sums over a dataset's latest done versions (the big tables, read once each), as
plain values that can be kept (store/stored_totals.py) and assembled into a total (totals.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, select
from sqlalchemy.sql.selectable import CTE

from shardwatch.store import tables as t


@dataclass(frozen=True)
class Aggregates:
    """The SQL sums over a dataset's latest done versions, as plain JSON values (ints,
    floats, strings), so that store/stored_totals.py can keep them: the scalar sums, and
    the rows summed per tag label, per term and label, per term, per similarity bin."""

    scalars: dict[str, Any]
    tags: list[list[Any]]
    term_tags: list[list[Any]]
    terms: list[dict[str, Any]]
    bins: list[list[Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "scalars": self.scalars,
            "tags": self.tags,
            "term_tags": self.term_tags,
            "terms": self.terms,
            "bins": self.bins,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Aggregates:
        return cls(
            dict(data["scalars"]),
            [list(r) for r in data["tags"]],
            [list(r) for r in data["term_tags"]],
            [dict(r) for r in data["terms"]],
            [list(r) for r in data["bins"]],
        )


def plain(value: Any) -> Any:
    """A SQL aggregate as JSON keeps it: SUM over BIGINT is a Decimal on PostgreSQL."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _rows(result: Any) -> list[list[Any]]:
    return [[plain(v) for v in row] for row in result]


def aggregate(conn: Connection, latest: CTE) -> Aggregates:
    """The sums over the shard versions `latest` lists (every big table read once)."""
    sm = t.shard_metrics
    one, zero = literal(1), literal(0)

    def count_true(condition: Any) -> Any:
        return func.sum(case((condition, one), else_=zero))

    scalars = conn.execute(
        select(
            func.count().label("shards"),
            func.sum(sm.c.rows).label("rows"),
            func.sum(sm.c.keyword_nsfw_rows).label("keyword_nsfw_rows"),
            func.count(sm.c.keyword_nsfw_rows).label("with_keyword"),
            func.sum(sm.c.paper_keyword_nsfw_rows).label("paper_keyword_nsfw_rows"),
            func.count(sm.c.paper_keyword_nsfw_rows).label("with_paper"),
            count_true(sm.c.has_nsfw_tag).label("with_tag"),
            count_true(sm.c.has_terms).label("with_terms"),
            count_true(and_(sm.c.has_terms, sm.c.has_nsfw_tag)).label("with_term_tags"),
            func.count(sm.c.similarity_count).label("with_similarity"),
            func.count(sm.c.similarity_threshold.distinct()).label("thresholds"),
            func.min(sm.c.similarity_threshold).label("threshold_lo"),
            func.max(sm.c.similarity_threshold).label("threshold_hi"),
            func.sum(sm.c.similarity_count).label("sim_count"),
            func.sum(sm.c.similarity_null).label("sim_null"),
            func.sum(sm.c.similarity_below).label("sim_below"),
            func.min(sm.c.similarity_min).label("sim_min"),
            func.max(sm.c.similarity_max).label("sim_max"),
            func.sum(sm.c.similarity_sum).label("sim_sum"),
            func.sum(sm.c.hist_underflow).label("underflow"),
            func.sum(sm.c.hist_overflow).label("overflow"),
            func.count(sm.c.duplicate_ids).label("with_dup_ids"),
            func.sum(sm.c.duplicate_ids).label("dup_ids"),
            func.count(sm.c.duplicate_urls).label("with_dup_urls"),
            func.sum(sm.c.duplicate_urls).label("dup_urls"),
            func.sum(sm.c.unsafe_rows).label("unsafe_rows"),
            func.sum(sm.c.keyword_unsafe_rows).label("keyword_unsafe_rows"),
        ).join(latest, latest.c.id == sm.c.shard_id)
    ).one()
    tag_rows = conn.execute(
        select(
            t.shard_tag_counts.c.label,
            func.sum(t.shard_tag_counts.c.count),
            func.sum(t.shard_tag_counts.c.keyword_nsfw),
            func.count(t.shard_tag_counts.c.keyword_nsfw),
            func.sum(t.shard_tag_counts.c.unsafe),
            func.count(t.shard_tag_counts.c.unsafe),
        )
        .join(latest, latest.c.id == t.shard_tag_counts.c.shard_id)
        .group_by(t.shard_tag_counts.c.label)
        .order_by(t.shard_tag_counts.c.label)
    ).all()
    tt = t.term_tag_counts
    term_tag_rows = conn.execute(
        select(tt.c.term, tt.c.label, func.sum(tt.c.count))
        .add_columns(func.sum(tt.c.keyword_nsfw), func.count(tt.c.keyword_nsfw), func.count())
        .add_columns(func.sum(tt.c.paper_keyword_nsfw), func.count(tt.c.paper_keyword_nsfw))
        .join(latest, latest.c.id == tt.c.shard_id)
        .group_by(tt.c.term, tt.c.label)
        .order_by(tt.c.term, tt.c.label)
    ).all()
    tm = t.term_metrics
    position = func.min(tm.c.position)
    term_rows = conn.execute(
        select(
            tm.c.term,
            tm.c.mode,
            position.label("position"),
            func.max(tm.c.position).label("last_position"),
            func.count().label("shards"),
            func.sum(tm.c.matches).label("matches"),
            func.sum(tm.c.keyword_nsfw).label("keyword_nsfw"),
            func.sum(tm.c.substring_matches).label("substring_matches"),
            func.sum(tm.c.paper_keyword_nsfw).label("paper_keyword_nsfw"),
            func.count(tm.c.paper_keyword_nsfw).label("with_paper"),
        )
        .join(latest, latest.c.id == tm.c.shard_id)
        .group_by(tm.c.term, tm.c.mode)
        .order_by(position, tm.c.term, tm.c.mode)
    ).all()
    bins = conn.execute(
        select(t.similarity_bins.c.bin, func.sum(t.similarity_bins.c.count))
        .join(latest, latest.c.id == t.similarity_bins.c.shard_id)
        .group_by(t.similarity_bins.c.bin)
        .order_by(t.similarity_bins.c.bin)
    ).all()
    return Aggregates(
        {k: plain(v) for k, v in scalars._mapping.items()},
        _rows(tag_rows),
        _rows(term_tag_rows),
        [{k: plain(v) for k, v in r._mapping.items()} for r in term_rows],
        _rows(bins),
    )
