"""The `shardwatch` command line: the root Typer app combining one module per command group.

Top-level commands: `scan` (scan.py), `run`, `serve` and `demo` (monitor.py), `ingest`
(ingest.py), `report` (report.py), `export-flagged` (export.py) and `docs` (docs.py); groups:
`config`, `db`, `alerts` and `suites` (a module each). Shared options live in options.py,
printing in printing.py, and outcomes.py maps every result to an exit code (exit_codes.py).

`app` (every command) is built on first use. The console script (`main`) builds only the
module of the command it is asked for, when its first argument names one: a command's own
parameters, help and errors are the same either way, and neither the other modules nor their
Click commands are loaded (`report` starts sooner). Anything else gets the full app.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Annotated

import typer

from shardwatch import __version__
from shardwatch.cli.exit_codes import exit_code_table

# The module (shardwatch.cli.<module>) of each top-level command and group, in the order
# --help lists them: the top-level commands, then the groups (a group's name is its module's).
COMMANDS = {
    "scan": "scan",
    "run": "monitor",
    "serve": "monitor",
    "demo": "monitor",
    "ingest": "ingest",
    "report": "report",
    "export-flagged": "export",
    "docs": "docs",
}
GROUPS = ("config", "db", "alerts", "suites")

# Library warnings (e.g. an undelivered alert) reach the user through the commands' own
# output; without this, Python's last-resort handler would print them a second time.
logging.getLogger("shardwatch").addHandler(logging.NullHandler())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shardwatch {__version__}")
        raise typer.Exit()


def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """shardwatch command line."""


def build(only: str | None = None) -> typer.Typer:
    """The root app: every command, or only the module that defines command or group `only`."""
    # Plain help (rich_markup_mode=None): Rich markup would eat `[sources]` and `[download]`.
    root = typer.Typer(
        help="shardwatch: exact, streaming data-quality audits of image-text dataset shards.\n\n"
        f"\b\nExit codes (every command):\n{exit_code_table()}",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    for module in dict.fromkeys(COMMANDS.values()):
        if only is None or COMMANDS.get(only) == module:
            root.add_typer(importlib.import_module(f"shardwatch.cli.{module}").app)
    for group in GROUPS:
        if only is None or only == group:
            root.add_typer(importlib.import_module(f"shardwatch.cli.{group}").app, name=group)
    root.callback()(_main)
    return root


def __getattr__(name: str) -> typer.Typer:
    """`app`: the root app with every command, built once on first use."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    full = globals()["app"] = build()
    return full


def main() -> None:
    """Console-script entry point: every exit status is one of ExitCode (errors.py)."""
    from shardwatch.cli.errors import run

    first = sys.argv[1] if len(sys.argv) > 1 else ""
    known = first in COMMANDS or first in GROUPS
    sys.exit(run(build(first) if known else build()))
