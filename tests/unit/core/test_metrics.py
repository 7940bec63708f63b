"""Metrics merge exactly, and the histogram gives quantiles within a bin."""

from __future__ import annotations

import numpy as np
import pytest

from shardwatch.core.metrics import HIST_BINS_PER_UNIT, ShardMetrics, SimilarityStats, TermStats
from shardwatch.scan.signals import similarity_stats

pytestmark = pytest.mark.unit


def test_histogram_quantiles_are_within_one_bin() -> None:
    values = np.random.default_rng(1).uniform(0.2, 0.5, 10_001)
    stats = similarity_stats(values, 0.3)
    for q in (0.01, 0.25, 0.5, 0.9, 0.99):
        got = stats.histogram.quantile(q)
        assert got is not None
        true = float(np.quantile(values, q, method="inverted_cdf"))
        assert 0 <= got - true <= 1 / HIST_BINS_PER_UNIT + 1e-12


def test_merge_of_split_equals_whole() -> None:
    values = np.random.default_rng(2).normal(0.32, 0.05, 5000)
    values[::97] = np.nan
    whole = similarity_stats(values, 0.3)
    merged = similarity_stats(values[:1234], 0.3).merge(similarity_stats(values[1234:], 0.3))
    assert merged.histogram == whole.histogram
    assert (merged.count, merged.null, merged.below_threshold) == (
        whole.count,
        whole.null,
        whole.below_threshold,
    )
    assert (merged.min, merged.max) == (whole.min, whole.max)
    assert merged.sum == pytest.approx(whole.sum, rel=1e-12)


def test_merging_different_thresholds_or_modes_is_refused() -> None:
    with pytest.raises(ValueError):
        SimilarityStats(threshold=0.3).merge(SimilarityStats(threshold=0.28))
    with pytest.raises(ValueError):
        TermStats(mode="word").merge(TermStats(mode="substring"))


def test_unavailable_only_when_missing_everywhere() -> None:
    a = ShardMetrics(rows=1, missing_in={"similarity": 1, "nsfw_flag_counts": 1})
    b = ShardMetrics(rows=2, missing_in={"nsfw_flag_counts": 1})
    total = ShardMetrics.merge_all([a, b])
    assert total.rows == 3 and total.shards == 2
    assert total.unavailable == ["nsfw_flag_counts"]
    assert total.partially_available == {"similarity": 1}
    assert ShardMetrics.merge_all([]).to_dict()["rows"] == 0
