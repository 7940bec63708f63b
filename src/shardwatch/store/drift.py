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
from shardwatch.store import tables as t
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
        dataset_id = conn.scalar(select(t.datasets.c.id).where(t.datasets.c.name == dataset))
        if dataset_id is None:
            return []
        latest = latest_done(dataset_id)
        sm, tc = t.shard_metrics, t.shard_tag_counts
        tagged = select(tc.c.shard_id, tc.c.count.label("n")).where(tc.c.label == label).subquery()
        rows = conn.execute(
            select(latest.c.uri, sm.c.rows, sm.c.has_nsfw_tag, tagged.c.n, sm.c.keyword_nsfw_rows)
            .join(sm, sm.c.shard_id == latest.c.id)
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
        dataset_id = conn.scalar(select(t.datasets.c.id).where(t.datasets.c.name == dataset))
        if dataset_id is None:
            return []
        latest = latest_done(dataset_id)
        total = build_report(conn, dataset, dataset_id, latest, BUILTIN_PROFILES.get).total
        sm = t.shard_metrics
        shards = conn.execute(
            select(latest.c.id, latest.c.uri, sm.c.rows, sm.c.keyword_nsfw_rows, sm.c.has_nsfw_tag)
            .add_columns(sm.c.similarity_threshold, sm.c.hist_underflow, sm.c.hist_overflow)
            .join(sm, sm.c.shard_id == latest.c.id)
            .order_by(latest.c.uri)
        ).all()
        sb, tc = t.similarity_bins.c, t.shard_tag_counts.c
        bins: dict[int, list[int]] = {}
        for shard_id, index, count in conn.execute(
            select(sb.shard_id, sb.bin, sb.count).join(latest, latest.c.id == sb.shard_id)
        ):
            bins.setdefault(shard_id, [0] * HIST_BINS)[index] = int(count)
        tags: dict[int, dict[str, int]] = {}
        for shard_id, tag, count in conn.execute(
            select(tc.shard_id, tc.label, tc.count).join(latest, latest.c.id == tc.shard_id)
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
