"""A real `prefect server start` on a loopback port, for the tests that need a Prefect API
(scheduled runs, deployments, Secret blocks). One server per test session: it takes about
10 s to start (the `prefect_server` fixture in conftest.py starts it on first use).

Nothing here touches os.environ: subprocesses get `server.env()`, in-process code runs inside
`server.settings()` (Prefect's temporary settings), and `server.client()` is a sync client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.loopback import free_port

PREFECT = Path(sys.executable).with_name("prefect")
STARTUP_SECONDS = 90.0
IDLE_SERVICES = (
    "LATE_RUNS",
    "FOREMAN",
    "CANCELLATION_CLEANUP",
    "PAUSE_EXPIRATIONS",
    "REPOSSESSOR",
    "TRIGGERS",
    "DB_VACUUM",
    "CLEANUP_RECONCILER",
)


@dataclass
class PrefectServer:
    """A running server: its API URL, its home folder and process."""

    url: str
    home: Path
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """The variables that point a client subprocess (shardwatch, a worker) at this
        server; merge them into its environment."""
        return {
            "PREFECT_API_URL": self.url,
            "PREFECT_HOME": str(self.home / "client"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    @contextmanager
    def settings(self) -> Iterator[None]:
        """In-process Prefect calls (flows, blocks, clients) go to this server."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.url}):
            yield

    @contextmanager
    def client(self) -> Iterator[Any]:
        from prefect.client.orchestration import get_client

        with self.settings(), get_client(sync_client=True) as client:
            yield client

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_prefect_server(home: Path) -> PrefectServer:
    """`prefect server start` on 127.0.0.1 with its database under `home`; returns once
    /api/health answers (fails with the server's log if it does not within 90 s)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        # The loop services no test relies on stay off (half the idle CPU of a server that
        # runs beside the tests); the scheduler, the event persister and the task-run
        # recorder, which schedules, deployments and run records need, stay on.
        **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in IDLE_SERVICES},
    )
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = PrefectServer(f"http://127.0.0.1:{port}/api", home, process)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    text = (home / "server.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"prefect server did not start on port {port}:\n{text}")


def deployment_runs(server: PrefectServer, config: Path) -> list[Any]:
    """The flow runs of the deployment `serve --config CONFIG` made (the server is shared)."""
    with server.client() as client:
        runs = client.read_flow_runs()
    return [
        r for r in runs if r.deployment_id and (r.parameters or {}).get("config") == str(config)
    ]


def serve_until(
    command: list[str],
    *,
    server: PrefectServer,
    config: Path,
    cwd: Path,
    env: dict[str, str],
    runs: int = 2,
    timeout: float = 240.0,
) -> tuple[list[Any], str]:
    """Start `shardwatch serve` (`command`), wait until `runs` of its deployment's runs have
    ended (or `timeout`, or serve exits), stop it with SIGINT; the ended runs and its output.
    The runner polls for due runs every 2 s instead of 10 (test speed only)."""
    log_path = cwd / "serve.log"
    ended: list[Any] = []
    with log_path.open("w") as log:
        serve = subprocess.Popen(
            command,
            cwd=cwd,
            env={**env, **server.env(), "PREFECT_RUNNER_POLL_FREQUENCY": "2"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and serve.poll() is None:
                found = deployment_runs(server, config)
                ended = [r for r in found if r.state and r.state.is_final()]
                if len(ended) >= runs:
                    break
                time.sleep(1)
        finally:
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
    return ended, log_path.read_text()
