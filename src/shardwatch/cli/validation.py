"""The Great Expectations validator as `ingest` and `docs` build it from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shardwatch.cli.outcomes import Failed, Outcome
from shardwatch.cli.printing import stderr_console

if TYPE_CHECKING:  # GX loads only in commands that validate
    from shardwatch.settings.config import Settings
    from shardwatch.validate.gx_adapter import GxValidator


def validation_on(settings: Settings, flag: bool | None) -> bool:
    return settings.validation.enabled if flag is None else flag


def validator(settings: Settings) -> GxValidator:
    """The GX adapter for the configured suite; a bad suite is a usage error (exit 2)."""
    stderr_console().print("loading Great Expectations ...", markup=False)
    from shardwatch.pipeline.resources import gx_validator
    from shardwatch.validate.gx_adapter import SuiteError, find_suite, load_suite

    v = settings.validation
    suite = settings.suite_name()
    try:
        found = find_suite(v.suites_dir, suite)
        load_suite(found.path)
    except SuiteError as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None
    typer.echo(f"validating with {found.describe()}", err=True)  # one line, never wrapped
    return gx_validator(settings)


def finish_docs(validator: GxValidator) -> Path:
    """Prune results beyond the configured limit (and their pages); re-render the index."""
    if validator.prune():
        return validator.rebuild_index()
    return validator.paths.index
