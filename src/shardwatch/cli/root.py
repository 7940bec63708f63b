"""The `shardwatch` command line: the root Typer app combining one module per command group.

Top-level commands: `scan` (scan.py), `run`, `serve` and `demo` (monitor.py), `ingest`
(ingest.py), `report` (report.py), `export-flagged` (export.py) and `docs` (docs.py); groups:
`config`, `db`, `alerts` and `suites` (a module each). Shared options live in options.py,
printing in printing.py, and outcomes.py maps every result to an exit code (exit_codes.py).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from shardwatch import __version__
from shardwatch.cli import alerts, config, db, docs, export, ingest, monitor, report, scan, suites
from shardwatch.cli.exit_codes import exit_code_table

# Plain help (rich_markup_mode=None): Rich markup would eat `[sources]` and `[download]`.
app = typer.Typer(
    help="shardwatch: exact, streaming data-quality audits of image-text dataset shards.\n\n"
    f"\b\nExit codes (every command):\n{exit_code_table()}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Top-level commands, in the order --help lists them, then the groups.
for commands in (scan, monitor, ingest, report, export, docs):
    app.add_typer(commands.app)
app.add_typer(config.app, name="config")
app.add_typer(db.app, name="db")
app.add_typer(alerts.app, name="alerts")
app.add_typer(suites.app, name="suites")

# Library warnings (e.g. an undelivered alert) reach the user through the commands' own
# output; without this, Python's last-resort handler would print them a second time.
logging.getLogger("shardwatch").addHandler(logging.NullHandler())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shardwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """shardwatch command line."""


def main() -> None:
    """Console-script entry point: every exit status is one of ExitCode (errors.py)."""
    from shardwatch.cli.errors import run

    sys.exit(run(app))
