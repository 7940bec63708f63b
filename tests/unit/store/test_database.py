"""store/database.py without a server: migration files, heads and password masking."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shardwatch.settings.resources import migrations_dir
from shardwatch.store.database import (
    heads,
    make_engine,
    masked,
    parse_url,
)
from shardwatch.store.errors import StoreConfigError

pytestmark = pytest.mark.unit

SECRET = "hunter2"
FILE_NAME = re.compile(r"^(\d{4})_(\d{2})_(\d{2})_(\d{2})(\d{2})_([0-9a-f]{12})_[a-z0-9_]+\.py$")


def test_single_head() -> None:
    assert len(heads()) == 1, heads()


def test_migration_files_are_date_prefixed_and_named_after_their_revision() -> None:
    versions = migrations_dir() / "versions"
    files = sorted(p for p in versions.glob("*.py") if p.name != "__init__.py")
    assert files, f"no migrations under {versions}"
    revisions = []
    for path in files:
        match = FILE_NAME.match(path.name)
        assert match, f"{path.name} is not YYYY_MM_DD_HHMM_<rev>_<slug>.py"
        source = path.read_text()
        stamp = datetime.strptime("".join(match.groups()[:5]), "%Y%m%d%H%M")  # a real date
        created = re.search(r"^Create Date: (\d{4}-\d\d-\d\d \d\d:\d\d)", source, re.M)
        assert created, f"{path.name} has no Create Date"
        assert stamp == datetime.strptime(created.group(1), "%Y-%m-%d %H:%M"), path.name
        declared = re.search(r'^revision = "([0-9a-f]+)"$', source, re.M)
        assert declared and declared.group(1) == match.group(6), path.name
        revisions.append(match.group(6))
    assert heads()[0] in revisions


def test_masked_url_hides_the_password() -> None:
    url = f"postgresql://postgres:{SECRET}@db.example:5432/shardwatch"
    assert SECRET not in masked(url)
    assert SECRET not in masked(parse_url(url))
    assert "***" in masked(url)
    assert masked("sqlite:///.shardwatch/x.sqlite") == "sqlite:///.shardwatch/x.sqlite"


def test_engine_repr_and_url_hide_the_password() -> None:
    engine = make_engine(f"postgresql://postgres:{SECRET}@127.0.0.1:1/shardwatch")
    try:
        assert SECRET not in repr(engine)
        assert SECRET not in str(engine.url)
        assert SECRET not in repr(engine.url)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        f"not a url {SECRET}",
        f"postgresql://postgres:{SECRET}/shardwatch",  # no host: the password parses as a port
        f"postgresql://postgres:{SECRET}",
        f"postgresql+nodriver://postgres:{SECRET}@127.0.0.1/shardwatch",
    ],
)
def test_bad_urls_raise_store_errors_that_do_not_echo_the_password(url: str) -> None:
    with pytest.raises(StoreConfigError) as info:
        make_engine(url)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_connection_error_does_not_show_the_password() -> None:
    engine = make_engine(f"postgresql://postgres:{SECRET}@127.0.0.1:1/shardwatch")
    try:
        with pytest.raises(OperationalError) as info, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value)
    finally:
        engine.dispose()


def test_statement_errors_hide_bound_parameters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    try:
        with pytest.raises(OperationalError) as info, engine.connect() as conn:
            conn.execute(text("SELECT * FROM missing WHERE x = :x"), {"x": SECRET})
        assert SECRET not in str(info.value)
    finally:
        engine.dispose()


def test_the_server_pool_holds_as_many_connections_as_asked() -> None:
    url = "postgresql://postgres@127.0.0.1:1/x"  # a pool is sized without connecting
    assert make_engine(url).pool.size() == 5  # type: ignore[attr-defined]
    engine = make_engine(url, pool_size=17)
    assert engine.pool.size() == 17 and engine.pool._max_overflow == 17  # type: ignore[attr-defined]


def test_a_new_connection_waits_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    """Switching a rollback-journal file to WAL needs an exclusive lock, and SQLite answers
    "database is locked" at once (no busy handler) while another connection writes, e.g. a
    second monitor migrating the same fresh store. The engine must wait, not fail."""
    import sqlite3
    import threading
    import time

    path = tmp_path / "store.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.4, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        engine = make_engine(f"sqlite:///{path}")
        started = time.monotonic()
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
        assert time.monotonic() - started >= 0.2  # it waited for the writer
        engine.dispose()
    finally:
        release.join()
        holder.close()
