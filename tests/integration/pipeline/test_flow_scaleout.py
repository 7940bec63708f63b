"""More than one worker, for real: an external `dask scheduler` and 2 `dask worker` processes,
started from another folder, run the monitor flow with validation on over PostgreSQL.

The stored totals equal the thread pool's, every shard is validated and listed in the one
Data Docs index the flow prints. Then a worker is killed with SIGKILL while it holds a
shard's claim: the run reports that shard not done and `shardwatch run` exits 3; once the
claim has expired, the next pass stores it and the totals are exact."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from support.builders import tagged_table
from support.prefect_server import PrefectServer
from support.reference import merge_reference, reference_metrics
from support.store_checks import SUITES, subprocess_env

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import LAION400M
from shardwatch.pipeline.monitor import load_flow
from shardwatch.store.database import make_engine
from shardwatch.store.report import dataset_report

pytestmark = pytest.mark.integration

DASK = str(Path(sys.executable).with_name("dask"))
SHARDS, ROWS, LEASE = 8, 20_000, 30  # the killed shard's retry comes well within LEASE


class Folder:
    """Serves a folder over loopback HTTP (quiet). A file named in `hold` is answered only
    once every other listed shard has been asked for (at most 30 s later: `held_out`)."""

    def __init__(self, folder: Path, hold: str | None = None) -> None:
        self.asked: list[str] = []
        self.others = threading.Event()
        self.held_out = False
        server = self

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                server.asked.append(name)
                shards = {p.name for p in folder.glob("*.parquet")}
                if shards - {hold} <= set(server.asked):
                    server.others.set()
                if name == hold and not server.others.wait(30):
                    server.held_out = True
                super().do_GET()

        handler = functools.partial(Quiet, directory=str(folder))
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def write_shards(folder: Path, seed: int) -> list[Any]:
    """SHARDS shards and their manifest; the tables, for the reference totals."""
    tables = [tagged_table(ROWS, 5 + i, seed=seed + i) for i in range(SHARDS)]
    manifest = []
    for i, table in enumerate(tables):
        path = folder / f"part-{i}.parquet"
        pq.write_table(table, path)
        body = path.read_bytes()
        sha = hashlib.sha256(body).hexdigest()
        manifest.append({"url": path.name, "size": len(body), "sha256": sha})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return tables


def config(folder: Path, url: str, manifest: str, monitor: str) -> Path:
    cfg = folder / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "web"
database_url = "{url}"
lease_seconds = {LEASE}
[alerts]
enabled = false
[monitor]
{monitor}
[sources.web]
type = "http"
manifest = "{manifest}"
""")
    return cfg


