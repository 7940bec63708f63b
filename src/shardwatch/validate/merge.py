"""Merging parts: one shard's checks from the checks of its parts, when a shard above
`validation.max_rows` was validated in parts (split by a hash of the id). Pure: no GX.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shardwatch.core.validation import Check, Status

_COUNTS = ("element_count", "unexpected_count", "missing_count")


def merge_checks(parts: list[tuple[Check, ...]]) -> tuple[Check, ...]:
    """One shard's checks from the checks of its parts (the same suite, partitioned rows).

    Exact for every check the default suites use: counts of map checks add up (uniqueness
    too, because parts split by id); a mean is re-weighted by each part's non-null count
    (`element_count - missing_count` is not reported for means, so mean checks are merged
    from `observed_value x rows` only for boolean-like means, and otherwise pass only if
    every part passed); table-level checks see the same columns in every part.
    """
    merged = []
    for same in zip(*parts, strict=True):
        first = same[0]
        errored = next((c for c in same if c.status == "errored"), None)
        if errored is not None:
            merged.append(errored)
            continue
        merged.append(_merge_one(first, same))
    return tuple(merged)


def _merge_one(first: Check, same: tuple[Check, ...]) -> Check:
    threshold = first.threshold or {}
    observed = [c.observed or {} for c in same]
    if all("unexpected_count" in o and "element_count" in o for o in observed):
        totals = {k: sum(int(o.get(k) or 0) for o in observed) for k in _COUNTS}
        nonmissing = totals["element_count"] - totals["missing_count"]
        bad = totals["unexpected_count"]
        mostly = float(threshold.get("mostly", 1.0))
        success = nonmissing == 0 or (nonmissing - bad) / nonmissing >= mostly
        result: dict[str, Any] = {
            "element_count": totals["element_count"],
            "unexpected_count": bad,
            "unexpected_percent": 100 * bad / nonmissing if nonmissing else None,
        }
        if any("missing_count" in o for o in observed):
            result["missing_count"] = totals["missing_count"]
        return _with(first, "passed" if success else "failed", result)
    if first.expectation == "expect_column_mean_to_be_between" and all(
        "weight" in o for o in observed
    ):
        return _merge_mean(first, observed, threshold)
    if all(o == observed[0] for o in observed):  # e.g. the table's columns: same in each part
        return _with(
            first,
            "passed" if all(c.status == "passed" for c in same) else "failed",
            observed[0] or None,
        )
    status: Status = "passed" if all(c.status == "passed" for c in same) else "failed"
    return _with(first, status, {"parts": [o or None for o in observed]})


def _merge_mean(
    first: Check, observed: list[dict[str, Any]], threshold: Mapping[str, Any]
) -> Check:
    """A mean over parts: exact for a boolean column (the count of True is recovered from
    each part's mean), weighted by non-null counts otherwise."""
    weight = sum(int(o["weight"]) for o in observed)
    parts = [
        (float(o["observed_value"]), int(o["weight"]))
        for o in observed
        if o.get("observed_value") is not None
    ]
    if all(o.get("boolean") for o in observed):
        mean = sum(round(m * w) for m, w in parts) / weight if weight else None
    else:
        mean = sum(m * w for m, w in parts) / weight if weight else None
    low, high = threshold.get("min_value"), threshold.get("max_value")
    ok = mean is not None
    if mean is not None and low is not None:
        ok = mean > low if threshold.get("strict_min") else mean >= low
    if ok and mean is not None and high is not None:
        ok = mean < high if threshold.get("strict_max") else mean <= high
    return _with(first, "passed" if ok else "failed", {"observed_value": mean})


def weighed(check: Check, weights: Mapping[str, tuple[int, bool]]) -> Check:
    """A part's mean check carrying its column's non-null count and whether it is boolean
    (`weights`: per column), so that `merge_checks` can merge it."""
    if check.expectation != "expect_column_mean_to_be_between" or check.condition:
        return check
    if check.column is None or check.column not in weights or check.observed is None:
        return check
    weight, boolean = weights[check.column]
    return _with(check, check.status, {**check.observed, "weight": weight, "boolean": boolean})


def _with(check: Check, status: Status, observed: dict[str, Any] | None) -> Check:
    return Check(
        check.position,
        check.expectation,
        check.column,
        check.condition,
        status,
        observed,
        check.threshold,
        check.reason,
    )
