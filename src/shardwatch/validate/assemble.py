"""One GX suite result assembled from the results of a suite's groups (see plan.py), as one
`Checkpoint.run` of the whole suite would have stored it."""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():  # GX imports the deprecated sre_* modules
    warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
    from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )
    from great_expectations.validator.validation_statistics import calc_validation_statistics


def suite_result(
    suite: Any,
    results: list[Any],
    meta: dict[str, Any],
    batch_id: Any,
    definition: Any,
    checkpoint: Any,
    run_id: Any,
) -> Any:
    """One suite result from its expectations' results, with the statistics and meta that
    `ValidationDefinition.run` inside `Checkpoint.run` gives it (GX 1.x)."""
    statistics = calc_validation_statistics(results)
    meta = {
        **meta,
        "validation_id": definition.id,
        "checkpoint_id": checkpoint.id,
        "run_id": run_id,
        "validation_time": run_id.run_time,
        "batch_parameters": {"dataframe": DATAFRAME_REPLACEMENT_STR},
    }
    return ExpectationSuiteValidationResult(
        results=results,
        success=statistics.success,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": statistics.evaluated_expectations,
            "successful_expectations": statistics.successful_expectations,
            "unsuccessful_expectations": statistics.unsuccessful_expectations,
            "success_percent": statistics.success_percent,
        },
        meta=meta,
        batch_id=batch_id,
    )
