"""Check outcomes as people read them: failures with observed vs limit, errors with reasons."""

from __future__ import annotations

import pytest

from shardwatch.core.validation import Check, ShardValidation, ValidationCannotRun, could_not_run

pytestmark = pytest.mark.unit


def test_a_failed_map_check_reads_as_rows_unexpected_against_its_limit() -> None:
    check = Check(1, "expect_column_values_to_not_be_in_set", "keyword_nsfw", "term_desi == True",
                  "failed", {"element_count": 20, "unexpected_count": 7,
                             "unexpected_percent": 35.0}, {"mostly": 0.75, "value_set": [True]})
    assert check.describe() == (
        "expect_column_values_to_not_be_in_set on keyword_nsfw where term_desi == True: failed; "
        "7 of 20 rows unexpected (35% of non-null); limit mostly=0.75, value_set=[True]"
    )


def test_an_aggregate_check_shows_its_observed_value_and_an_error_its_reason() -> None:
    mean = Check(0, "expect_column_mean_to_be_between", "keyword_nsfw", None, "passed",
                 {"observed_value": 0.1234567891}, {"max_value": 0.2})
    assert mean.describe().endswith("passed; observed 0.123457; limit max_value=0.2")
    errored = Check(2, "expect_column_values_to_be_between", "width", None, "errored", None,
                    {"min_value": 0}, 'Error: The column "width" in BatchData does not exist.')
    assert errored.describe() == (
        "expect_column_values_to_be_between on width: check errored: "
        'Error: The column "width" in BatchData does not exist.'
    )


def test_a_validation_counts_its_statuses_and_succeeds_only_when_all_pass() -> None:
    ok = Check(0, "e", "c", None, "passed", None, None)
    bad = Check(1, "e", "c", None, "failed", None, None)
    v = ShardValidation("s", "r", (ok, bad, ok))
    assert (v.count("passed"), v.count("failed"), v.count("errored")) == (2, 1, 0)
    assert not v.success and v.summary() == "2 passed, 1 failed, 0 errored"
    assert ShardValidation("s", "r", (ok,)).success


def test_a_validator_that_could_not_run_is_one_errored_check() -> None:
    v = could_not_run("laion400m", "d.shard-1.v1", ValueError("bad\nframe"))
    (check,) = v.checks
    assert check.status == "errored"
    assert check.reason == "validation could not run: ValueError: bad frame"
    assert not v.success and v.docs_page is None
    assert v.not_run == check.reason and v.summary() == check.reason
    assert check.describe() == check.reason  # not "check errored", not "failed"
    assert v.count("failed") == 0


def test_a_suite_that_cannot_be_used_gives_its_own_one_line_reason() -> None:
    v = could_not_run("cc3m", "d.shard-1.v1", ValidationCannotRun("suite 'cc3m' not found"))
    assert v.not_run == "validation could not run: suite 'cc3m' not found"
    assert could_not_run("s", "r", "no\nsuite").not_run == "validation could not run: no suite"


def test_an_errored_check_named_validation_is_not_a_validation_that_could_not_run() -> None:
    ran = ShardValidation("s", "r", (Check(0, "validation", None, None, "errored", None, None,
                                           "KeyError: x"),))
    assert ran.not_run is None and ran.summary() == "0 passed, 0 failed, 1 errored"


def test_the_reason_of_a_validation_that_could_not_run_keeps_no_local_path() -> None:
    exc = OSError(20, "Not a directory", "/home/me/.venv/gx/uncommitted/validations/r.json")
    reason = could_not_run("s", "r", exc).not_run
    assert reason == (
        "validation could not run: NotADirectoryError: [Errno 20] Not a directory: '.../r.json'"
    )
    url = could_not_run("s", "r", ValueError("from http://host/a/b.json at /srv/x/y.py:3"))
    assert url.not_run == (
        "validation could not run: ValueError: from http://host/a/b.json at .../y.py:3"
    )
