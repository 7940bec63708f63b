"""CLI errors: the one place an outcome becomes an exit code from the documented table.

Commands raise `typer.Exit(code)` for the outcomes they know. Anything that still escapes a
command (an exception, Click's usage errors, an interrupt, a stray exit status) is mapped
here by `exit_code_for` and reported on one line, so no traceback and no status outside
`ExitCode` ever leaves the process (`run`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from shardwatch.cli.exit_codes import ExitCode
from shardwatch.core.names import shown
from shardwatch.core.redact import redact_text

INTERRUPTED = 130  # what Typer returns for Ctrl-C


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def exit_code_for(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code of an exception that escaped a command, and its one-line message (which
    never holds a password: store errors are masked where they are raised)."""
    from shardwatch.scan.reader import ShardReadError
    from shardwatch.settings.config import ConfigError

    if isinstance(exc, ConfigError):
        return ExitCode.USAGE, str(exc)
    if isinstance(exc, ShardReadError):
        return ExitCode.INPUT, str(exc)
    if "shardwatch.store.database" in sys.modules:  # the store stack loads only when used
        from shardwatch.store.database import StoreError

        if isinstance(exc, StoreError):
            return ExitCode.USAGE, str(exc)
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            return ExitCode.INPUT, f"database: {type(exc).__name__}: {_one_line(exc)}"
    if isinstance(exc, typer.Abort | KeyboardInterrupt) or type(exc).__name__ == "Abort":
        return ExitCode.INPUT, "interrupted"
    if isinstance(exc, OSError):
        return ExitCode.INPUT, f"{type(exc).__name__}: {_one_line(exc)}"
    return ExitCode.INPUT, f"internal error ({type(exc).__name__}): {_one_line(exc)}"


def status_code(status: Any) -> ExitCode:
    """A command's exit status (None, an int, or a stray value) as a documented code."""
    if status is None:
        return ExitCode.OK
    if isinstance(status, int) and status in ExitCode._value2member_map_:
        return ExitCode(status)
    return ExitCode.INPUT


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
            return int(ExitCode.USAGE)
        code, message = exit_code_for(exc)
        typer.echo(f"error: {shown(redact_text(message))}", err=True)
        return int(code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        return int(ExitCode.INPUT)
    if status == INTERRUPTED:
        typer.echo("error: interrupted", err=True)
    return int(status_code(status))
