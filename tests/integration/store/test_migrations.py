"""Alembic migrations on SQLite and PostgreSQL, and the PostgreSQL fixture's CI policy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect
from support.loopback import refused_port
from support.store_checks import ALL_TABLES, subprocess_env

from shardwatch.store.database import current, downgrade, heads, make_engine, upgrade
from shardwatch.store.models import Base
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration



@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """Here the migrations are the subject: an EMPTY database (tests/conftest.py)."""
    return empty_database_url


ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_database_starts_empty(engine: Engine) -> None:
    assert tables(engine) == set()
    assert current(engine) is None


def test_upgrade_downgrade_upgrade_round_trip(engine: Engine) -> None:
    (head,) = heads()
    upgrade(engine)
    assert current(engine) == head
    assert tables(engine) == {*ALL_TABLES, "alembic_version"}
    upgrade(engine)  # idempotent
    assert current(engine) == head

    downgrade(engine, "base")
    assert current(engine) is None
    assert tables(engine) - {"alembic_version"} == set()

    upgrade(engine)
    assert current(engine) == head
    assert tables(engine) == {*ALL_TABLES, "alembic_version"}
    store = ResultStore(engine)  # and the re-created schema works
    assert store.register("d", "s.parquet", "0" * 64).version == 1


def test_a_failed_upgrade_leaves_the_database_empty(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration is one transaction on both backends (SQLite DDL included)."""
    real_upgrade = command.upgrade

    def upgrade_then_fail(config: object, revision: str) -> None:
        real_upgrade(config, revision)  # type: ignore[arg-type]
        raise RuntimeError("injected failure after the DDL ran")

    monkeypatch.setattr(command, "upgrade", upgrade_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        upgrade(engine)
    assert tables(engine) == set()
    assert current(engine) is None
    monkeypatch.undo()
    upgrade(engine)
    assert current(engine) == heads()[0]


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


UPGRADER = """
import sys, time
from pathlib import Path
from shardwatch.store.database import current, make_engine, upgrade
engine = make_engine(sys.argv[1])
Path(sys.argv[2]).touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.002)
upgrade(engine)
print(current(engine))
engine.dispose()
"""


def test_concurrent_upgrades_of_an_empty_database(database_url: str, tmp_path: Path) -> None:
    """Several monitors may start at once on a fresh database: all must end at head."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADER, database_url, str(tmp_path / f"ready{i}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for i in range(3)
    ]
    try:
        for i in range(3):
            _wait_for_file(tmp_path / f"ready{i}", procs)
        go.touch()
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == heads()[0]


def _wait_for_file(path: Path, procs: list[subprocess.Popen[str]]) -> None:
    import time

    deadline = time.monotonic() + 60
    while not path.exists():
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, dead[0].communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# -- the PostgreSQL fixture -------------------------------------------------------------------


def test_postgres_url_is_a_fresh_session_database(postgres_url: str) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    assert name.startswith("shardwatch_test_")
    conn = psycopg2.connect(postgres_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            assert cur.fetchone() == (name,)
    finally:
        conn.close()


def test_unreachable_postgres_fails_with_ci_set_and_skips_without() -> None:
    node = (
        "tests/integration/store/test_migrations.py"
        "::test_postgres_url_is_a_fresh_session_database"
    )
    port = str(refused_port())
    runs = {}
    for ci in ("1", None):
        env = subprocess_env(SHARDWATCH_TEST_PG_PORT=port)
        env.pop("CI", None)
        if ci is not None:
            env["CI"] = ci
        runs[ci] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    with_ci, _ = runs["1"].communicate(timeout=120)
    without_ci, _ = runs[None].communicate(timeout=120)

    assert runs["1"].returncode == 1, with_ci
    assert "PostgreSQL is required in CI" in with_ci, with_ci
    assert f"127.0.0.1:{port} is unreachable" in with_ci, with_ci
    assert "1 error" in with_ci and "skipped" not in with_ci, with_ci

    assert runs[None].returncode == 0, without_ci
    assert "1 skipped" in without_ci, without_ci
