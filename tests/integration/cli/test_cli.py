"""The `shardwatch` command line, run in-process through the console script's code path
(tests/support/cli_inprocess.py); `scan --json` also as a real subprocess, for its stdout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import REAL_FIXTURES, edge_case_table, real_fixture
from support.compare import assert_same_metrics
from support.reference import reference_metrics
from support.store_checks import run_shardwatch, run_shardwatch_child

from shardwatch.core.profiles import LAION400M

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
REAL = REAL_FIXTURES / "laion400m_url_text_10000.parquet"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_shardwatch(*args, cwd=cwd)


@pytest.fixture(autouse=True)
def _real_file_present() -> None:
    real_fixture(REAL.name)


def test_scan_json_on_real_url_text_file() -> None:
    # a real child process: stdout holds exactly the JSON document, as a user sees it
    proc = run_shardwatch_child("scan", str(REAL), "--json", "--progress")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document, even with --progress
    total = doc["total"]
    assert {"nsfw_flag_counts", "similarity"} <= set(total["unavailable"])
    assert "nsfw_flag_counts" not in total and "similarity" not in total
    assert doc["shards"][0]["uri"] == str(REAL)
    reference = reference_metrics(pq.read_table(REAL), LAION400M, "precise2026")  # the default
    assert_same_metrics(total, reference, context="CLI total vs reference")
    assert_same_metrics(doc["shards"][0], reference, context="CLI shard vs reference")


def test_human_output_names_unavailable_metrics_and_table1() -> None:
    proc = run("scan", str(REAL), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "unavailable" in proc.stdout
    assert "nsfw_flag_counts" in proc.stdout and "similarity" in proc.stdout
    assert "Table 1" in proc.stdout and "desi" in proc.stdout
    assert proc.stderr == ""


def test_unreadable_shard_exits_3_and_the_rest_are_scanned(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(edge_case_table(), good)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    missing = tmp_path / "missing.parquet"
    proc = run("scan", str(bad), str(good), str(missing), "--json")
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert [s["uri"] for s in doc["shards"]] == [str(good)]
    assert {e["uri"] for e in doc["errors"]} == {str(bad), str(missing)}
    assert str(bad) in proc.stderr and "not a readable parquet file" in proc.stderr
    assert str(missing) in proc.stderr and "no such file" in proc.stderr
    reference = reference_metrics(edge_case_table(), LAION400M, "precise2026")
    assert_same_metrics(doc["total"], reference, context="total of the readable shard")


def test_totals_are_the_merge_of_shards(tmp_path: Path) -> None:
    table = edge_case_table()
    half = table.num_rows // 2
    paths = []
    for i, part in enumerate((table.slice(0, half), table.slice(half))):
        paths.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(part, paths[-1])
    doc = json.loads(run("scan", *map(str, paths), "--json").stdout)
    shard_rows = [s["rows"] for s in doc["shards"]]
    assert sum(shard_rows) == doc["total"]["rows"] == table.num_rows
    kw = sum(s["keyword_nsfw_rows"] for s in doc["shards"])
    assert kw == doc["total"]["keyword_nsfw_rows"]
    for term, stats in doc["total"]["terms"].items():
        assert stats["matches"] == sum(s["terms"][term]["matches"] for s in doc["shards"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--lexicon", "nope"], "unknown lexicon 'nope'"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    shard = tmp_path / "s.parquet"
    pq.write_table(edge_case_table(), shard)
    proc = run("scan", str(shard), *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


def test_bad_config_file_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text("[lexicons.x]\nterms = [{term = 'a', mode = 'fuzzy'}]\n")
    proc = run("scan", str(REAL), "--config", str(cfg))
    assert proc.returncode == 2
    assert str(cfg) in proc.stderr and "mode" in proc.stderr


def test_untrusted_names_are_printed_literally(tmp_path: Path) -> None:
    """Rich markup in a file name must not be interpreted (or swallowed) by the console."""
    shard = tmp_path / "[bold red]x[blink].parquet"
    pq.write_table(pa.table({"TEXT": ["a desi caption"], "URL": ["http://e/x"]}), shard)
    proc = run("scan", str(shard), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "[bold red]x[blink].parquet" in proc.stdout


@pytest.mark.parametrize(
    "command",
    [[], ["scan"], ["config"], ["config", "show"], ["ingest"], ["docs"], ["suites", "check"],
     ["alerts", "test"], ["alerts", "list"], ["alerts", "relay"], ["alerts", "retry"],
     ["run"], ["serve"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    proc = run(*command, "--help")
    assert proc.returncode == 0
    assert "Usage" in proc.stdout


def test_readme_documents_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = ("shardwatch scan", "shardwatch config", "shardwatch ingest", "shardwatch db",
                "shardwatch report", "shardwatch docs", "shardwatch suites check",
                "shardwatch alerts test", "shardwatch alerts list", "shardwatch run",
                "shardwatch serve", "make demo", "make test")
    for command in commands:
        assert command in readme
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |"):
        assert code in readme


def test_directories_expand_to_their_parquet_files(tmp_path: Path) -> None:
    table = edge_case_table()
    for i in range(2):
        pq.write_table(table, tmp_path / f"part-{i}.parquet")
    (tmp_path / "notes.txt").write_text("not a shard")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("scan", str(tmp_path), str(empty), "--json")
    doc = json.loads(proc.stdout)
    assert [Path(s["uri"]).name for s in doc["shards"]] == ["part-0.parquet", "part-1.parquet"]
    assert doc["total"]["rows"] == 2 * table.num_rows
    assert proc.returncode == 3
    assert doc["errors"] == [{"uri": str(empty), "error": "is a directory with no *.parquet files"}]


def test_config_names_the_lexicon_in_effect_and_lists_forms() -> None:
    shown = run("config", "show")
    assert shown.returncode == 0 and json.loads(shown.stdout)["lexicon"] == "precise2026"
    listed = run("config", "lexicons")
    assert listed.returncode == 0, listed.stderr
    assert "precise2026 (selected):" in listed.stdout and "birhane2021:" in listed.stdout
    assert "black woman (word; forms: black women, black-woman, black-women)" in listed.stdout
    assert "hot (substring)" in listed.stdout  # the paper's rule, verbatim
    assert "lexicon precise2026" in run("config", "profiles").stdout
