"""`shardwatch db ...`: migrate the results database and show its revision."""

from __future__ import annotations

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt
from shardwatch.cli.outcomes import command
from shardwatch.cli.store_access import db_error, store_engine

app = typer.Typer(
    help="Manage the results database (migrations).", no_args_is_help=True, rich_markup_mode=None
)


@command(app, "upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply all migrations to the configured database ($SHARDWATCH_DATABASE_URL)."""
    from shardwatch.store.database import current, masked, upgrade
    from shardwatch.store.errors import StoreFailed

    settings = options.load(config)
    engine = store_engine(settings)
    try:
        upgrade(engine)
        typer.echo(f"{masked(engine.url)} is at revision {current(engine)}")
    except StoreFailed as exc:
        raise db_error(exc, settings) from None


@command(app, "current")
def db_current(config: ConfigOpt = None) -> None:
    """Print the configured database's migration revision (and the code's head)."""
    from shardwatch.store.database import current, heads, masked
    from shardwatch.store.errors import StoreFailed

    settings = options.load(config)
    engine = store_engine(settings)
    try:
        rev = current(engine)
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    head = ", ".join(heads())
    typer.echo(f"{masked(engine.url)}: revision {rev or '(none)'}; code head {head}")
