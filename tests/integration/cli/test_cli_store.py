"""`shardwatch db upgrade|current` and `shardwatch ingest` as real subprocesses, and the rule
that a database password never reaches stdout or stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.loopback import refused_port
from support.store_checks import subprocess_env, write_shards

from shardwatch.store.database import heads

if TYPE_CHECKING:
    from conftest import PostgresServer

pytestmark = pytest.mark.integration

SECRET = "hunter2"


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """Here `db upgrade` from scratch are the subject: an EMPTY database (tests/conftest.py)."""
    return empty_database_url


def start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shardwatch", *args],
        cwd=cwd,
        env=subprocess_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_db_upgrade_then_current(database_url: str, tmp_path: Path) -> None:
    (head,) = heads()
    code, out, err = finish(
        start(["db", "upgrade"], tmp_path, SHARDWATCH_DATABASE_URL=database_url)
    )
    assert code == 0, err
    assert out.strip().endswith(f"is at revision {head}"), out

    code, out, err = finish(
        start(["db", "current"], tmp_path, SHARDWATCH_DATABASE_URL=database_url)
    )
    assert code == 0, err
    assert f"revision {head}; code head {head}" in out, out


def test_passwords_never_appear_in_cli_output(
    postgres_server: PostgresServer, fresh_postgres_database: str, tmp_path: Path
) -> None:
    """Trust auth ignores the password, so the reachable URL really connects with it."""
    (shard,) = write_shards(tmp_path / "shards", 1)
    reachable = postgres_server.url(fresh_postgres_database, password=SECRET)
    unreachable = f"postgresql://postgres:{SECRET}@127.0.0.1:{refused_port()}/nowhere"
    no_host = f"postgresql://postgres:{SECRET}/shardwatch"  # the password parses as a port
    runs = {
        # name: (arguments, database URL, expected exit code)
        "current, unreachable": (["db", "current"], unreachable, 3),
        "ingest, unreachable": (["ingest", str(shard)], unreachable, 3),
        "upgrade, unreachable": (["db", "upgrade"], unreachable, 3),
        "current, no host": (["db", "current"], no_host, 2),
        # validated too (exit 1: the adversarial shard fails checks), so GX files are written
        "ingest, reachable": (["ingest", str(shard), "--dataset", "d"], reachable, 1),
        "upgrade, reachable": (["db", "upgrade"], reachable, 0),
        "config show": (["config", "show"], reachable, 0),
    }
    procs = {
        name: start(args, tmp_path, SHARDWATCH_DATABASE_URL=url)
        for name, (args, url, _) in runs.items()
    }  # all at once: the ingest and the upgrade also race to migrate the fresh database
    results = {name: finish(proc) for name, proc in procs.items()}

    for name, (code, out, err) in results.items():
        assert SECRET not in out and SECRET not in err, f"{name} printed the password:\n{out}{err}"
        assert code == runs[name][2], f"{name}: exit {code}\n{out}\n{err}"
    assert "postgres:***@127.0.0.1" in results["current, unreachable"][2]
    assert "OperationalError" in results["ingest, unreachable"][2]
    assert "port is not a number" in results["current, no host"][2]
    assert "1 done" in results["ingest, reachable"][1]
    assert "postgres:***@" in results["upgrade, reachable"][1]
    assert '"database_url": "**********"' in results["config show"][1]
    assert not (tmp_path / ".shardwatch" / "shardwatch.sqlite").exists()  # no SQLite fallback
    written = [p for p in (tmp_path / ".shardwatch").rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in written)  # the validation's Data Docs page
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path


def test_db_totals_checks_and_rebuilds_the_kept_totals(database_url: str, tmp_path: Path) -> None:
    """`ingest` keeps the dataset's sums; `db totals` finds them current, finds sums that no
    longer equal the stored rows (exit 1), and `--rebuild` keeps fresh ones; an unknown
    dataset is a usage error."""
    from sqlalchemy import text

    from shardwatch.store.database import make_engine

    env = {"SHARDWATCH_DATABASE_URL": database_url}
    shards = write_shards(tmp_path / "shards", 2, rows=60)
    code, _, err = finish(start(["ingest", "--no-validate", *map(str, shards)], tmp_path, **env))
    assert code == 0, err

    def totals(*args: str) -> tuple[int, str]:
        code, out, err = finish(start(["db", "totals", *args], tmp_path, **env))
        return code, out + err

    assert totals() == (0, "default: kept totals are current and equal the stored rows\n")
    engine = make_engine(database_url)
    with engine.begin() as conn:  # a stored count rewritten behind the store's back
        conn.execute(text("UPDATE shard_metrics SET rows = rows + 1"))
    engine.dispose()
    code, out = totals()
    assert code == 1 and "stale or differ from the stored rows (--rebuild)" in out
    code, out = totals("--rebuild")
    assert code == 0 and "rebuilt" in out
    assert totals()[0] == 0
    code, out = totals("--dataset", "other")
    assert code == 2 and "no dataset 'other'" in out
