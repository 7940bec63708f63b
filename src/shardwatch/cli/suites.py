"""`shardwatch suites check`: every Great Expectations suite file checked strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt
from shardwatch.cli.outcomes import Outcome, command

app = typer.Typer(
    help="Great Expectations suites (packaged defaults, or validation.suites_dir).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@command(app, "check")
def suites_check(
    suites_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of suite files (default: validation.suites_dir, else the packaged "
            "default suites)."
        ),
    ] = None,
    config: ConfigOpt = None,
) -> Outcome:
    """Check every suite file strictly: valid JSON, known expectation types, valid kwargs.

    GX itself silently drops an expectation it cannot parse; this command names the file,
    the expectation and the problem instead, and exits 2 on any bad suite.
    """
    from shardwatch.settings.resources import default_suites_dir
    from shardwatch.validate.gx_adapter import check_suites

    folder = suites_dir or options.load(config).validation.suites_dir or default_suites_dir()
    files, problems = check_suites(folder)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    bad = len(problems)
    typer.echo(f"checked {len(files)} suite file(s) in {folder}: {bad or 'no'} problem(s)")
    return Outcome.BAD_USAGE if problems else Outcome.OK
