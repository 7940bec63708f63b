"""infra/prefect.yaml for real: `prefect deploy` from a folder outside the repository, a
process worker, and two runs of the deployment on a real `prefect server start`: one whose
config comes from the worker's SHARDWATCH_CONFIG, one from the `config` parameter. Nothing
else is set up (no SHARDWATCH_HOME, no checkout on the worker's path)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from support.builders import tagged_table, write_shard
from support.prefect_server import PREFECT, PrefectServer
from support.store_checks import subprocess_env

pytestmark = pytest.mark.integration

PREFECT_YAML = Path(__file__).resolve().parents[3] / "infra" / "prefect.yaml"


def prefect(server: PrefectServer, cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(PREFECT), "--no-prompt", *args],
        cwd=cwd,
        env=subprocess_env(**server.env()),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def config(folder: Path, data: Path) -> Path:
    folder.mkdir()
    cfg = folder / "shardwatch.toml"
    cfg.write_text(
        f'dataset = "{folder.name}"\n'
        f'database_url = "sqlite:///{folder / "store.sqlite"}"\n'
        "[validation]\nenabled = false\n"
        f'[download]\ncache_dir = "{folder / "cache"}"\n'
        f'[sources.files]\ntype = "local"\npath = "{data}"\n'
    )
    return cfg


def final(server: PrefectServer, run_id: UUID, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.client() as client:
            run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} did not finish: {run.state}")


def test_prefect_deploy_and_a_process_worker_run_the_packaged_flow(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_shard(tagged_table(30, 0, seed=1), data, "a.parquet")
    by_env, by_param = config(tmp_path / "env", data), config(tmp_path / "param", data)
    work = tmp_path / "deploy"
    work.mkdir()
    prefect(prefect_server, work, "work-pool", "create", "shardwatch", "--type", "process")
    deploy = ("deploy", "--prefect-file", str(PREFECT_YAML), "--name", "monitor-hourly")
    prefect(prefect_server, work, *deploy)
    log = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen(
        [str(PREFECT), "worker", "start", "--pool", "shardwatch", "--type", "process"],
        cwd=work,
        env=subprocess_env(**prefect_server.env(), SHARDWATCH_CONFIG=str(by_env)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        from prefect.deployments import run_deployment

        runs = []
        for params in ({}, {"config": str(by_param)}):
            with prefect_server.settings():
                started = run_deployment(
                    "shardwatch-monitor/monitor-hourly", parameters=params, timeout=0
                )
            # run_deployment is sync-compatible: called outside an event loop it returns the run
            runs.append(final(prefect_server, started.id))  # type: ignore[union-attr]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.seek(0)
        output = log.read()
        log.close()
    for run in runs:
        assert run.state.is_completed(), output[-3000:]
        assert run.state.message == "run 1: 1 done, 0 unchanged"
    for cfg in (by_env, by_param):  # each run read its own config
        assert (cfg.parent / "store.sqlite").is_file()
