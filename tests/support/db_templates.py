"""Migrated databases without migrating per test: one template per session, cloned per test.

The migrations run once per pytest session on each backend: into a SQLite file, and into a
PostgreSQL database that then serves as the TEMPLATE of each test's database
(`CREATE DATABASE x TEMPLATE tpl` copies files, about 0.2 s, against about 0.5 s or more
for a migration; the template must have no open connection, so its engine is disposed).
A SQLite clone is a copy of the file. Only the migration tests
(tests/integration/store/test_migrations.py and `db upgrade` from scratch) still start from
an empty database.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from shardwatch.store.database import make_engine, upgrade

if TYPE_CHECKING:
    from conftest import PostgresServer


def migrate(url: str) -> None:
    """Apply every migration to the database at `url`, and close its connections."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def sqlite_template(folder: Path) -> Path:
    """A SQLite file migrated to head, in `folder`."""
    path = folder / "template.sqlite"
    migrate(f"sqlite:///{path}")
    return path


def sqlite_clone(template: Path, folder: Path) -> str:
    """The URL of a copy of the migrated SQLite `template` in `folder`."""
    path = folder / "store.sqlite"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def postgres_template(server: PostgresServer, name: str) -> str:
    """Create database `name` migrated to head, with no connection left open; its name."""
    server.create_database(name)
    migrate(server.url(name))
    return name


def postgres_clone(server: PostgresServer, template: str, name: str) -> None:
    """Create database `name` as a copy of the migrated `template`."""
    server.create_database(name, template=template)
