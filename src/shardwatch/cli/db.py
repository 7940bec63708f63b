"""`shardwatch db ...`: migrate the results database, show its revision, check its kept
totals."""

from __future__ import annotations

from typing import Annotated

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt
from shardwatch.cli.outcomes import Failed, Outcome, command
from shardwatch.cli.store_access import db_error, store_engine
from shardwatch.core.names import shown

app = typer.Typer(
    help="Manage the results database (migrations, kept totals).",
    no_args_is_help=True,
    rich_markup_mode=None,
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


@command(app, "totals")
def db_totals(
    config: ConfigOpt = None,
    dataset: options.DatasetOpt = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Keep freshly summed totals, whatever they were.")
    ] = False,
) -> Outcome | None:
    """Check the dataset's kept totals (the sums each pass keeps for `report`) against its
    stored rows; exit 1 when they are stale or differ (the report then sums the rows itself),
    unless --rebuild keeps fresh ones."""
    from shardwatch.store.errors import StoreFailed
    from shardwatch.store.repository import ResultStore

    settings = options.load(config, dataset=dataset)
    engine = store_engine(settings)
    name = shown(settings.dataset)
    try:
        store = ResultStore(engine)
        if not store.dataset_known(settings.dataset):
            raise Failed(Outcome.BAD_USAGE, f"no dataset '{name}' in the results store")
        ok = store.verify_total(settings.dataset, rebuild=rebuild)
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    if ok:
        typer.echo(f"{name}: kept totals are current and equal the stored rows")
        return None
    if rebuild:
        typer.echo(f"{name}: kept totals were stale or differed from the stored rows; rebuilt")
        return None
    typer.echo(f"{name}: kept totals are stale or differ from the stored rows (--rebuild)")
    return Outcome.CHECKS_FAILED
