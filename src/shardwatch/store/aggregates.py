"""The SQL sums over a dataset's latest done versions (the big tables, read once each), as
plain values that can be kept (store/stored_totals.py) and assembled into a total (totals.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, select
from sqlalchemy.sql.selectable import CTE

from shardwatch.store import models as t


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
    sm = t.ShardMetricsRow
    one, zero = literal(1), literal(0)

    def count_true(condition: Any) -> Any:
        return func.sum(case((condition, one), else_=zero))

    scalars = conn.execute(
        select(
            func.count().label("shards"),
            func.sum(sm.rows).label("rows"),
            func.sum(sm.keyword_nsfw_rows).label("keyword_nsfw_rows"),
            func.count(sm.keyword_nsfw_rows).label("with_keyword"),
            func.sum(sm.paper_keyword_nsfw_rows).label("paper_keyword_nsfw_rows"),
            func.count(sm.paper_keyword_nsfw_rows).label("with_paper"),
            count_true(sm.has_nsfw_tag).label("with_tag"),
            count_true(sm.has_terms).label("with_terms"),
            count_true(and_(sm.has_terms, sm.has_nsfw_tag)).label("with_term_tags"),
            func.count(sm.similarity_count).label("with_similarity"),
            func.count(sm.similarity_threshold.distinct()).label("thresholds"),
            func.min(sm.similarity_threshold).label("threshold_lo"),
            func.max(sm.similarity_threshold).label("threshold_hi"),
            func.sum(sm.similarity_count).label("sim_count"),
            func.sum(sm.similarity_null).label("sim_null"),
            func.sum(sm.similarity_below).label("sim_below"),
            func.min(sm.similarity_min).label("sim_min"),
            func.max(sm.similarity_max).label("sim_max"),
            func.sum(sm.similarity_sum).label("sim_sum"),
            func.sum(sm.hist_underflow).label("underflow"),
            func.sum(sm.hist_overflow).label("overflow"),
            func.count(sm.duplicate_ids).label("with_dup_ids"),
            func.sum(sm.duplicate_ids).label("dup_ids"),
            func.count(sm.duplicate_urls).label("with_dup_urls"),
            func.sum(sm.duplicate_urls).label("dup_urls"),
            func.sum(sm.unsafe_rows).label("unsafe_rows"),
            func.sum(sm.keyword_unsafe_rows).label("keyword_unsafe_rows"),
        ).join(latest, latest.c.id == sm.shard_id)
    ).one()
    tag_rows = conn.execute(
        select(
            t.ShardTagCount.label,
            func.sum(t.ShardTagCount.count),
            func.sum(t.ShardTagCount.keyword_nsfw),
            func.count(t.ShardTagCount.keyword_nsfw),
            func.sum(t.ShardTagCount.unsafe),
            func.count(t.ShardTagCount.unsafe),
        )
        .join(latest, latest.c.id == t.ShardTagCount.shard_id)
        .group_by(t.ShardTagCount.label)
        .order_by(t.ShardTagCount.label)
    ).all()
    tt = t.TermTagCount
    term_tag_rows = conn.execute(
        select(tt.term, tt.label, func.sum(tt.count))
        .add_columns(func.sum(tt.keyword_nsfw), func.count(tt.keyword_nsfw), func.count())
        .add_columns(func.sum(tt.paper_keyword_nsfw), func.count(tt.paper_keyword_nsfw))
        .join(latest, latest.c.id == tt.shard_id)
        .group_by(tt.term, tt.label)
        .order_by(tt.term, tt.label)
    ).all()
    tm = t.TermMetricsRow
    position = func.min(tm.position)
    term_rows = conn.execute(
        select(
            tm.term,
            tm.mode,
            position.label("position"),
            func.max(tm.position).label("last_position"),
            func.count().label("shards"),
            func.sum(tm.matches).label("matches"),
            func.sum(tm.keyword_nsfw).label("keyword_nsfw"),
            func.sum(tm.substring_matches).label("substring_matches"),
            func.sum(tm.paper_keyword_nsfw).label("paper_keyword_nsfw"),
            func.count(tm.paper_keyword_nsfw).label("with_paper"),
        )
        .join(latest, latest.c.id == tm.shard_id)
        .group_by(tm.term, tm.mode)
        .order_by(position, tm.term, tm.mode)
    ).all()
    bins = conn.execute(
        select(t.SimilarityBin.bin, func.sum(t.SimilarityBin.count))
        .join(latest, latest.c.id == t.SimilarityBin.shard_id)
        .group_by(t.SimilarityBin.bin)
        .order_by(t.SimilarityBin.bin)
    ).all()
    return Aggregates(
        {k: plain(v) for k, v in scalars._mapping.items()},
        _rows(tag_rows),
        _rows(term_tag_rows),
        [{k: plain(v) for k, v in r._mapping.items()} for r in term_rows],
        _rows(bins),
    )
