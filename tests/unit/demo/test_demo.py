"""The demo: its dataset (deterministic, reused on rerun, one shard lacks columns, one is
corrupt) and `shardwatch demo` end to end: the monitor flow over loopback HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.compare import diff_metrics
from support.prefect_server import PrefectServer
from support.reference import merge_reference, reference_metrics
from support.store_checks import run_shardwatch_child as run_shardwatch

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.demo.run import demo_shards
from shardwatch.scan.engine import scan_shard


@pytest.mark.unit
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
    # exactly the reference's counts over the generator's rows, per shard and in total
    refs = [reference_metrics(pq.read_table(p), LAION400M, BIRHANE2021) for p in paths]
    for path, got, ref in zip(paths, metrics, refs, strict=True):
        assert diff_metrics(got.to_dict(), ref) == [], path.name
    merged = merge_reference(refs)
    assert total.terms["desi"].substring_matches == merged["terms"]["desi"]["substring_matches"]
    assert total.keyword_nsfw_rows == merged["keyword_nsfw_rows"]


@pytest.mark.unit
def test_demo_data_is_deterministic(tmp_path: Path) -> None:
    a = demo_shards(tmp_path / "a", shards=1, rows=2000)[0]
    b = demo_shards(tmp_path / "b", shards=1, rows=2000)[0]
    assert pq.read_table(a).equals(pq.read_table(b))


@pytest.mark.integration
def test_demo_runs_the_monitor_flow_end_to_end_and_a_rerun_finds_nothing(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    # the first run as `make demo` runs it: no Prefect API, so a temporary server of its own
    env = {"PREFECT_HOME": str(tmp_path / "prefect")}
    done = run_shardwatch("demo", "--shards", "1", "--rows", "3000", cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr  # failing checks are what the demo shows
    out = done.stdout
    base = "http://127.0.0.1:"
    assert out.count("done        " + base) == 2
    assert "quarantined " + base in out and "part-corrupt.parquet (refused before decoding: " \
        "not a parquet file" in out
    assert "run 1: 2 done, 1 quarantined, 0 unchanged" in out
    alerts = tmp_path / ".shardwatch" / "alerts.jsonl"
    rows = [json.loads(line) for line in alerts.read_text().splitlines()]
    lines = [r for r in rows if r["rule"] != "monitor-run"]  # the relayed alerts
    assert f"alerts: {len(lines)} to console; {len(lines)} to file" in out and lines
    # the corrupt shard makes the run end Failed, which the monitor-run notice says
    assert [r["observed"] for r in rows if r["rule"] == "monitor-run"] == ["Failed"]
    assert {r["dataset"] for r in rows} == {"demo"}
    index = tmp_path / ".shardwatch" / "docs" / "index.html"
    assert f"Data Docs: {index}" in out and index.is_file()
    report = tmp_path / ".shardwatch" / "reports" / "run-1.html"
    assert f"Report: {report}" in out and "<svg" in report.read_text()
    assert "Table 1: watched terms" in out and "desi" in out
    assert "1 quarantined" in out  # the dataset report lists it, not sums it

    # the rerun against a Prefect server (the session's; what it finds is the store's doing)
    again = run_shardwatch(
        "demo", "--shards", "1", "--rows", "3000", cwd=tmp_path, **prefect_server.env()
    )
    assert again.returncode == 0, again.stderr
    rerun = again.stdout
    assert "run 2: 3 unchanged" in rerun and "no alert notices due" in rerun, rerun[-1500:]
    assert len(alerts.read_text().splitlines()) == len(rows)  # nothing re-sent; Completed
