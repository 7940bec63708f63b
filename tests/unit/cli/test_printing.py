"""cli/printing.py: the report's lines on blocklist versions (shards behind the newest
version of a list, shards not checked against it), names shown, at most a few listed."""

from __future__ import annotations

import pytest

from shardwatch.cli.printing import SHOWN_BEHIND, list_version_lines
from shardwatch.core.metrics import ShardMetrics
from shardwatch.store.report_model import DatasetReport, ListChecks

pytestmark = pytest.mark.unit


def report(**lists: ListChecks) -> DatasetReport:
    return DatasetReport("ds", ShardMetrics(shards=0), (), 0, 0, 0, (), (), (), blocklists=lists)


def test_older_versions_list_a_few_shards_and_count_the_rest() -> None:
    uris = tuple(f"part-{i}.parquet" for i in range(SHOWN_BEHIND + 2))
    checks = ListChecks("b" * 64, {"a" * 64: uris, "c" * 64: ("x.parquet",)}, unchecked=3)
    assert list_version_lines(report(csam=checks)) == [
        f"blocklist csam: {len(uris)} shard(s) checked against version {'a' * 12} (newest "
        f"{'b' * 12}): {', '.join(uris[:SHOWN_BEHIND])} and 2 more (report --json)",
        f"blocklist csam: 1 shard(s) checked against version {'c' * 12} (newest {'b' * 12}): "
        "x.parquet",
        "blocklist csam: 3 shard(s) not checked against it (stored before it was configured: "
        "re-ingest them to check)",
    ]
    assert checks.behind == len(uris) + 1


def test_a_list_every_shard_was_checked_against_at_its_newest_says_nothing() -> None:
    assert list_version_lines(report(ids=ListChecks("d" * 64))) == []
    assert list_version_lines(report()) == []