class Cluster:
    """`dask scheduler` and 2 `dask worker` processes (1 thread each, with their nannies),
    started in `folder` with `env`; stopped by process group."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        file = folder / "scheduler.json"
        # --no-dashboard alone still binds the HTTP server to port 8787, which another test's
        # LocalCluster may want at the same time: a free loopback port instead
        common = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
        self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--scheduler-file", str(file), *common], folder, env)
        deadline = time.monotonic() + 60
        while not file.is_file() or not file.read_text().strip():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        self.address = json.loads(file.read_text())["address"]
        self.workers = [
            self._start([DASK, "worker", self.address, "--nthreads", "1", "--host", "127.0.0.1",
                         "--memory-limit", "0", "--name", f"w{i}", *common], folder, env)
            for i in range(2)
        ]
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)

    def _start(self, args: list[str], folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, cwd=folder, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def worker_pids(self) -> set[int]:
        """The worker processes (the nannies' children) and the nannies."""
        pids = set()
        for proc in self.workers:
            pids.add(proc.pid)
            pids.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
        return pids

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture
def prefect(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    with prefect_server.settings():
        yield prefect_server


def totals(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        total: dict[str, Any] = dataset_report(engine, "web").total.to_dict()
        return total
    finally:
        engine.dispose()


def statuses(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT uri, status FROM shards")).all()
        return {uri.rsplit("/", 1)[1]: status for uri, status in rows}
    finally:
        engine.dispose()


def backends(postgres_server: Any, database: str) -> int:
    """Connections open to `database`, this query's own excluded."""
    engine = make_engine(postgres_server.url("postgres"))
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = :d"
            return int(conn.execute(text(query), {"d": database}).scalar_one())
    finally:
        engine.dispose()


def kill_a_worker_holding_a_claim(url: str, cluster: Cluster, timeout: float) -> int:
    """SIGKILL the worker process that holds a live shard claim, as soon as one does."""
    engine = make_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                owners = conn.execute(
                    text("SELECT lease_owner FROM shards WHERE status = 'processing'")
                ).scalars().all()
            for owner in owners:
                pid = int(str(owner).split(":")[1])
                if pid in cluster.worker_pids():
                    os.kill(pid, signal.SIGKILL)
                    return pid
            time.sleep(0.02)
    finally:
        engine.dispose()
    raise AssertionError("no worker held a claim")


def test_a_slow_shard_holds_one_slot_not_a_group(
    prefect: PrefectServer, tmp_path: Path
) -> None:
    """A rolling queue of 2 slots: while the first shard is held, the 3 others go through the
    second slot one after another (in fixed groups of 2, they would wait for it)."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        pq.write_table(tagged_table(50, 0, seed=i), data / f"part-{i}.parquet")
    manifest = [{"url": f"part-{i}.parquet"} for i in range(4)]
    (data / "manifest.json").write_text(json.dumps(manifest))
    server = Folder(data, hold="part-0.parquet")
    try:
        cfg = config(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}",
                     f"{server.base}/manifest.json", 'task_runner = "thread"\nconcurrency = 2')
        with cfg.open("a") as fh:
            fh.write("[validation]\nenabled = false\n")
        state = load_flow()(str(cfg), return_state=True)
    finally:
        server.close()
    assert state.is_completed(), state.message
    assert state.result(raise_on_failure=False).counts == {"done": 4}
    assert not server.held_out, server.asked  # part-3 was asked for while part-0 was held


def test_an_external_cluster_started_elsewhere_validates_stores_and_recovers_from_a_kill(
    prefect: PrefectServer,
    postgres_server: Any,
    fresh_postgres_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, flow_dir, elsewhere = tmp_path / "data", tmp_path / "flow", tmp_path / "elsewhere"
    for folder in (data, flow_dir, elsewhere):
        folder.mkdir()
    shutil.copytree(SUITES, flow_dir / "suites")
    tables = write_shards(data, seed=1)
    server = Folder(data)
    threads_db = fresh_postgres_database + "_threads"
    postgres_server.create_database(threads_db)
    dask_url = postgres_server.url(fresh_postgres_database)
    # the suites' folder is relative, as in the issue: only the flow's folder has it
    env = subprocess_env(**prefect.env(), SHARDWATCH_VALIDATION__SUITES_DIR="suites")
    monkeypatch.chdir(flow_dir)
    monkeypatch.setenv("SHARDWATCH_VALIDATION__SUITES_DIR", "suites")
    cluster = Cluster(elsewhere, env)
    try:
        manifest = f"{server.base}/manifest.json"
        threads_dir = flow_dir / "threads"
        threads_dir.mkdir()
        reference = config(threads_dir, postgres_server.url(threads_db), manifest,
                           'task_runner = "thread"\nconcurrency = 2')
        state = load_flow()(str(reference), return_state=True)
        assert state.is_completed(), state.message
        dask_dir = flow_dir / "dask"
        dask_dir.mkdir()
        cfg = config(dask_dir, dask_url, manifest,
                     f'task_runner = "dask"\ndask_address = "{cluster.address}"\nconcurrency = 4')
        state = load_flow()(str(cfg), return_state=True)
        summary = state.result(raise_on_failure=False)
        assert state.is_completed(), state.message
        assert summary.counts == {"done": SHARDS}
        assert totals(dask_url) == totals(postgres_server.url(threads_db))
        assert totals(dask_url)["rows"] == SHARDS * ROWS
        for o in summary.outcomes:  # validated on the workers, with the suites they were sent
            assert o.validation_error is None and o.docs_page, o
            assert Path(o.docs_page).is_file()
        index = Path(summary.data_docs).read_text()
        for o in summary.outcomes:
            assert f"shard-{o.shard_id}.v{o.version}" in index, o.uri
        # each worker process keeps one engine: 1 thread, so 1 connection in use at a time
        assert backends(postgres_server, fresh_postgres_database) <= 2 * (1 + 1)
        assert not list(elsewhere.glob("**/*.html"))  # nothing written in the workers' folder
        assert not (elsewhere / ".shardwatch").exists()

        # new content for every shard; a worker dies while it holds a claim
        tables = write_shards(data, seed=100)
        run = subprocess.Popen(
            [sys.executable, "-m", "shardwatch", "run", "--config", str(cfg)],
            cwd=flow_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            killed_at = time.monotonic()
            kill_a_worker_holding_a_claim(dask_url, cluster, timeout=240)
            killed_at = time.monotonic()
            out, err = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 3, out + err
        assert "1 not done" in out, out
        left = [line for line in out.splitlines() if line.startswith(("busy", "pending"))]
        assert len(left) == 1, out

        time.sleep(max(0.0, killed_at + LEASE + 1 - time.monotonic()))  # the claim expires
        again = subprocess.run(
            [sys.executable, "-m", "shardwatch", "run", "--config", str(cfg)],
            cwd=flow_dir, env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert set(statuses(dask_url).values()) == {"done"}
        want = merge_reference([reference_metrics(t, LAION400M, BIRHANE2021) for t in tables])
        got = totals(dask_url)
        assert got["rows"] == want["rows"] == SHARDS * ROWS
        assert got["nsfw_flag_counts"] == want["nsfw_flag_counts"]
    finally:
        cluster.stop()
        server.close()
        postgres_server.drop_database(threads_db)
