"""Blocklist checks in Data Docs: the validator adds one `expect_column_values_to_not_be_in_set`
check per configured list's per-row flag column (`blocklist_<slug>`) to the suite it runs,
without touching the suite file; it fails with the count of matching rows, identically on
every part of a shard validated in parts, and shows on the shard's page."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from shardwatch.core.validation import Check, ShardValidation
from shardwatch.validate.gx_adapter import GxPaths, GxValidator
from shardwatch.validate.suites import load_suite, with_flag_checks

pytestmark = pytest.mark.unit

FLAGS = ("blocklist_csam", "blocklist_spam")
SUITE = {
    "name": "mini",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {  # the user's own check on one flag: kept, not added twice
            "type": "expect_column_values_to_not_be_in_set",
            "kwargs": {"column": "blocklist_spam", "value_set": [True]},
        },
    ],
}


def features(rows: int, csam: set[int]) -> pa.Table:
    """A small feature table: ids, and two lists' flags (`csam` rows match; one null)."""
    flag = [i in csam for i in range(rows)]
    flag[5] = None  # type: ignore[call-overload]
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "blocklist_csam": pa.array(flag, pa.bool_()),
            "blocklist_spam": pa.array([False] * rows, pa.bool_()),
        }
    )


def flag_check(v: ShardValidation, column: str) -> Check:
    (found,) = [c for c in v.checks if c.column == column]
    return found


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "mini.json").write_text(json.dumps(SUITE))
    return folder


def test_one_check_per_flag_column_after_the_suites_own() -> None:
    raw = with_flag_checks(SUITE, FLAGS)
    assert raw["expectations"][:2] == SUITE["expectations"]
    assert [e["kwargs"] for e in raw["expectations"][2:]] == [
        {"column": "blocklist_csam", "value_set": [True]}
    ]
    assert len(SUITE["expectations"]) == 2  # the suite itself is not changed
    assert with_flag_checks(SUITE, ()) == SUITE


@pytest.mark.parametrize("max_rows", [10_000, 250])
def test_matching_rows_fail_the_check_with_their_count(
    tmp_path: Path, suites: Path, max_rows: int
) -> None:
    before = (suites / "mini.json").read_bytes()
    csam = {3, 77, 400, 401, 999}
    validator = GxValidator(
        GxPaths(tmp_path / "gx", tmp_path / "docs"),
        suites,
        "mini",
        max_rows=max_rows,
        flag_checks=FLAGS,
    )
    result = validator.validate(features(1000, csam), "d", 1, 1)
    assert len(result.pages) == (1 if max_rows > 1000 else 4)
    assert [c.column for c in result.checks] == ["id", "blocklist_spam", "blocklist_csam"]
    check = flag_check(result, "blocklist_csam")
    assert check.status == "failed"
    assert check.observed is not None
    assert check.observed["unexpected_count"] == len(csam)
    assert check.observed["element_count"] == 1000
    assert check.observed["missing_count"] == 1  # a null flag matches nothing
    assert flag_check(result, "blocklist_spam").status == "passed"
    assert (suites / "mini.json").read_bytes() == before
    assert load_suite(suites / "mini.json") == SUITE

    validator.publish(result)
    pages = [Path(p).read_text() for p in result.pages]
    assert all("blocklist_csam" in page for page in pages)  # the same check on every part
    if max_rows > 1000:
        assert "5 unexpected values found" in pages[0]


def test_a_clean_shard_passes_every_flag_check(tmp_path: Path, suites: Path) -> None:
    validator = GxValidator(
        GxPaths(tmp_path / "gx", tmp_path / "docs"), suites, "mini", flag_checks=FLAGS
    )
    result = validator.validate(features(300, set()), "d", 1, 1)
    assert all(c.status == "passed" for c in result.checks)
    assert len(result.checks) == 3
