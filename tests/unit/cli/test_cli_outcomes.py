"""One mapping from a command's outcome to its exit code (cli/outcomes.py), and no command
module that decides a code by itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import shardwatch.cli
from shardwatch.cli.errors import exit_code_for
from shardwatch.cli.exit_codes import ExitCode
from shardwatch.cli.outcomes import EXIT_CODES, Failed, Outcome, command, exit_code

pytestmark = pytest.mark.unit


def test_every_outcome_has_a_documented_code() -> None:
    assert set(EXIT_CODES) == set(Outcome)
    assert exit_code(None) is ExitCode.OK and exit_code(Outcome.OK) is ExitCode.OK
    assert exit_code(Outcome.CHECKS_FAILED) is ExitCode.DATA_FAILED
    assert exit_code(Outcome.BAD_USAGE) is ExitCode.USAGE
    assert exit_code(Outcome.INPUT_FAILED) is ExitCode.INPUT
    assert exit_code(Outcome.UNDELIVERED) is ExitCode.DELIVERY
    code, message = exit_code_for(Failed(Outcome.UNDELIVERED, "not sent"))
    assert code is ExitCode.DELIVERY and message == "not sent"


def test_a_command_exits_with_its_outcome_code() -> None:
    app = typer.Typer()

    @command(app, "ends")
    def ends(how: str) -> Outcome | None:
        if how == "fail":
            raise Failed(Outcome.BAD_USAGE, "bad https://u:pw@host/x")
        return None if how == "none" else Outcome(how)

    @command(app, "other")
    def other() -> None:
        """A second command, so the group keeps its names."""

    runner = CliRunner()
    assert runner.invoke(app, ["ends", "none"]).exit_code == 0
    assert runner.invoke(app, ["ends", "checks failed"]).exit_code == 1
    assert runner.invoke(app, ["ends", "undelivered"]).exit_code == 4
    failed = runner.invoke(app, ["ends", "fail"])
    assert failed.exit_code == 2
    assert failed.stderr.startswith("error: bad ") and "pw" not in failed.stderr


def test_only_outcomes_turns_a_result_into_a_code() -> None:
    folder = Path(shardwatch.cli.__file__).parent
    deciding = re.compile(r"typer\.Exit\(\s*[^)\s]|ExitCode\.[A-Z]")
    found = {
        path.name
        for path in folder.glob("*.py")
        if deciding.search(path.read_text(encoding="utf-8"))
    }
    assert found == {"exit_codes.py", "outcomes.py"}, found  # the table, and its one mapping
