"""A validation that could not run, kept in GX's results store so Data Docs show it.

When a suite is missing or GX fails on a shard, there is no GX result to render; this
writes one: a failed suite result with a single errored entry whose message is the one-line
reason ("validation could not run: ..."), so the site's index lists the shard as not passing
and its page shows why. No traceback and no local path are stored (the reason has none).
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

with warnings.catch_warnings():  # GX imports the deprecated sre_* modules
    warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

BATCH = "validation-not-run"  # the page's file name: validation-not-run.html


def store_not_run(context: Any, suite: str, run_name: str, reason: str) -> Any:
    """Write the not-run result of `run_name` into the context's results store; returns its
    identifier (for `build_data_docs` and pruning)."""
    run = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    identifier = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=suite), run, BATCH)
    # A table-level expectation with no bounds ("may have any number of rows"), errored with
    # the reason: GX renders its message next to it.
    config = ExpectationConfiguration(type="expect_table_row_count_to_be_between", kwargs={})
    errored = ExpectationValidationResult(
        success=False,
        expectation_config=config,
        result={},
        exception_info={
            "raised_exception": True,
            "exception_message": reason,
            "exception_traceback": reason,  # GX's page needs text here: the reason, no trace
        },
    )
    result = ExpectationSuiteValidationResult(
        success=False,
        results=[errored],
        suite_name=suite,
        statistics={
            "evaluated_expectations": 1,
            "successful_expectations": 0,
            "unsuccessful_expectations": 1,
            "success_percent": 0.0,
        },
        meta={
            "run_id": run,
            "validation_time": run.run_time,
            "active_batch_definition": {
                "datasource_name": "shardwatch",
                "data_connector_name": "fluent",
                "data_asset_name": "features",
                "batch_identifiers": {},
            },
            "batch_spec": {"validation": "could not run"},
        },
    )
    context.validation_results_store.set(identifier, result)
    return identifier
