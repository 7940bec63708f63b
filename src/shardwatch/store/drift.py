"""Per-shard rates and drift: every current shard of a dataset against the rest of it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from shardwatch.core.metrics import (
    HIST_BINS,
    Histogram,
    ShardMetrics,
    SimilarityStats,
)
from shardwatch.core.profiles import BUILTIN_PROFILES
from shardwatch.core.stats import Drift, drift
from shardwatch.store import models as t
from shardwatch.store.boundary import translated
from shardwatch.store.report_model import as_int, opt_int
from shardwatch.store.snapshots import latest_done, read_snapshot
from shardwatch.store.totals import build_report


@dataclass(frozen=True)
class ShardRates:
    """One current shard's counts behind its NSFW rates (for per-shard charts)."""

    uri: str
    rows: int
    tag_nsfw: int | None  # rows whose tag is the label; None: the shard has no tag column
    keyword_nsfw: int | None


@translated
def shard_rates(engine: Engine, dataset: str, label: str = "NSFW") -> list[ShardRates]:
    """Per current done shard of `dataset`: rows, rows tagged `label`, keyword-NSFW rows."""
    with read_snapshot(engine) as conn:
        dataset_id = conn.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
        if dataset_id is None:
            return []
        latest = latest_done(dataset_id)
        sm, tc = t.ShardMetricsRow, t.ShardTagCount
        tagged = select(tc.shard_id, tc.count.label("n")).where(tc.label == label).subquery()
        rows = conn.execute(
            select(latest.c.uri, sm.rows, sm.has_nsfw_tag, tagged.c.n, sm.keyword_nsfw_rows)
            .join(sm, sm.shard_id == latest.c.id)
            .outerjoin(tagged, tagged.c.shard_id == latest.c.id)
            .order_by(latest.c.uri)
        ).all()
    return [
        ShardRates(
            r.uri,
            int(r.rows),
            (int(r.n or 0) if r.has_nsfw_tag else None),
            opt_int(r.keyword_nsfw_rows),
        )
        for r in rows
    ]


@translated
def shard_drift(engine: Engine, dataset: str, label: str = "NSFW") -> list[tuple[str, Drift]]:
    """Every current shard of `dataset` against the rest of the dataset (see stats.drift),
    from the stored counts and histograms."""
    with read_snapshot(engine) as conn:
        dataset_id = conn.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
        if dataset_id is None:
            return []
        latest = latest_done(dataset_id)
        total = build_report(conn, dataset, dataset_id, latest, BUILTIN_PROFILES.get).total
        sm = t.ShardMetricsRow
        shards = conn.execute(
            select(latest.c.id, latest.c.uri, sm.rows, sm.keyword_nsfw_rows, sm.has_nsfw_tag)
            .add_columns(sm.similarity_threshold, sm.hist_underflow, sm.hist_overflow)
            .join(sm, sm.shard_id == latest.c.id)
            .order_by(latest.c.uri)
        ).all()
        bins: dict[int, list[int]] = {}
        for shard_id, index, count in conn.execute(
            select(t.SimilarityBin.shard_id, t.SimilarityBin.bin, t.SimilarityBin.count).join(
                latest, latest.c.id == t.SimilarityBin.shard_id
            )
        ):
            bins.setdefault(shard_id, [0] * HIST_BINS)[index] = int(count)
        tags: dict[int, dict[str, int]] = {}
        for shard_id, tag, count in conn.execute(
            select(t.ShardTagCount.shard_id, t.ShardTagCount.label, t.ShardTagCount.count).join(
                latest, latest.c.id == t.ShardTagCount.shard_id
            )
        ):
            tags.setdefault(shard_id, {})[tag] = int(count)
    out = []
    for r in shards:
        sim = None
        if r.similarity_threshold is not None:
            hist = Histogram(
                tuple(bins.get(r.id, [0] * HIST_BINS)),
                as_int(r.hist_underflow),
                as_int(r.hist_overflow),
            )
            sim = SimilarityStats(threshold=float(r.similarity_threshold), histogram=hist)
        metrics = ShardMetrics(
            rows=int(r.rows),
            nsfw_flag_counts=tags.get(r.id, {}) if r.has_nsfw_tag else None,
            keyword_nsfw_rows=opt_int(r.keyword_nsfw_rows),
            similarity=sim,
        )
        out.append((r.uri, drift(metrics, total, label)))
    return out
