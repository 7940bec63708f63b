"""Validation that could not run (no suite, GX crashed) is an errored validation with its
reason, "validation could not run: ...", never a failed check: in the console, the store and
the alerts, and a monitor pass that had one says so and exits 3."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from support.builders import tagged_table, write_shard
from support.prefect_server import PrefectServer
from support.store_checks import ingest, run_shardwatch, write_shards

from shardwatch.store.repository import ResultStore
from shardwatch.validate.gx_adapter import GxPaths, GxValidator

pytestmark = pytest.mark.integration

NOT_RUN = "validation could not run: "


def test_a_run_whose_suite_is_missing_says_so_everywhere_and_exits_3(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    data, conf, cwd = tmp_path / "data", tmp_path / "conf", tmp_path / "elsewhere"
    for folder in (data, conf, cwd):
        folder.mkdir()
    write_shard(tagged_table(60, 0, seed=1), data, "a.parquet")
    write_shard(tagged_table(60, 0, seed=2), data, "b.parquet")
    cfg = conf / "shardwatch.toml"
    cfg.write_text(
        'dataset = "files"\n[validation]\nsuite = "nosuch"\n'
        f'[sources.files]\ntype = "local"\npath = "{data}"\n'
        '[alerts.channels.log]\ntype = "file"\n'
    )
    with prefect_server.settings():  # the session's server, not a temporary one per test
        done = run_shardwatch("run", "--config", str(cfg), cwd=cwd)

    assert done.returncode == 3, done.stdout + done.stderr
    out = done.stdout
    reason = NOT_RUN + "suite 'nosuch' not found"
    assert out.count(f"; {reason}") == 2, out  # one per shard, with the reason
    assert "check(s) failed" not in out
    assert "run 1: 2 done, validation could not run for 2 shard(s), 0 unchanged" in out
    state = conf / ".shardwatch"  # beside the config, not in the working directory
    assert f"Report: {state / 'reports' / 'run-1.html'}" in out
    assert not (cwd / ".shardwatch").exists()

    with sqlite3.connect(state / "shardwatch.sqlite") as db:
        rows = db.execute(
            "SELECT expectation, errored, success, error_message FROM validation_results"
        ).fetchall()
    assert len(rows) == 2
    for expectation, errored, success, message in rows:
        assert (expectation, errored, success) == ("validation", 1, None)
        assert message.startswith(reason) and str(tmp_path) not in message

    docs = state / "docs"
    pages = sorted((docs / "validations" / "nosuch").rglob("validation-not-run.html"))
    assert len(pages) == 2  # Data Docs show each shard's validation, and why it did not run
    index = (docs / "index.html").read_text()
    for page in pages:
        text = page.read_text()
        assert reason in text and "Traceback" not in text and str(tmp_path) not in text
        assert str(page.relative_to(docs)) in index

    alerts = [json.loads(line) for line in (state / "alerts.jsonl").read_text().splitlines()]
    not_run = [a for a in alerts if a["rule"] == "validation-not-run"]
    assert len(not_run) == 2 and all(a["detail"].startswith(reason) for a in not_run)
    assert not [a for a in alerts if a["rule"] == "validation"]  # not "a failed check"


def test_a_gx_crash_is_a_validation_that_could_not_run(store: ResultStore, tmp_path: Path) -> None:
    """A real GX failure: its validation-results store cannot be written (a file stands
    where its folder should be), so every checkpoint run raises."""
    paths = write_shards(tmp_path / "in", 2)
    validator = GxValidator(GxPaths(tmp_path / "gx", tmp_path / "docs"), None, "laion400m")
    results_dir = validator.paths.root / "uncommitted" / "validations"
    shutil.rmtree(results_dir)
    results_dir.write_text("not a folder")

    results = ingest(paths, store, validator=validator)

    assert [r.outcome for r in results] == ["done", "done"]  # the run goes on
    for r in results:
        v = r.validation
        assert v is not None and v.not_run is not None and v.not_run.startswith(NOT_RUN)
        assert "\n" not in v.not_run and v.summary() == v.not_run
        assert str(tmp_path) not in v.not_run  # the reason reaches alerts: no local path
        assert v.count("failed") == 0 and v.count("errored") == 1 and v.docs_page is None
