"""Exit codes: only the documented table, one line per error (cli_errors.py). Most commands
run in-process through the console script's code path (tests/support/cli_inprocess.py); the usage
errors and `run` are checked as a user sees them, from a real `python -m shardwatch` process."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.builders import real_fixture
from support.store_checks import run_shardwatch, run_shardwatch_child

from shardwatch.cli.errors import exit_code_for, status_code
from shardwatch.cli.exit_codes import ExitCode
from shardwatch.scan.reader import ShardReadError
from shardwatch.settings.config import ConfigError
from shardwatch.store.errors import StoreConfigError

CANARY = "c4n4ry-Pa55"
BAD_URLS = [
    f"notaurl{CANARY}",
    f"postgresql://u:{CANARY}@db.example:abc/x",
    f"postgresql://u:{CANARY}@[::1/x",
    f"postgres://u:{CANARY}@127.0.0.1/x",
]
# Every command that opens the store (run has its own test: it needs a source).
STORE_COMMANDS = [
    ["report"],
    ["db", "upgrade"],
    ["db", "current"],
    ["alerts", "list"],
    ["alerts", "relay"],
    ["alerts", "retry"],
    ["export-flagged", "--rule", "tag-nsfw", "--out", "out.parquet"],
    ["ingest", "--no-validate", "--no-alerts", "shard.parquet"],
]


@pytest.mark.unit
def test_exceptions_map_to_documented_codes() -> None:
    assert exit_code_for(ConfigError("bad"))[0] is ExitCode.USAGE
    assert exit_code_for(StoreConfigError("bad url"))[0] is ExitCode.USAGE
    assert exit_code_for(ShardReadError("s", "gone"))[0] is ExitCode.INPUT
    assert exit_code_for(OSError("disk"))[0] is ExitCode.INPUT
    code, message = exit_code_for(RuntimeError("boom\nsecond line"))
    assert code is ExitCode.INPUT and message == "internal error (RuntimeError): boom"
    assert status_code(None) is ExitCode.OK and status_code(4) is ExitCode.DELIVERY
    assert status_code(130) is ExitCode.INPUT and status_code("x") is ExitCode.INPUT


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.integration
@pytest.mark.parametrize("url", BAD_URLS)
def test_malformed_database_url_is_one_line_exit_2(url: str, tmp_path: Path) -> None:
    shard = real_fixture("laion400m_url_text_10000.parquet")
    (tmp_path / "shard.parquet").symlink_to(shard)
    for command in STORE_COMMANDS:
        proc = run_shardwatch(*command, cwd=tmp_path, SHARDWATCH_DATABASE_URL=url)
        assert proc.returncode == 2, (command, proc.stderr)
        line = _one_error_line(proc.stderr)
        assert CANARY not in proc.stderr + proc.stdout and CANARY[:5] not in line
        if url.startswith("postgres://"):
            assert "use postgresql://" in line


@pytest.mark.integration
def test_run_with_a_malformed_database_url_exits_2(tmp_path: Path) -> None:
    (tmp_path / "shards").mkdir()
    config = tmp_path / "shardwatch.toml"
    config.write_text(
        f'database_url = "postgresql://u:{CANARY}@[::1/x"\n'
        '[sources.local]\ntype = "local"\npath = "shards"\n'
    )
    proc = run_shardwatch_child("run", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "no closing ']'" in _one_error_line(proc.stderr)
    assert CANARY not in proc.stderr + proc.stdout


@pytest.mark.integration
def test_coyo_csv_without_profile_exits_2_naming_coyo700m(tmp_path: Path) -> None:
    coyo = real_fixture("coyo700m_sample_rows.csv")
    for command in (["scan", "--json"], ["ingest", "--no-validate", "--no-alerts"]):
        proc = run_shardwatch(*command, str(coyo), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "pass --profile coyo700m" in _one_error_line(proc.stderr)
        assert proc.stdout == ""
    assert not (tmp_path / ".shardwatch").exists()  # nothing was stored
    proc = run_shardwatch("scan", "--json", "--profile", "coyo700m", str(coyo), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.integration
def test_headerless_tsv_without_profile_exits_2(tmp_path: Path) -> None:
    tsv = tmp_path / "cc3m.tsv"
    tsv.write_text("a dog on a beach\thttp://example.com/1.jpg\nsecond\thttp://x/2\n")
    proc = run_shardwatch("scan", str(tsv), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "header-less: pass --profile cc3m|cc12m" in _one_error_line(proc.stderr)
    proc = run_shardwatch("scan", "--json", "--profile", "cc3m", str(tsv), cwd=tmp_path)
    assert proc.returncode == 0 and '"rows": 2' in proc.stdout


@pytest.mark.integration
def test_click_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    for args in (["scan", "--bogus"], ["scan", "--workers", "0", "x"], []):
        proc = run_shardwatch_child(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
