"""`shardwatch ingest` with validation, `shardwatch docs [--serve]` and `shardwatch suites check`
run in-process (tests/support/cli_inprocess.py; `docs --serve` and a default `suites check` as
real subprocesses) in a scratch folder (so `.shardwatch/` lands there)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.builders import adversarial_table, write_shard
from support.store_checks import SUITES, run_shardwatch, subprocess_env, write_shards

from shardwatch.core.profiles import BUILTIN_PROFILES

pytestmark = pytest.mark.integration


def test_ingest_validates_reports_failures_and_prints_the_data_docs_path(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "in", 2)
    done = run_shardwatch("ingest", *map(str, shards), cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # the adversarial shards fail checks
    out = done.stdout
    assert out.count("validation (laion400m): ") == 2
    assert "FAILED " in out and "expect_column_values_to_be_in_set on nsfw_tag" in out
    index = tmp_path / ".shardwatch" / "docs" / "index.html"
    assert f"Data Docs: {index}" in out
    assert index.is_file()
    pages = sorted((index.parent / "validations").rglob("*.html"))
    assert len(pages) == 2
    for page in pages:
        assert f"page: {page}" in out

    again = run_shardwatch("ingest", *map(str, shards), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # skipped: nothing new was validated
    payload = json.loads(again.stdout)
    assert [r["outcome"] for r in payload["results"]] == ["skipped", "skipped"]
    assert payload["data_docs"] == str(index)


def test_json_output_carries_each_check_and_a_missing_column_is_errored(tmp_path: Path) -> None:
    source = adversarial_table(300, 8, int_ids=True).drop_columns(["WIDTH"])
    shard = write_shard(source, tmp_path)
    done = run_shardwatch("ingest", str(shard), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    v = result["validation"]
    width = [c for c in v["checks"] if c["column"] == "width"]
    assert [c["status"] for c in width] == ["errored"]
    # A missing column is schema drift: the checks it kept from running (on width, and the
    # column-set check) errored with the drift as their reason; the data failures remain.
    assert width[0]["reason"] == "schema drift: missing: WIDTH"
    assert result["schema_drift"]["missing"] == ["WIDTH"]
    assert v["errored"] == 2 and v["failed"] >= 1
    text = run_shardwatch("ingest", str(shard), "--force", cwd=tmp_path)
    assert "schema drift: missing: WIDTH" in text.stdout
    assert "ERRORED 2 check(s) by the schema drift" in text.stdout
    assert "on width" not in text.stdout


def test_no_validate_and_a_missing_suite(tmp_path: Path) -> None:
    (shard,) = write_shards(tmp_path / "in", 1)
    off = run_shardwatch("ingest", str(shard), "--no-validate", cwd=tmp_path)
    assert off.returncode == 0, off.stderr
    assert "validation" not in off.stdout and not (tmp_path / ".shardwatch" / "gx").exists()
    missing = run_shardwatch(
        "ingest", str(shard), "--force", cwd=tmp_path, SHARDWATCH_VALIDATION__SUITE="nosuch",
    )
    assert missing.returncode == 2
    (line,) = [x for x in missing.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: suite 'nosuch' not found: no nosuch.json in "
                           "validation.suites_dir, and no packaged default of that name")
    assert "Traceback" not in missing.stderr
    # a suites_dir without the suite falls back to the packaged default, and says so
    fallback = run_shardwatch(
        "ingest", str(shard), "--force", cwd=tmp_path,
        SHARDWATCH_VALIDATION__SUITES_DIR=str(tmp_path / "nowhere"),
    )
    assert fallback.returncode in (0, 1), fallback.stderr  # validated: checks pass or fail
    assert "validating with suite 'laion400m' (default: " in fallback.stderr
    assert "validation (laion400m): " in fallback.stdout


def test_suites_check_names_the_bad_file_and_exits_2(tmp_path: Path) -> None:
    good = run_shardwatch("suites", "check", str(SUITES), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    count = len(BUILTIN_PROFILES)  # one default suite per built-in profile
    assert f"checked {count} suite file(s)" in good.stdout and "no problem(s)" in good.stdout
    env = subprocess_env()
    del env["SHARDWATCH_VALIDATION__SUITES_DIR"]  # no suites_dir: the packaged defaults
    default = subprocess.run([sys.executable, "-m", "shardwatch", "suites", "check"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert default.returncode == 0, default.stderr
    assert f"checked {count} suite file(s)" in default.stdout
    bad = tmp_path / "suites"
    bad.mkdir()
    (bad / "broken.json").write_text(json.dumps({"name": "broken", "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "mostly": 2}}
    ]}))
    (bad / "typo.json").write_text(json.dumps({"name": "typo", "expectations": [
        {"type": "expect_column_values_to_be_unqiue", "kwargs": {"column": "id"}}
    ]}))
    done = run_shardwatch("suites", "check", str(bad), cwd=tmp_path)
    assert done.returncode == 2
    assert f"error: {bad / 'broken.json'}: expectation 1 (expect_column_values_to_be_between)" \
        in done.stderr
    assert f"error: {bad / 'typo.json'}: expectation 1: unknown expectation type" in done.stderr
    assert "2 problem(s)" in done.stdout


def test_old_results_are_pruned_to_the_configured_limit(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "in", 3)
    done = run_shardwatch(
        "ingest", *map(str, shards), cwd=tmp_path, SHARDWATCH_VALIDATION__KEEP_RESULTS="2"
    )
    assert done.returncode == 1, done.stderr
    pages = list((tmp_path / ".shardwatch" / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 2
    # pruned and re-indexed during the ingest: every page still loads nothing from a CDN
    site = list((tmp_path / ".shardwatch" / "docs").rglob("*.html"))
    assert len(site) == 4 and not [p for p in site if "https://" in p.read_text()]
    rebuilt = run_shardwatch("docs", cwd=tmp_path, SHARDWATCH_VALIDATION__KEEP_RESULTS="1")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "pruned 1 old validation result(s)" in rebuilt.stdout
    assert len(list((tmp_path / ".shardwatch" / "docs" / "validations").rglob("*.html"))) == 1


def test_docs_serve_serves_the_site_on_localhost(tmp_path: Path) -> None:
    (shard,) = write_shards(tmp_path / "in", 1)
    run_shardwatch("ingest", str(shard), cwd=tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shardwatch", "docs", "--serve", "--port", "0"],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].startswith("Data Docs: ")
        assert lines[1].startswith("serving http://127.0.0.1:")
        url = lines[1].split()[1]
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status == 200 and "laion400m" in body
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
