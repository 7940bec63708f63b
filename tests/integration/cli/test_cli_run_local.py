"""`shardwatch run --local`: the monitor pass without Prefect, as a real subprocess. It stores
each shard and alert once, a second pass (in either mode) is a no-op, and its summary and exit
codes are the flow's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.builders import tagged_table, write_shard
from support.prefect_server import PrefectServer
from support.store_checks import run_shardwatch, run_shardwatch_child

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, data: Path) -> Path:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(
        'dataset = "files"\n[validation]\nenabled = false\n'
        f'[sources.files]\ntype = "local"\npath = "{data}"\n'
        '[alerts.channels.log]\ntype = "file"\n'
    )
    return cfg


def _notices(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / ".shardwatch" / "alerts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_local_pass_stores_once_and_a_second_pass_in_either_mode_is_a_no_op(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_shard(tagged_table(1000, 100, seed=1), data, "a.parquet")  # 10% NSFW: a breach
    write_shard(tagged_table(1000, 0, seed=2), data, "b.parquet")
    (data / "c.parquet").write_bytes(b"not parquet at all")
    cfg = _config(tmp_path, data)
    no_api = {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": ""}
    first = run_shardwatch_child("run", "--local", "--config", str(cfg), cwd=tmp_path, **no_api)
    assert first.returncode == 3, first.stderr  # the flow's code for a quarantined shard
    assert "run 1: 2 done, 1 quarantined, 0 unchanged" in first.stdout
    assert f"quarantined {data / 'c.parquet'} (refused before decoding" in first.stdout
    assert f"Report: {tmp_path / '.shardwatch' / 'reports' / 'run-1.html'}" in first.stdout
    assert not (tmp_path / "prefect").exists()  # no Prefect server, not even a temporary one
    breaches = _notices(tmp_path)
    assert breaches and len(breaches) == len({json.dumps(n, sort_keys=True) for n in breaches})
    scopes = {(n["rule"], str(n["scope"]).rsplit("/", 1)[-1]) for n in breaches}
    assert ("nsfw-tag-rate", "shard a.parquet") in scopes  # a shard rule, in the shard's commit
    # the dataset rule, judged once after the pass's shards: 100 of 2,000 rows
    assert ("nsfw-tag-rate", "dataset (latest shard versions)") in scopes

    second = run_shardwatch_child("run", "--local", "--config", str(cfg), cwd=tmp_path, **no_api)
    assert second.returncode == 0, second.stderr
    assert "run 2: 3 unchanged" in second.stdout
    flow = run_shardwatch_child("run", "--config", str(cfg), cwd=tmp_path, **prefect_server.env())
    assert flow.returncode == 0, flow.stderr
    assert "run 3: 3 unchanged" in flow.stdout
    assert _notices(tmp_path) == breaches  # no alert sent or stored twice

    report = run_shardwatch("report", "--json", "--config", str(cfg), cwd=tmp_path)
    doc = json.loads(report.stdout)
    assert (doc["total"]["shards"], doc["total"]["rows"]) == (2, 2000)  # each shard once
    assert doc["quarantined"] == 1


def test_local_mode_has_the_flows_usage_errors(tmp_path: Path) -> None:
    bare = tmp_path / "shardwatch.toml"
    bare.write_text('dataset = "files"\n')
    done = run_shardwatch("run", "--local", "--config", str(bare), cwd=tmp_path)
    assert done.returncode == 2 and "no [sources] configured" in done.stderr
