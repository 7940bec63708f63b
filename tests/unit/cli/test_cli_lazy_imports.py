"""Start-up stays cheap: loading the command line, and building every command's --help, loads
none of the heavy libraries (they load inside the command that runs). Checked in a fresh
interpreter, where nothing else has imported them yet."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ("pyarrow", "polars", "prefect", "great_expectations", "sqlalchemy", "pandas", "numpy")

PROBE = """
import json, sys
import typer
import shardwatch.cli.root
typer.main.get_command(shardwatch.cli.root.app)  # every command's parameters and help
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_loading_the_cli_and_its_help_imports_no_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(done.stdout))
    assert "shardwatch" in loaded and "typer" in loaded
    assert sorted(loaded.intersection(HEAVY)) == []
