"""CLI errors: what escapes a command still leaves with a code from the documented table.

Commands end through `outcomes.command` (an `Outcome`, or `Failed` with its line). Anything
that still escapes a command (an exception, Click's usage errors, an interrupt, a stray exit
status) is named as an `Outcome` here by `outcome_for` and reported on one line, and
`outcomes.exit_code` gives its code, so no traceback and no status outside `ExitCode` ever
leaves the process (`run`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from shardwatch.cli.exit_codes import ExitCode
from shardwatch.cli.outcomes import Failed, Outcome, exit_code, report_error
from shardwatch.core.errors import first_line

INTERRUPTED = 130  # what Typer returns for Ctrl-C


def outcome_for(exc: BaseException) -> tuple[Outcome, str]:
    """The outcome an exception that escaped a command stands for, and its one-line message
    (which never holds a password: store errors are masked where they are raised)."""
    from shardwatch.scan.reader import ShardReadError
    from shardwatch.settings.config import ConfigError

    if isinstance(exc, Failed):
        return exc.outcome, exc.message
    if isinstance(exc, ConfigError):
        return Outcome.BAD_USAGE, str(exc)
    if isinstance(exc, ShardReadError):
        return Outcome.INPUT_FAILED, str(exc)
    if "shardwatch.store.errors" in sys.modules:  # the store stack loads only when used
        from shardwatch.store.errors import StoreConfigError, StoreFailed

        if isinstance(exc, StoreConfigError):
            return Outcome.BAD_USAGE, str(exc)
        if isinstance(exc, StoreFailed):
            return Outcome.STORE_FAILED, f"database: {exc.kind}: {first_line(exc, limit=300)}"
    if isinstance(exc, typer.Abort | KeyboardInterrupt) or type(exc).__name__ == "Abort":
        return Outcome.INTERRUPTED, "interrupted"
    line = first_line(exc, limit=300, cause=True)
    if isinstance(exc, OSError):
        return Outcome.RUN_FAILED, f"{type(exc).__name__}: {line}"
    return Outcome.RUN_FAILED, f"internal error ({type(exc).__name__}): {line}"


def exit_code_for(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code of an exception that escaped a command, and its one-line message."""
    outcome, message = outcome_for(exc)
    return exit_code(outcome), message


def status_code(status: Any) -> ExitCode:
    """A command's exit status (None, an int, or a stray value) as a documented code."""
    if status is None:
        return exit_code(Outcome.OK)
    if isinstance(status, int) and status in ExitCode._value2member_map_:
        return ExitCode(status)  # already decided by `exit_code`
    return exit_code(Outcome.INTERRUPTED if status == INTERRUPTED else Outcome.RUN_FAILED)


def _is_usage_error(exc: BaseException) -> bool:
    """A Click exception (Typer vendors its own Click, so matched by shape): it can show
    itself with the command's usage."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


def run(command: Callable[..., Any]) -> int:
    """Run a Typer app (or Click command) on sys.argv; return a code from ExitCode."""
    try:
        status = command(standalone_mode=False)
    except Exception as exc:
        if _is_usage_error(exc):  # a bad option or argument: Click's message and usage
            exc.show()  # type: ignore[attr-defined]
            return int(exit_code(Outcome.BAD_USAGE))
        code, message = exit_code_for(exc)
        report_error(message)
        return int(code)
    except KeyboardInterrupt:
        report_error("interrupted")
        return int(exit_code(Outcome.INTERRUPTED))
    if status == INTERRUPTED:
        report_error("interrupted")
    return int(status_code(status))
