"""GX results to domain checks: each expectation's result as a `Check` (status, the few
observed numbers, the thresholds, and a one-line reason when it errored).

Only JSON-safe values are kept (numpy scalars to Python, NaN to None), and only the keys
listed here, so no sample of untrusted text reaches the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from shardwatch.core.errors import one_line
from shardwatch.core.validation import Check, Status

_RESULT_KEYS = (
    "observed_value",
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
)
_THRESHOLD_KEYS = (
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "mostly",
    "value_set",
    "column_set",
    "exact_match",
)


def _errored(result: Any) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "unknown error")
    return None


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN to None, containers recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _condition(kwargs: Mapping[str, Any]) -> str | None:
    cond = kwargs.get("row_condition")
    if cond is None:
        return None
    data = cond.to_dict() if hasattr(cond, "to_dict") else cond
    if isinstance(data, Mapping) and data.get("type") == "comparison":
        column = data.get("column", {})
        name = column.get("name") if isinstance(column, Mapping) else column
        return f"{name} {data.get('operator')} {data.get('parameter')}"
    return str(data)[:200]


def to_check(position: int, result: Any) -> Check:
    """The domain check of the expectation result at `position` of a suite result."""
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    reason = _errored(result)
    status: Status = "errored" if reason else ("passed" if result.success else "failed")
    observed = {k: _plain(result.result[k]) for k in _RESULT_KEYS if k in (result.result or {})}
    threshold = {k: _plain(kwargs[k]) for k in _THRESHOLD_KEYS if kwargs.get(k) is not None}
    return Check(
        position=position,
        expectation=config.type,
        column=kwargs.get("column"),
        condition=_condition(kwargs),
        status=status,
        observed=observed or None,
        threshold=threshold or None,
        reason=one_line(reason, limit=1000) if reason else None,
    )
