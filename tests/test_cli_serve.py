"""`shardwatch serve` against a real `prefect server start` on loopback: its schedule runs
(two scheduled passes complete), and without a Prefect API it refuses at once (exit 2)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from builders import tagged_table, write_shard
from loopback import free_port
from prefect_server import PrefectServer
from store_checks import run_shardwatch, subprocess_env

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


def runs_of(server: PrefectServer, cfg: Path) -> list[Any]:
    """The flow runs of `serve`'s deployment for this config (the server is shared)."""
    with server.client() as client:
        runs = client.read_flow_runs()
    return [r for r in runs if r.deployment_id and (r.parameters or {}).get("config") == str(cfg)]


def test_serve_runs_its_schedule_on_a_prefect_server(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_shard(tagged_table(50, 0, seed=1), data, "a.parquet")
    write_shard(tagged_table(60, 1, seed=2), data, "b.parquet")
    cfg = local_config(tmp_path, data)
    log = (tmp_path / "serve.log").open("w+")
    serve = subprocess.Popen(
        [sys.executable, "-m", "shardwatch", "serve", "--config", str(cfg), "--interval", "5"],
        cwd=tmp_path,
        # the runner polls for due runs every 2 s instead of 10 (test speed only)
        env=subprocess_env(**prefect_server.env(), PREFECT_RUNNER_POLL_FREQUENCY="2"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 150
        done: list[Any] = []
        while time.monotonic() < deadline and serve.poll() is None:
            done = [r for r in runs_of(prefect_server, cfg) if r.state and r.state.is_completed()]
            if len(done) >= 2:
                break
            time.sleep(1)
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        log.seek(0)
        output = log.read()
        log.close()
    assert len(done) >= 2, output[-3000:]
    assert "serving shardwatch-monitor every 5 s" in output
    messages = sorted(r.state.message for r in done)
    assert messages[0].startswith("run 1: 2 done, 0 unchanged"), messages
    assert messages[1].startswith("run 2: 2 unchanged"), messages
    assert "Monitor_PassModel" not in output  # the parameters of the pass validate


def test_serve_without_a_prefect_api_exits_2_at_once(tmp_path: Path) -> None:
    cfg = local_config(tmp_path, tmp_path)
    home = {"PREFECT_HOME": str(tmp_path / "prefect")}
    started = time.monotonic()
    none = run_shardwatch("serve", "--config", str(cfg), cwd=tmp_path, **home, PREFECT_API_URL="")
    assert none.returncode == 2, none.stderr
    assert "shardwatch serve needs a Prefect server" in none.stderr
    assert "prefect server start" in none.stderr and len(none.stderr.splitlines()) == 1

    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
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
