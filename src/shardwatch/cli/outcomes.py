"""Outcomes: what a command found, and the one function that turns it into an exit code.

A command returns an `Outcome` once it has printed its results (None is `Outcome.OK`), or
raises `Failed` to stop with one `error:` line. Commands are registered with `command`, which
maps either through `exit_code`; `errors.exit_code_for` maps what still escapes through it
too, so no other code decides a status.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import typer

from shardwatch.cli.exit_codes import ExitCode
from shardwatch.core.names import shown
from shardwatch.core.redact import redact_text


class Outcome(StrEnum):
    """How a command ended, in the command's terms (the status is `exit_code`'s choice)."""

    OK = "ok"
    """Everything ran and every input was read."""
    CHECKS_FAILED = "checks failed"
    """A validation check failed or errored (schema drift included)."""
    BAD_USAGE = "bad usage"
    """A bad option, argument, configuration, suite, rule or dataset: nothing was done."""
    INPUT_FAILED = "input failed"
    """A shard could not be read, was quarantined or skipped, or a source was not listed;
    the others were still processed."""
    VALIDATION_NOT_RUN = "validation not run"
    """Validation could not run on a shard (no suite, GX crashed)."""
    STORE_FAILED = "store failed"
    """The results database failed mid-command."""
    RUN_FAILED = "run failed"
    """The run could not complete (the flow failed, a file could not be written, an
    unexpected error)."""
    INTERRUPTED = "interrupted"
    """The user interrupted the command."""
    UNDELIVERED = "undelivered"
    """An alert message could not be delivered."""


EXIT_CODES: dict[Outcome, ExitCode] = {
    Outcome.OK: ExitCode.OK,
    Outcome.CHECKS_FAILED: ExitCode.DATA_FAILED,
    Outcome.BAD_USAGE: ExitCode.USAGE,
    Outcome.INPUT_FAILED: ExitCode.INPUT,
    Outcome.VALIDATION_NOT_RUN: ExitCode.INPUT,
    Outcome.STORE_FAILED: ExitCode.INPUT,
    Outcome.RUN_FAILED: ExitCode.INPUT,
    Outcome.INTERRUPTED: ExitCode.INPUT,
    Outcome.UNDELIVERED: ExitCode.DELIVERY,
}


def exit_code(outcome: Outcome | None) -> ExitCode:
    """The exit code of a command's outcome: the one mapping from results to codes."""
    return EXIT_CODES[outcome or Outcome.OK]


class Failed(Exception):
    """A command stops with an outcome and the one line that explains it."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


def report_error(message: str) -> None:
    """The one `error:` line on stderr (passwords redacted, control characters shown)."""
    typer.echo(f"error: {shown(redact_text(message))}", err=True)


def concluded(fn: Callable[..., Outcome | None]) -> Callable[..., None]:
    """FN as a Typer command: its outcome (returned, or raised as `Failed`) becomes its exit
    status through `exit_code`."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            outcome = fn(*args, **kwargs)
        except Failed as failed:
            report_error(failed.message)
            outcome = failed.outcome
        code = exit_code(outcome)
        if code is not ExitCode.OK:
            raise typer.Exit(int(code))

    return run


def command(
    group: typer.Typer, name: str | None = None, **options: Any
) -> Callable[[Callable[..., Outcome | None]], Callable[..., None]]:
    """Register a function on GROUP as a command whose outcome is its exit status."""

    def register(fn: Callable[..., Outcome | None]) -> Callable[..., None]:
        wrapped = concluded(fn)
        group.command(name, **options)(wrapped)
        return wrapped

    return register
