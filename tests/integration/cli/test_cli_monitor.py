"""`shardwatch run` and `shardwatch serve` as real subprocesses (Prefect's ephemeral API)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.builders import tagged_table, write_shard
from support.prefect_server import PrefectServer
from support.store_checks import run_shardwatch, run_shardwatch_child

pytestmark = pytest.mark.integration


def config(tmp_path: Path, sources: str = "") -> Path:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f'dataset = "files"\n[validation]\nenabled = false\n{sources}')
    return cfg


def test_run_processes_a_local_source_and_exits_3_when_a_shard_is_refused(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_shard(tagged_table(40, 0, seed=1), data, "a.parquet")
    write_shard(tagged_table(40, 20, seed=2), data, "b.parquet")
    (data / "c.parquet").write_bytes(b"not parquet at all")
    cfg = config(tmp_path, f'[sources.files]\ntype = "local"\npath = "{data}"\n')
    env = {"PREFECT_HOME": str(tmp_path / "prefect")}  # no API: a temporary server of its own
    first = run_shardwatch_child("run", "--config", str(cfg), cwd=tmp_path, **env)
    assert first.returncode == 3, first.stderr
    assert "run 1: 2 done, 1 quarantined, 0 unchanged" in first.stdout
    assert f"quarantined {data / 'c.parquet'} (refused before decoding" in first.stdout
    assert "Report: " in first.stdout
    server = prefect_server.env()  # the second pass against a Prefect server
    second = run_shardwatch_child("run", "--config", str(cfg), cwd=tmp_path, **server)
    assert second.returncode == 0, second.stderr
    assert "run 2: 3 unchanged" in second.stdout


def test_run_and_serve_need_sources_and_a_valid_schedule(tmp_path: Path) -> None:
    bare = config(tmp_path)
    for command in ("run", "serve"):
        done = run_shardwatch(command, "--config", str(bare), cwd=tmp_path)
        assert done.returncode == 2 and "no [sources] configured" in done.stderr
    cfg = config(tmp_path, f'[sources.files]\ntype = "local"\npath = "{tmp_path}"\n')
    bad = run_shardwatch("serve", "--config", str(cfg), "--cron", "every tuesday", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid cron schedule 'every tuesday'" in bad.stderr


def test_run_refuses_sqlite_with_a_remote_dask_cluster_in_one_line(tmp_path: Path) -> None:
    """Workers on other hosts cannot share a SQLite file: refused before anything runs."""
    cfg = config(
        tmp_path,
        f'[sources.files]\ntype = "local"\npath = "{tmp_path}"\n'
        '[monitor]\ntask_runner = "dask"\ndask_address = "tcp://127.0.0.1:1"\n',
    )
    done = run_shardwatch("run", "--config", str(cfg), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: invalid configuration")
    assert "SQLite cannot be shared by the workers of monitor.dask_address" in line
    assert done.stdout == "" and not (tmp_path / ".shardwatch").exists()
