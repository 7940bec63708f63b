"""Packaged resources: the migrations, the default suites and the flow are found through the
package (any working directory), and a user's suites_dir overrides a default suite."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from shardwatch.core.profiles import BUILTIN_PROFILES
from shardwatch.pipeline.monitor import load_flow
from shardwatch.settings.resources import default_suites_dir, locate_suite, migrations_dir
from shardwatch.validate.gx_adapter import SuiteError, find_suite

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
GOOD = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "url_scheme"}}


def test_resources_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (migrations_dir() / "env.py").is_file()
    assert (migrations_dir() / "script.py.mako").is_file()
    assert list((migrations_dir() / "versions").glob("2*.py"))
    for name in BUILTIN_PROFILES:
        assert (default_suites_dir() / f"{name}.json").is_file()
    assert load_flow().name == "shardwatch-monitor"


def test_a_suite_in_suites_dir_overrides_the_default_and_others_fall_back(tmp_path: Path) -> None:
    (tmp_path / "cc3m.json").write_text(json.dumps({"name": "cc3m", "expectations": [GOOD]}))
    own = find_suite(tmp_path, "cc3m")
    assert (own.origin, own.path) == ("suites_dir", tmp_path / "cc3m.json")
    assert "from validation.suites_dir" in own.describe()

    default = find_suite(tmp_path, "cc12m")  # not in suites_dir: the packaged one
    assert (default.origin, default.path) == ("default", default_suites_dir() / "cc12m.json")
    assert find_suite(None, "cc3m").origin == "default"
    assert locate_suite("coyo700m", tmp_path / "missing-folder").origin == "default"


def test_a_suite_found_nowhere_is_a_one_line_error_without_a_local_path(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as err:
        find_suite(tmp_path, "no-such-suite")
    message = str(err.value)
    assert "suite 'no-such-suite' not found" in message and "\n" not in message
    assert str(tmp_path) not in message and str(default_suites_dir()) not in message
    assert "laion400m" in message and "cc12m" in message  # names the defaults there are
    with pytest.raises(SuiteError, match="use only letters"):
        find_suite(None, "../etc/passwd")


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    """pyproject lists packages explicitly (to map db/, expectations/, flows/ in); a new
    subpackage of src/shardwatch must be added there or the wheel would lack it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT / "src").parts)
        for p in (ROOT / "src" / "shardwatch").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
    mapped = config["package-dir"]
    assert mapped["shardwatch.migrations"] == "db"
    assert mapped["shardwatch.expectations"] == "expectations"
    assert mapped["shardwatch.flows"] == "flows"
