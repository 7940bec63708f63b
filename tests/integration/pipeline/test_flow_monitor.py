"""The monitor flow end to end on the session's Prefect server, on real PostgreSQL, over a
loopback HTTP source whose shards misbehave: a truncated body, a 503 with Retry-After, a
redirect off the allow-list, a corrupt shard and a shard re-listed under a new name. The run
goes on past each, stores exactly the good shards, alerts, and a second run does nothing."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import tagged_table
from support.loopback import CANARY
from support.prefect_server import PrefectServer
from support.reference import merge_reference, reference_metrics
from support.store_checks import SUITES, shards

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import LAION400M
from shardwatch.pipeline.monitor import load_flow
from shardwatch.store.database import make_engine
from shardwatch.store.report import dataset_report

pytestmark = pytest.mark.integration


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


class ShardServer:
    """Serves `files` (path -> bytes) with Range support; `faults` path -> list of one-shot
    behaviours: "truncate" (half the body, then close), "503" (Retry-After: 1), or
    "redirect:<url>" (every time)."""

    def __init__(self, files: dict[str, bytes], faults: dict[str, list[str]]) -> None:
        self.files, self.faults = files, faults
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                faults = server.faults.get(self.path, [])
                step = faults[0] if faults else None
                if step is not None and not step.startswith("redirect:"):
                    faults.pop(0)
                if step is not None and step.startswith("redirect:"):
                    self.send_response(302)
                    self.send_header("Location", step.removeprefix("redirect:"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if step == "503":
                    self.send_response(503)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes=") and ranged.endswith("-"):
                    start = int(ranged[6:-1])
                part = body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(part)))
                self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if step == "truncate":
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(part)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def prefect(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    """The flows run against the session's Prefect server (shared: read back only what this
    test's own flow run stored)."""
    with prefect_server.settings():
        yield prefect_server


