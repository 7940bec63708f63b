"""Shared fixtures: a PostgreSQL database per test session, and migrated results stores.

`database_url` runs a test twice, on an embedded SQLite file and on a fresh PostgreSQL
database, both already MIGRATED to head: each is a clone of a template migrated once per
session (tests/support/db_templates.py). `empty_database_url` is the same pair EMPTY (no tables),
for the tests whose subject is the migrations. `store` is a `ResultStore` on
`database_url`. PostgreSQL is the server on 127.0.0.1:5432 (user postgres, trust auth;
`SHARDWATCH_TEST_PG_HOST` / `SHARDWATCH_TEST_PG_PORT` override). When it is unreachable the
PostgreSQL tests are skipped, except when `CI` is set: then they FAIL.

`slack("200", "429:1", ...)` and `smtp("451", "550", ...)` start real servers on loopback
whose replies follow the script (tests/support/loopback.py). `prefect_server` is a real
`prefect server start` on loopback, one per session, i.e. per pytest-xdist worker that asks
for it (tests/support/prefect_server.py).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql
from support import db_templates
from support.installed import install_wheel
from support.loopback import LoopbackController, SlackReceiver, SmtpHandler, authenticator
from support.prefect_server import PrefectServer, start_prefect_server
from support.shared import exclusive, shared_root

from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

# every test is marked unit or integration (tests/support/markers.py); the slow modules are
# handed to xdist's workers first (tests/support/scheduling.py)
pytest_plugins = ["support.markers", "support.scheduling"]

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@dataclass(frozen=True)
class PostgresServer:
    """The test PostgreSQL server, driven through psycopg2 in autocommit mode."""

    host: str
    port: int
    user: str = "postgres"

    def connect(self, dbname: str = "postgres") -> psycopg2.extensions.connection:
        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname=dbname, connect_timeout=5
        )
        conn.autocommit = True
        return conn

    def url(self, dbname: str, password: str | None = None) -> str:
        auth = self.user if password is None else f"{self.user}:{password}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str, template: str = "template0") -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                )
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        """Terminate the database's connections (e.g. of killed workers), then drop it."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        finally:
            conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The reachable test server; unreachable: skip, or fail when `CI` is set."""
    server = PostgresServer(
        os.environ.get("SHARDWATCH_TEST_PG_HOST", "127.0.0.1"),
        int(os.environ.get("SHARDWATCH_TEST_PG_PORT", "5432")),
    )
    try:
        server.connect().close()
    except psycopg2.OperationalError as exc:
        where = f"{server.host}:{server.port}"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if os.environ.get("CI"):
            pytest.fail(
                f"PostgreSQL is required in CI (CI is set) but {where} is unreachable "
                f"({reason}); start it with: {START_POSTGRES}",
                pytrace=False,
            )
        pytest.skip(
            f"PostgreSQL at {where} is unreachable ({reason}); start it with: "
            f"{START_POSTGRES} (with CI set this fails instead)"
        )
    return server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database for this test session, dropped at the end."""
    name = f"shardwatch_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


_fresh_numbers = itertools.count(1)


@pytest.fixture
def fresh_postgres_database(postgres_server: PostgresServer, postgres_url: str) -> Iterator[str]:
    """The name of a new, empty database for one test (named after the session's)."""
    name = f"{postgres_url.rsplit('/', 1)[1]}_{next(_fresh_numbers)}"
    postgres_server.create_database(name)
    try:
        yield name
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer, fresh_postgres_database: str) -> str:
    """The URL of an empty PostgreSQL database for one test."""
    return postgres_server.url(fresh_postgres_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An EMPTY database (no tables), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session (tests/support/db_templates.py)."""
    return db_templates.sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer, postgres_url: str) -> Iterator[str]:
    """The name of a PostgreSQL database migrated once per session, to clone per test."""
    name = db_templates.postgres_template(
        postgres_server, f"{postgres_url.rsplit('/', 1)[1]}_template"
    )
    try:
        yield name
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def migrated_postgres_url(
    postgres_server: PostgresServer, postgres_url: str, postgres_template: str
) -> Iterator[str]:
    """The URL of a new PostgreSQL database for one test, a clone of the migrated template."""
    name = f"{postgres_url.rsplit('/', 1)[1]}_{next(_fresh_numbers)}"
    db_templates.postgres_clone(postgres_server, postgres_template, name)
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database migrated to head (a clone of the session's template), on SQLite and on
    PostgreSQL; the code under test still runs `upgrade`, which finds nothing to do."""
    if request.param == "sqlite":
        return db_templates.sqlite_clone(request.getfixturevalue("sqlite_template"), tmp_path)
    url: str = request.getfixturevalue("migrated_postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[ResultStore]:
    """A `ResultStore` on `database_url` (migrated; `upgrade` here is a no-op check)."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        yield ResultStore(engine)
    finally:
        engine.dispose()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests go straight to the loopback servers: no proxy from the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")


# --- loopback Slack-like receiver and SMTP server with scripted faults (tests/support/loopback.py)


@pytest.fixture
def slack() -> Iterator[Any]:
    receivers: list[SlackReceiver] = []

    def make(*script: str) -> SlackReceiver:
        receivers.append(SlackReceiver(list(script)))
        return receivers[-1]

    yield make
    for r in receivers:
        r.close()


@pytest.fixture
def smtp() -> Iterator[Any]:
    controllers: list[LoopbackController] = []

    def make(*script: str, auth: bool = False) -> tuple[SmtpHandler, int]:
        handler = SmtpHandler(list(script))
        options: dict[str, Any] = {}
        if auth:
            options = {"authenticator": authenticator, "auth_require_tls": False}
        controller = LoopbackController(handler, **options)  # on port 0: the OS picks
        controller.start()
        port: int = controller.port
        controllers.append(controller)
        return handler, port

    yield make
    for c in controllers:
        c.stop()


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin/` of a fresh virtualenv with this checkout's wheel installed, not editable
    (built once per run and shared by the xdist workers; tests/support/installed.py)."""
    root = shared_root(tmp_path_factory)
    base, ready = root / "install", root / "install.ready"
    with exclusive(root / "install.lock"):
        if not ready.exists():
            install_wheel(base)
            ready.touch()
    return base / "venv" / "bin"


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real `prefect server start` on loopback, shared by the session (about 10 s to
    start); see tests/support/prefect_server.py for its `env()`, `settings()` and `client()`."""
    server = start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    try:
        yield server
    finally:
        server.stop()
