"""The demo dataset: deterministic, reused on rerun, and one shard lacks columns."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardwatch.demo import demo_shards
from shardwatch.engine import scan_shard
from shardwatch.lexicon import BIRHANE2021
from shardwatch.metrics import ShardMetrics
from shardwatch.profiles import LAION400M

pytestmark = pytest.mark.unit


def test_demo_shards_are_written_once_and_scan(tmp_path: Path) -> None:
    paths = demo_shards(tmp_path, shards=2, rows=3000)
    assert [p.name for p in paths] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002-url-text-only.parquet",
    ]
    assert pq.read_schema(paths[-1]).names == ["URL", "TEXT"]
    assert not list(tmp_path.glob(".*")) and not list(tmp_path.glob("*.tmp"))
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert demo_shards(tmp_path, shards=2, rows=3000) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes  # reused, not rewritten

    metrics = [scan_shard(p, LAION400M, BIRHANE2021) for p in paths]
    total = ShardMetrics.merge_all(metrics)
    assert total.rows == 3000 + 3000 + 750
    assert "similarity" in metrics[-1].unavailable and not total.unavailable
    assert total.partially_available["similarity"] == 1
    assert total.terms is not None and total.terms["desi"].substring_matches > 0


def test_demo_data_is_deterministic(tmp_path: Path) -> None:
    a = demo_shards(tmp_path / "a", shards=1, rows=2000)[0]
    b = demo_shards(tmp_path / "b", shards=1, rows=2000)[0]
    assert pq.read_table(a).equals(pq.read_table(b))