def write_config(tmp_path: Path, url: str, manifest: str, **extra: str) -> Path:
    sections = "".join(f"\n[{name}]\n{body}\n" for name, body in extra.items())
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "web"
database_url = "{url}"
[validation]
suites_dir = "{SUITES}"
[download]
backoff = 0.05
backoff_cap = 2
[alerts.channels.file]
type = "file"
path = "{tmp_path / "alerts.jsonl"}"
[alerts.rules.nsfw-tag-rate]
min_support = 10
[sources.web]
type = "http"
manifest = "{manifest}"
{sections}""")
    return cfg


def scenario(tmp_path: Path) -> tuple[ShardServer, ShardServer, dict[str, pa.Table]]:
    tables = {
        "/a.parquet": tagged_table(200, 2, seed=1),  # 1%: at the limit, not above it
        "/b.parquet": tagged_table(200, 40, seed=2),  # breaches; body truncated once
        "/c.parquet": tagged_table(300, 0, seed=3),  # 503 + Retry-After once
        "/d.parquet": tagged_table(100, 0, seed=4),  # redirected off the allow-list
    }
    files = {path: parquet_bytes(t) for path, t in tables.items()}
    files["/e.parquet"] = files["/a.parquet"][: len(files["/a.parquet"]) // 2]  # corrupt
    files["/f.parquet"] = files["/a.parquet"]  # a re-listed under a new name
    forbidden = ShardServer({"/d.parquet": files["/d.parquet"]}, {})
    target = f"http://127.0.0.2:{forbidden.http.server_address[1]}/d.parquet"
    server = ShardServer(
        files,
        {"/b.parquet": ["truncate"], "/c.parquet": ["503"], "/d.parquet": [f"redirect:{target}"]},
    )
    manifest = [
        {"url": p.lstrip("/"), "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        for p, b in sorted(files.items())
    ]
    server.files["/manifest.json"] = json.dumps(manifest).encode()
    return server, forbidden, tables


def run_flow(cfg: Path) -> Any:
    state = load_flow()(str(cfg), return_state=True)
    return state, state.result(raise_on_failure=False)


def test_the_monitor_runs_past_every_failure_and_a_second_run_does_nothing(
    prefect: PrefectServer,
    postgres_server: Any,
    fresh_postgres_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    server, forbidden, tables = scenario(tmp_path)
    # trust auth ignores the password: it is a canary that must not reach Prefect
    fresh_postgres_url = postgres_server.url(fresh_postgres_database, password=CANARY)
    try:
        cfg = write_config(tmp_path, fresh_postgres_url, f"{server.base}/manifest.json")
        started = datetime.now(UTC) - timedelta(seconds=1)
        state, summary = run_flow(cfg)
        assert state.is_failed(), state  # 3 shards refused: the run says so
        outcomes = {o.uri.rsplit("/", 1)[1]: o for o in summary.outcomes}
        assert {k: o.outcome for k, o in outcomes.items()} == {
            "a.parquet": "done",
            "b.parquet": "done",
            "c.parquet": "done",
            "d.parquet": "quarantined",
            "e.parquet": "quarantined",
            "f.parquet": "quarantined",
        }
        assert "127.0.0.2" in (outcomes["d.parquet"].reason or "")
        assert "not a parquet file" in (outcomes["e.parquet"].reason or "")
        assert outcomes["f.parquet"].reason == f"identical content to {server.base}/a.parquet"
        assert state.message.endswith("3 shard(s) failed")
        assert forbidden.requests == []  # the redirect target was never contacted
        b_requests = [r for r in server.requests if r[0] == "/b.parquet"]
        assert len(b_requests) == 2 and b_requests[1][1] is not None  # resumed with Range
        assert [r[0] for r in server.requests].count("/c.parquet") == 2  # after the 503

        engine = make_engine(fresh_postgres_url)
        report = dataset_report(engine, "web")
        good = [tables[p] for p in ("/a.parquet", "/b.parquet", "/c.parquet")]
        want = merge_reference([reference_metrics(t, LAION400M, BIRHANE2021) for t in good])
        total = report.total.to_dict()
        assert total["rows"] == want["rows"] == 700
        assert total["nsfw_flag_counts"] == want["nsfw_flag_counts"]
        assert total["keyword_nsfw_rows"] == want["keyword_nsfw_rows"]
        assert (report.quarantined, report.failed) == (3, 0)
        statuses = Counter(s["status"] for s in shards(engine))
        assert statuses == {"done": 3, "quarantined": 3}

        lines = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
        (notice,) = [x for x in lines if x["rule"] == "monitor-run"]  # the run ended Failed
        assert notice["observed"] == "Failed" and notice["run_id"] == summary.run_id
        assert notice["detail"].endswith("3 shard(s) failed")
        breached = sorted(
            (x["rule"], x["scope"].rsplit("/", 1)[-1]) for x in lines if x is not notice
        )
        assert breached == [  # b: 40 of 200 tagged NSFW; the dataset: 42 of 700
            ("nsfw-tag-rate", "b.parquet"),
            ("nsfw-tag-rate", "dataset (latest shard versions)"),
            ("shard-failures", "d.parquet"),  # each quarantined shard, once
            ("shard-failures", "e.parquet"),
            ("shard-failures", "f.parquet"),
            ("validation", "b.parquet"),  # the suite's NSFW-tag check fails on b only
        ]
        report_page = tmp_path / ".shardwatch" / "reports" / f"run-{summary.run_id}.html"
        assert report_page.read_text().count("<svg") == 3  # similarity, tag and keyword rates
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterStartTime,
            LogFilter,
            LogFilterTimestamp,
        )

        # the session's server: what this test's runs stored is what came after `started`
        since: Any = started  # Prefect's filters take a datetime (typed as its own alias)
        with get_client(sync_client=True) as client:
            artifacts = [a for a in client.read_artifacts() if a.created and a.created >= started]
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since))
            )
            logs = client.read_logs(
                log_filter=LogFilter(timestamp=LogFilterTimestamp(after_=since))
            )
        (artifact,) = [a for a in artifacts if a.key == "shardwatch-report"]
        assert "| desi |" in str(artifact.data) and "b.parquet" not in str(artifact.data)
        assert "quarantined" in str(artifact.data) and "data:image/svg+xml" in str(artifact.data)
        assert {r.name for r in runs} and logs  # what Prefect stored about the runs ...
        stored = repr([r.parameters for r in runs]) + repr([log.message for log in logs])
        assert CANARY not in stored + str(artifact.data)  # ... never holds the password

        before = len(server.requests)
        state2, second = run_flow(cfg)
        assert state2.is_completed() and second.outcomes == ()
        assert second.unchanged == 6
        assert [r[0] for r in server.requests[before:]] == ["/manifest.json"]
        assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == len(lines)
        assert not list((tmp_path / ".shardwatch" / "cache").glob("*.parquet"))
        engine.dispose()
    finally:
        server.close()
        forbidden.close()


def stored_results(url: str) -> dict[str, Any]:
    """Everything the store says about dataset `web`, minus ids and timestamps."""
    engine = make_engine(url)
    try:
        report = dataset_report(engine, "web").to_dict()
        rows = sorted(
            (s["uri"].rsplit("/", 1)[1], s["status"], s["reason"]) for s in shards(engine)
        )
    finally:
        engine.dispose()
    return {"report": report, "shards": rows}


def test_the_dask_runner_gives_results_identical_to_the_default_runner(
    prefect: PrefectServer,
    postgres_server: Any,
    fresh_postgres_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A LocalCluster of 2 worker processes vs the thread pool, on two fresh databases. Port
    8787, Dask's default for the scheduler's HTTP server, is held meanwhile, as by a second
    pass or another cluster: the flow's cluster must not need it."""
    second = fresh_postgres_database + "_dask"
    postgres_server.create_database(second)
    results = {}
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", 8787))
            holder.listen()
        except OSError:
            pass  # something else holds it already: the same condition

        for runner, database in (("thread", fresh_postgres_database), ("dask", second)):
            work = tmp_path / runner
            work.mkdir()
            monkeypatch.chdir(work)
            server, forbidden, _ = scenario(work)
            try:
                url = postgres_server.url(database)
                cfg = write_config(
                    work,
                    url,
                    f"{server.base}/manifest.json",
                    monitor=f'task_runner = "{runner}"\nconcurrency = 2',
                    validation=f'enabled = false\nsuites_dir = "{SUITES}"',
                )
                text = cfg.read_text().replace(f'[validation]\nsuites_dir = "{SUITES}"\n', "")
                cfg.write_text(text)
                state, _ = run_flow(cfg)
                assert state.is_failed() and state.message.endswith("3 shard(s) failed"), state
                base = server.base
                refused = f"127.0.0.2:{forbidden.http.server_address[1]}"
            finally:
                server.close()
                forbidden.close()
            got = stored_results(url)
            # each run has its own ports
            text = json.dumps(got).replace(base, "BASE").replace(refused, "REFUSED")
            results[runner] = json.loads(text)
            for entry in results[runner]["report"]["shards"]:  # failure times differ by run
                for failure in entry.get("history", ()):
                    failure.pop("at")
    finally:
        holder.close()
        postgres_server.drop_database(second)
    assert results["dask"] == results["thread"]
    assert results["thread"]["report"]["total"]["rows"] == 700
    assert [s[1] for s in results["thread"]["shards"]].count("done") == 3
