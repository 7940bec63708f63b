"""The monitor flow's final state and its `monitor-run` notice, on a real Prefect server:
a pass with a refused shard ends `Failed` with the counts and tells Slack; a pass killed
with SIGTERM ends `Crashed` and tells Slack too. Slack is a real loopback receiver."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.builders import tagged_table, write_shard
from support.loopback import CANARY, SlackReceiver
from support.prefect_server import PrefectServer
from support.store_checks import subprocess_env

from shardwatch.pipeline.flow_hooks import final_state
from shardwatch.pipeline.monitor import PassSummary, ShardOutcome, load_flow

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, slack_url: str, source: str) -> Path:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(
        'dataset = "hooked"\n'
        f'database_url = "sqlite:///{tmp_path / "store.sqlite"}"\n'
        "[validation]\nenabled = false\n"
        f'[download]\ncache_dir = "{tmp_path / "cache"}"\nbackoff = 0.05\n'
        f'[alerts.channels.team]\ntype = "slack"\nwebhook_url = "{slack_url}"\n'
        f"{source}"
    )
    return cfg


def slack_text(receiver: SlackReceiver) -> str:
    return json.dumps(receiver.bodies)


def test_a_pass_with_a_refused_shard_ends_failed_and_tells_slack(
    prefect_server: PrefectServer, slack: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_shard(tagged_table(40, 0, seed=1), data, "good.parquet")
    (data / "bad.parquet").write_bytes(b"not parquet at all")
    receiver = slack()
    source = f'[sources.files]\ntype = "local"\npath = "{data}"\n'
    cfg = write_config(tmp_path, receiver.url.get_secret_value(), source)
    with prefect_server.settings():
        state = load_flow()(str(cfg), return_state=True)
        summary = state.result(raise_on_failure=False)
    assert state.is_failed()
    assert state.message == "run 1: 1 done, 1 quarantined, 0 unchanged; 1 shard(s) failed"
    assert isinstance(summary, PassSummary) and summary.failed == 1  # the result is kept
    with prefect_server.client() as client:
        stored = client.read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None and stored.state.is_failed()
    assert stored.state.message == state.message

    # the shard-failures alert for bad.parquet, then the run's own notice
    assert len(receiver.bodies) == 2
    assert "shard-failures" in json.dumps(receiver.bodies[0])
    assert "bad.parquet" in json.dumps(receiver.bodies[0])
    text = slack_text(receiver)
    assert "monitor-run" in text and "did not complete" in text
    assert "1 shard(s) failed" in text and "Failed" in text
    assert "hooked" in text and "good.parquet" not in text
    assert str(tmp_path) not in text and CANARY not in repr(stored.parameters)

    with prefect_server.settings():  # nothing new: Completed, and no notice
        again = load_flow()(str(cfg), return_state=True)
    assert again.is_completed() and again.message == "run 2: 2 unchanged"
    assert len(receiver.bodies) == 2


class HangingManifest:
    """An HTTP source whose manifest request hangs until `release`, so a pass is caught
    mid-way; `asked` is set when the request arrives."""

    def __init__(self) -> None:
        self.asked, self.release = threading.Event(), threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.asked.set()
                owner.release.wait(60)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/manifest.json"

    def close(self) -> None:
        self.release.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def hanging() -> Iterator[HangingManifest]:
    source = HangingManifest()
    yield source
    source.close()


def test_a_pass_killed_by_sigterm_ends_crashed_and_tells_slack(
    prefect_server: PrefectServer, slack: Any, hanging: HangingManifest, tmp_path: Path
) -> None:
    receiver = slack()
    source = f'[sources.web]\ntype = "http"\nmanifest = "{hanging.url}"\n'
    cfg = write_config(tmp_path, receiver.url.get_secret_value(), source)
    run = subprocess.Popen(
        [sys.executable, "-m", "shardwatch", "run", "--config", str(cfg)],
        cwd=tmp_path,
        env=subprocess_env(**prefect_server.env()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert hanging.asked.wait(120), "the pass never asked for the manifest"
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode != 0
    deadline = time.monotonic() + 30
    while not receiver.bodies and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(receiver.bodies) == 1
    text = slack_text(receiver)
    assert "crashed" in text and "Crashed" in text and "monitor-run" in text, text
    assert "critical" in text.lower()
    assert str(tmp_path) not in text and "127.0.0.1" not in text, text
    with prefect_server.client() as client:
        runs = [
            r
            for r in client.read_flow_runs()
            if (r.parameters or {}).get("config") == str(cfg) and r.parent_task_run_id is None
        ]
    assert [r.state.type.value for r in runs if r.state] == ["CRASHED"], output[-2000:]


def _summary(*outcomes: ShardOutcome, source_errors: tuple[str, ...] = ()) -> PassSummary:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    return PassSummary(7, outcomes, 0, source_errors, "alerts: none", None, counts)


def test_final_state_is_failed_for_failed_shards_unlisted_sources_and_unrun_validation() -> None:
    done = ShardOutcome("files", "a.parquet", "done")
    ok = final_state(_summary(done))
    assert ok.is_completed() and ok.message == "run 7: 1 done, 0 unchanged"

    refused = final_state(_summary(done, ShardOutcome("files", "b.parquet", "quarantined")))
    assert refused.is_failed()
    assert refused.message == "run 7: 1 done, 1 quarantined, 0 unchanged; 1 shard(s) failed"

    unlisted = final_state(_summary(done, source_errors=("mirror: HTTP 503",)))
    assert unlisted.is_failed()
    assert unlisted.message == "run 7: 1 done, 0 unchanged, 1 source(s) not listed"

    reason = "validation could not run: suite 'x' not found"
    unvalidated = final_state(_summary(ShardOutcome("f", "c", "done", validation_error=reason)))
    assert unvalidated.is_failed()
    assert unvalidated.message == (
        "run 7: 1 done, validation could not run for 1 shard(s), 0 unchanged"
    )


def test_final_state_is_failed_for_shards_left_busy_lost_or_pending() -> None:
    """A shard the pass could not finish (another worker's live claim, a claim taken over
    before the commit, a task that never returned) is not done: the run is not Completed."""
    done = ShardOutcome("files", "a.parquet", "done")
    for kind in ("busy", "lost", "pending"):
        left = ShardOutcome("files", "b.parquet", kind)  # type: ignore[arg-type]
        state = final_state(_summary(done, left))
        assert state.is_failed(), kind
        counts = ", ".join(sorted([f"1 {kind}", "1 done"]))
        assert state.message == f"run 7: {counts}, 1 not done, 0 unchanged"
        result = state.result(raise_on_failure=False)
        assert isinstance(result, PassSummary) and result.not_done == 1
    assert _summary(done, ShardOutcome("f", "c", "skipped")).not_done == 0
