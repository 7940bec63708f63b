"""Run the `shardwatch` command line in this process, as `python -m shardwatch` would.

`invoke("report", cwd=folder, SHARDWATCH_DATABASE_URL=url)` goes through the same code path
as the console script (`shardwatch.cli.root.main`): `shardwatch.cli.errors.run(app)` on
`sys.argv`, so every escaped error is mapped to its documented exit code and one line on
stderr. Click's `CliRunner.isolation` captures stdout and stderr apart and swaps the
environment; the working folder, `sys.argv`, the `shardwatch` logger's handlers and the
root logger's level are restored afterwards, so no state leaks into the next test.
As in a child, where Python's last-resort handler prints them, other libraries' log records
of WARNING and above reach the captured stderr (a secret they print is seen); the
`shardwatch` logger's do not (its NullHandler keeps them off the last resort).

The environment is the one a child would get (`store_checks.subprocess_env`): no
SHARDWATCH_* variable of the calling process, the repository's suites, plus `env`.
About 2-5 s cheaper than a child process per call (no interpreter start, no re-import of
pyarrow, Great Expectations and SQLAlchemy).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner


def _overrides(env: dict[str, str]) -> dict[str, str | None]:
    """The changes to os.environ that give the child's SHARDWATCH_* environment."""
    from support.store_checks import subprocess_env

    wanted = {k: v for k, v in subprocess_env(**env).items() if k.startswith("SHARDWATCH_")}
    wanted.update(env)
    changes: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("SHARDWATCH_") and k not in wanted
    }
    changes.update(wanted)
    return changes


class _LastResort(logging.StreamHandler):  # type: ignore[type-arg]
    """What a child prints through `logging.lastResort`: WARNING and above, not shardwatch's."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)
        self.addFilter(lambda r: not r.name.startswith("shardwatch"))


def invoke(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`shardwatch ARGS` in-process; the result looks like `subprocess.run`'s."""
    from shardwatch.cli.errors import run
    from shardwatch.cli.root import app

    argv, folder = sys.argv, os.getcwd()
    logger = logging.getLogger("shardwatch")
    handlers, level = list(logger.handlers), logging.getLogger().level
    runner = CliRunner()
    with runner.isolation(env=_overrides(env)) as (out, err, _):
        sys.argv = ["shardwatch", *args]
        last_resort = _LastResort()
        logging.getLogger().addHandler(last_resort)
        try:
            if cwd is not None:
                os.chdir(cwd)
            try:
                code = run(app)
            except SystemExit as exc:  # run() returns codes; a stray exit is still one
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            stdout = out.getvalue().decode("utf-8", "replace")
            stderr = err.getvalue().decode("utf-8", "replace")
        finally:
            logging.getLogger().removeHandler(last_resort)
            sys.argv = argv
            os.chdir(folder)
            logger.handlers[:] = handlers
            logging.getLogger().setLevel(level)
    return subprocess.CompletedProcess(["shardwatch", *args], code, stdout, stderr)
