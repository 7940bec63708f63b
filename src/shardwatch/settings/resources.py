"""Resources: the data shipped inside the package, found through importlib.resources.

The repository's top-level `db/`, `expectations/` and `flows/` folders are mapped into the
package by pyproject.toml (`shardwatch.migrations`, `shardwatch.expectations`, `shardwatch.flows`):
one copy, read from the checkout in an editable install and from site-packages in a wheel
install, whatever the working directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

MIGRATIONS_PACKAGE = "shardwatch.migrations"
SUITES_PACKAGE = "shardwatch.expectations"
FLOW_MODULE = "shardwatch.flows.monitor"


class ResourceMissing(Exception):
    """A packaged folder is not on the file system (a broken or zipped install)."""


def _folder(package: str) -> Path:
    try:
        found = resources.files(package)
    except ModuleNotFoundError:
        raise ResourceMissing(f"{package} is not installed (reinstall shardwatch)") from None
    if not isinstance(found, Path) or not found.is_dir():
        raise ResourceMissing(f"{package} is not a folder on disk ({found})")
    return found


def migrations_dir() -> Path:
    """The Alembic script folder (env.py, script.py.mako, versions/)."""
    return _folder(MIGRATIONS_PACKAGE)


def default_suites_dir() -> Path:
    """The folder of the default GX suites, one per built-in profile."""
    return _folder(SUITES_PACKAGE)


SuiteOrigin = Literal["suites_dir", "default"]


@dataclass(frozen=True)
class SuiteLocation:
    """Where a suite's file was found: the user's `validation.suites_dir` or the defaults."""

    name: str
    path: Path
    origin: SuiteOrigin

    def describe(self) -> str:
        where = "from validation.suites_dir" if self.origin == "suites_dir" else "default"
        return f"suite {self.name!r} ({where}: {self.path})"


def locate_suite(name: str, suites_dir: Path | None) -> SuiteLocation:
    """`<suites_dir>/<name>.json` when that file exists, else the packaged default (which
    may not exist either: loading it then says so, naming both places)."""
    if suites_dir is not None:
        own = suites_dir / f"{name}.json"
        if own.is_file():
            return SuiteLocation(name, own, "suites_dir")
    return SuiteLocation(name, default_suites_dir() / f"{name}.json", "default")
