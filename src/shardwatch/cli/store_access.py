"""The results store as the commands open it: the engine, a URL checked before any work, a
missing SQLite file that reads must not create, and a database error as one masked line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shardwatch.cli.outcomes import Failed, Outcome
from shardwatch.core.errors import first_line

if TYPE_CHECKING:  # the store stack (SQLAlchemy, Alembic) loads only in commands that use it
    from shardwatch.settings.config import Settings
    from shardwatch.store.database import StoreEngine
    from shardwatch.store.errors import StoreFailed


def store_engine(settings: Settings) -> StoreEngine:
    """The configured store's engine; a malformed URL is a usage error."""
    from shardwatch.store.database import make_engine
    from shardwatch.store.errors import StoreConfigError

    try:
        return make_engine(settings.database_url.get_secret_value())
    except StoreConfigError as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None


def check_store_url(settings: Settings) -> None:
    """Stop (exit 2) with one line for a malformed database URL, before any work starts."""
    from shardwatch.store.database import parse_url
    from shardwatch.store.errors import StoreConfigError

    try:
        parse_url(settings.database_url.get_secret_value())
    except StoreConfigError as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None


def db_error(exc: StoreFailed, settings: Settings) -> Failed:
    """A database error as the command's one line, the URL's password masked."""
    from shardwatch.store.database import masked

    url = masked(settings.database_url.get_secret_value())
    message = f"database {url}: {exc.kind}: {first_line(exc)}"
    return Failed(Outcome.STORE_FAILED, message)


def no_store(settings: Settings) -> bool:
    """True for a SQLite URL whose file does not exist (a report must not create it)."""
    from shardwatch.store.database import parse_url
    from shardwatch.store.errors import StoreConfigError

    try:
        url = parse_url(settings.database_url.get_secret_value())
    except StoreConfigError:
        return False  # reported by store_engine
    database = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and (not Path(database).exists())
    )


def require_store_file(settings: Settings) -> str:
    """The store's masked URL; stop (exit 2) when its SQLite file does not exist."""
    from shardwatch.store.database import masked

    url = masked(settings.database_url.get_secret_value())
    if no_store(settings):
        raise Failed(Outcome.BAD_USAGE, f"no results store at {url}: run `shardwatch ingest` first")
    return url


def no_results_yet(url: str) -> Failed:
    """A store never migrated: nothing was ingested into it."""
    return Failed(Outcome.BAD_USAGE, f"{url} has no results yet: run `shardwatch ingest`")
