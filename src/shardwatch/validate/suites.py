"""GX suites: a suite's file found (the user's `validation.suites_dir`, else the packaged
defaults) and strictly checked before GX sees it.

Suites are GX's own JSON format, edited by hand, and checked strictly here, because GX
silently drops an expectation it cannot parse. Nothing that could open an HTML tag may be in
a suite: Data Docs would render it unescaped.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shardwatch.core.blocklist import FLAG_CHECK
from shardwatch.core.errors import one_line
from shardwatch.core.validation import ValidationCannotRun
from shardwatch.settings.resources import SuiteLocation, default_suites_dir, locate_suite
from shardwatch.validate.gx_context import quiet_gx

with warnings.catch_warnings():  # GX imports the deprecated sre_* modules
    warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.registry import get_expectation_impl

_SUITE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_UNSAFE = re.compile(r"<[A-Za-z/!?]")  # what could open an HTML tag


class SuiteError(ValidationCannotRun):
    """A suite file is missing or unusable; the message names the file and the problem."""


def suite_path(suites_dir: Path, name: str) -> Path:
    """`<suites_dir>/<name>.json`; the name must be a plain slug (it names GX objects and
    Data Docs paths, and GX writes it into index.html unescaped)."""
    if not _SUITE_NAME.fullmatch(name):
        raise SuiteError(f"suite name {name!r}: use only letters, digits and ._- (1-100)")
    return suites_dir / f"{name}.json"


def find_suite(suites_dir: Path | None, name: str) -> SuiteLocation:
    """The suite `name`: `<suites_dir>/<name>.json` if it exists, else the packaged default
    (raises SuiteError when neither exists: one line naming no local path, as it may reach
    alerts)."""
    suite_path(Path(), name)  # the name must be a plain slug
    found = locate_suite(name, suites_dir)
    if not found.path.is_file():
        defaults = sorted(p.stem for p in default_suites_dir().glob("*.json"))
        own = f"no {name}.json in validation.suites_dir, and " if suites_dir is not None else ""
        raise SuiteError(
            f"suite {name!r} not found: {own}no packaged default of that name "
            f"(defaults: {', '.join(defaults)}; set validation.suites_dir to your own)"
        )
    return found


def load_suite(path: Path) -> dict[str, Any]:
    """Read and strictly check one suite file (raises SuiteError naming file and problem)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite is a JSON object with 'name' and 'expectations'")
    if raw.get("name") != path.stem:
        raise SuiteError(
            f"{path}: 'name' must be {path.stem!r} (the file name), not {raw.get('name')!r}"
        )
    expectations = raw.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise SuiteError(f"{path}: 'expectations' must be a non-empty list")
    unsafe = _unsafe_text(raw)
    if unsafe:
        raise SuiteError(
            f"{path}: {unsafe} looks like HTML markup ('<' before a letter, /, ! or ?); "
            "Data Docs would render it unescaped"
        )
    for i, e in enumerate(expectations, start=1):
        where = f"{path}: expectation {i}"
        if not isinstance(e, dict) or not isinstance(e.get("type"), str):
            raise SuiteError(f"{where}: needs a 'type' string and a 'kwargs' object")
        kwargs = e.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise SuiteError(f"{where} ({e['type']}): 'kwargs' must be an object")
        try:
            impl = get_expectation_impl(e["type"])
        except Exception:
            raise SuiteError(f"{where}: unknown expectation type {e['type']!r}") from None
        try:
            with quiet_gx():
                impl(**kwargs, meta=e.get("meta"))
        except Exception as exc:
            raise SuiteError(
                f"{where} ({e['type']}): invalid kwargs: {one_line(exc, limit=500)}"
            ) from None
    try:
        with quiet_gx():
            suite = ExpectationSuite(**raw)
    except Exception as exc:
        raise SuiteError(f"{path}: not a GX suite: {one_line(exc, limit=500)}") from None
    if len(suite.expectations) != len(expectations):  # GX drops what it cannot parse
        raise SuiteError(
            f"{path}: GX accepted {len(suite.expectations)} of {len(expectations)} expectations"
        )
    return raw


def with_flag_checks(raw: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """A copy of the suite `raw` with one check appended per per-row flag column (the
    features' `blocklist_<slug>` columns, one per configured blocklist): no row may be True,
    so a shard's Data Docs page shows a failed check with the count of its matching rows.
    The suite file is not touched, and the checks come after the file's own, so those keep
    their positions; a check the file already has is not added twice."""
    expectations = list(raw["expectations"])
    for column in columns:
        check = {
            "type": FLAG_CHECK,
            "kwargs": {"column": column, "value_set": [True]},
            "meta": {"added_by": "shardwatch: a configured blocklist's per-row flag"},
        }
        if not any(_same_check(e, check) for e in expectations):
            expectations.append(check)
    return {**raw, "expectations": expectations}


def _same_check(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("type") == b.get("type") and a.get("kwargs") == b.get("kwargs")


def check_suites(suites_dir: Path) -> tuple[list[Path], list[str]]:
    """Check every `*.json` suite in `suites_dir`: (files checked, problems found)."""
    if not suites_dir.is_dir():
        return [], [f"{suites_dir}: no such suites directory"]
    files = sorted(suites_dir.glob("*.json"))
    problems = []
    for path in files:
        try:
            load_suite(path)
        except SuiteError as exc:
            problems.append(str(exc))
    if not files:
        problems.append(f"{suites_dir}: holds no *.json suite files")
    return files, problems


def _unsafe_text(value: Any, where: str = "a value") -> str | None:
    if isinstance(value, str):
        return where if _UNSAFE.search(value) else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _unsafe_text(str(k), f"key {k!r}") or _unsafe_text(v, f"{k!r}")
            if found:
                return found
    if isinstance(value, list):
        for v in value:
            found = _unsafe_text(v, where)
            if found:
                return found
    return None
