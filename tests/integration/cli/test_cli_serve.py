"""`shardwatch serve` against a real `prefect server start` on loopback: its schedule runs
(two scheduled passes complete), and without a Prefect API it refuses at once (exit 2)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.builders import tagged_table, write_shard
from support.loopback import refused_port
from support.prefect_server import PrefectServer, serve_until
from support.store_checks import run_shardwatch_child as run_shardwatch
from support.store_checks import subprocess_env

pytestmark = pytest.mark.integration


def local_config(tmp_path: Path, data: Path) -> Path:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(
        'dataset = "served"\n'
        f'database_url = "sqlite:///{tmp_path / "store.sqlite"}"\n'
        "[validation]\nenabled = false\n"
        f'[download]\ncache_dir = "{tmp_path / "cache"}"\n'
        f'[sources.files]\ntype = "local"\npath = "{data}"\n'
    )
    return cfg


def test_serve_runs_its_schedule_on_a_prefect_server(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_shard(tagged_table(50, 0, seed=1), data, "a.parquet")
    write_shard(tagged_table(60, 1, seed=2), data, "b.parquet")
    cfg = local_config(tmp_path, data)
    ended, output = serve_until(
        [sys.executable, "-m", "shardwatch", "serve", "--config", str(cfg), "--interval", "5"],
        server=prefect_server,
        config=cfg,
        cwd=tmp_path,
        env=subprocess_env(),
        timeout=150,
    )
    done = [r for r in ended if r.state.is_completed()]
    assert len(done) >= 2, output[-3000:]
    assert "serving shardwatch-monitor every 5 s" in output
    messages = sorted(r.state.message for r in done)
    assert messages[0].startswith("run 1: 2 done, 0 unchanged"), messages
    assert messages[1].startswith("run 2: 2 unchanged"), messages
    assert "Monitor_PassModel" not in output  # the parameters of the pass validate


def test_serve_without_a_prefect_api_exits_2_at_once(tmp_path: Path) -> None:
    cfg = local_config(tmp_path, tmp_path)
    home: dict[str, Any] = {"PREFECT_HOME": str(tmp_path / "prefect")}
    started = time.monotonic()
    none = run_shardwatch("serve", "--config", str(cfg), cwd=tmp_path, **home, PREFECT_API_URL="")
    assert none.returncode == 2, none.stderr
    assert "shardwatch serve needs a Prefect server" in none.stderr
    assert "prefect server start" in none.stderr and len(none.stderr.splitlines()) == 1

    url = f"http://127.0.0.1:{refused_port()}/api"  # bound, never listening: refused
    down = run_shardwatch(
        "serve", "--config", str(cfg), "--cron", "* * * * *", cwd=tmp_path, **home,
        PREFECT_API_URL=url,
    )
    assert down.returncode == 2, down.stderr
    assert f"the Prefect API at {url} does not answer (ConnectError)" in down.stderr
    assert time.monotonic() - started < 60  # refused, never idle

    both = run_shardwatch(
        "serve", "--config", str(cfg), "--cron", "* * * * *", "--interval", "5", **home,
        PREFECT_API_URL=url,
    )
    assert both.returncode == 2 and "give --cron or --interval, not both" in both.stderr
