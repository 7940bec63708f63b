"""Database: engines, sessions and Alembic migrations, with passwords never shown."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from shardwatch.store.boundary import translated
from shardwatch.store.errors import StoreConfigError
from shardwatch.store.urls import url_problem

if TYPE_CHECKING:  # Alembic and the ORM are imported only by the functions that use them
    from alembic.config import Config
    from sqlalchemy.orm import Session, sessionmaker

StoreEngine: TypeAlias = Engine
"""The store's connection pool as the other packages hold it: opened by `make_engine`, handed
to the store's classes and functions, closed by `close_engine`. Only store/ uses its methods
(the import contract forbids SQLAlchemy outside store/)."""

# Key of the PostgreSQL advisory lock that serialises concurrent migrators ("SHWD").
MIGRATION_LOCK_KEY = 0x53485744


def parse_url(raw: str) -> URL:
    """The parsed URL; a malformed one is a StoreConfigError saying why in one line that shows no
    part of it but the scheme (store/urls.py)."""
    problem = url_problem(raw)
    if problem is not None:
        raise StoreConfigError(problem) from None
    return make_url(raw)


def masked(url: URL | str) -> str:
    """The URL with any password replaced by ***, safe for logs and output."""
    parsed = parse_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _enable_wal(cur: sqlite3.Cursor, *, patience: float = 60.0) -> None:
    """Switch the file to WAL. Switching needs an exclusive lock and SQLite answers "database
    is locked" at once, without its busy handler, while another process holds the file (e.g.
    several monitors migrating a fresh store together), so wait and retry here."""
    deadline = time.monotonic() + patience
    delay = 0.005
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


@translated
def make_engine(raw_url: str, *, pool_size: int = 5) -> Engine:
    """An engine with bound parameters hidden from error messages and pings on checkout.
    On a server database the pool keeps `pool_size` connections (raise it to the number of
    threads that write at once, e.g. `monitor.concurrency`), with as many again as overflow."""
    url = parse_url(raw_url)
    if url.get_backend_name() == "sqlite":
        database = url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, hide_parameters=True, connect_args={"timeout": 60}, pool_pre_ping=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            _enable_wal(cur)
            cur.close()

        return engine
    if url.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3; we ship psycopg2
        url = url.set(drivername="postgresql+psycopg2")
    try:
        return create_engine(
            url,
            hide_parameters=True,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=pool_size,
        )
    except ImportError as exc:
        raise StoreConfigError(f"no database driver for {masked(url)}: {exc}") from None
    except ArgumentError:  # NoSuchModuleError: an unknown scheme or driver
        raise StoreConfigError(f"unsupported database URL {masked(url)}") from None


def close_engine(engine: StoreEngine) -> None:
    """Close every pooled connection of an engine that `make_engine` opened."""
    engine.dispose()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """The writers' sessions (this loads `sqlalchemy.orm`, which the readers do without)."""
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    from shardwatch.settings.resources import ResourceMissing, migrations_dir

    try:
        folder = migrations_dir()
    except ResourceMissing as exc:
        raise StoreConfigError(f"the migrations are missing: {exc}") from None
    if not (folder / "env.py").is_file():
        raise StoreConfigError(f"migrations not found under {folder}")
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    cfg.set_main_option("sqlalchemy.url", masked(engine.url).replace("%", "%%"))
    return cfg


def _lock_migrations(conn: Connection) -> None:
    """Serialise migrators: several processes may upgrade a fresh database at once; the
    others wait, then find the schema at head.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the driver would run the DDL
    outside any transaction (it only opens one before DML), so a failed migration would leave
    half a schema and concurrent migrators would collide; BEGIN IMMEDIATE makes the migration
    one transaction that holds the write lock from its start.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@translated
def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent, safe to run concurrently)."""
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        _lock_migrations(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@translated
def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        _lock_migrations(conn)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def heads() -> list[str]:
    """The migration heads (there must be exactly one)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    return list(script.get_heads())


# Alembic's version table, as Alembic creates it (read by `current` without loading Alembic).
_ALEMBIC_VERSION = Table("alembic_version", MetaData(), Column("version_num", String(32)))


@translated
def current(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database. Read straight from
    Alembic's version table, as Alembic's MigrationContext does, without loading Alembic
    (`report` and `export-flagged` ask this first)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(select(_ALEMBIC_VERSION.c.version_num)).scalars().all()
    if len(versions) > 1:  # Alembic's own refusal: one linear history has one row
        raise RuntimeError("the alembic_version table holds more than one revision")
    return str(versions[0]) if versions else None


def db_now(s: Session) -> datetime:
    """The database's clock (UTC), for leases: workers on several hosts compare expiries
    with one clock, not each with its own. PostgreSQL: `clock_timestamp()`; SQLite: its
    own reading of the OS clock, to the millisecond (`strftime('%f')`)."""
    bind = s.get_bind()
    if bind.dialect.name == "sqlite":
        raw = s.execute(select(func.strftime("%Y-%m-%d %H:%M:%f", "now"))).scalar_one()
        return datetime.strptime(str(raw), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    value = s.execute(select(func.clock_timestamp())).scalar_one()
    assert isinstance(value, datetime)
    return value.astimezone(UTC)
