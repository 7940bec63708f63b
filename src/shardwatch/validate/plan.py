"""Validation plan: which narrow frame each of a suite's expectations is run on. Pure: no GX.

GX's pandas engine copies every column of its frame for each per-row metric it computes (to
drop nulls, to apply a row condition), and a row condition filters the whole frame once per
expectation. So the suite is split into groups, each run on the smallest frame that gives
GX exactly the rows and columns the expectation reads:

* a column expectation gets only the columns it names (`column`, `column_A`, `column_B`,
  `column_list`, and its row condition's column), every row, in the table's order;
* expectations whose row condition is `<boolean column> == <bool>` (the per-term checks of
  the default suites) share one frame: only the rows where one of those conditions holds,
  indexed by their row number in the whole table. GX still applies each row condition, and
  on that frame it selects exactly the rows, in the same order and with the same index, that
  it selects on the whole table, so every count, value and verdict is unchanged;
* the schema-only table expectations (which columns exist, and how many) get every column
  and no row;
* anything else (e.g. a row count) gets the whole frame, as before.

An expectation naming a column the table lacks gets the columns it names that exist, so GX
errors on it with the same message as on the whole frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shardwatch.validate.compact import widen

# Expectations that read only the table's column names (and order).
SCHEMA_ONLY = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_to_exist",
    }
)
_COLUMN_KWARGS = ("column", "column_A", "column_B")
ALL_ROWS, NO_ROWS, CONDITIONED = "all", "none", "conditioned"


@dataclass(frozen=True)
class Group:
    """Expectations (by position in the suite) run together on one frame.

    `columns` None means every column. `rows` is ALL_ROWS, NO_ROWS, or CONDITIONED (only the
    rows where one of `conditions`, (column, value) pairs, holds)."""

    positions: tuple[int, ...]
    columns: tuple[str, ...] | None
    rows: str
    conditions: tuple[tuple[str, bool], ...] = ()


def plan(expectations: Sequence[Mapping[str, Any]], schema: pa.Schema) -> list[Group]:
    """The groups of a suite's expectations (raw suite JSON, in order) on a feature table."""
    names = schema.names
    schema_only: list[int] = []
    whole: list[int] = []
    by_columns: dict[tuple[str, ...], list[int]] = {}
    conditioned: list[int] = []
    columns_of_conditioned: set[str] = set()
    conditions: list[tuple[str, bool]] = []
    for position, expectation in enumerate(expectations):
        kwargs = expectation.get("kwargs") or {}
        if expectation.get("type") in SCHEMA_ONLY:
            schema_only.append(position)
            continue
        referenced = _referenced(kwargs)
        if referenced is None:
            whole.append(position)
            continue
        condition = kwargs.get("row_condition")
        simple = _boolean_equality(condition, schema)
        if condition is not None:
            column = _condition_column(condition)
            if column is None:  # a condition we cannot name the column of: whole frame
                whole.append(position)
                continue
            referenced.add(column)
        if simple is not None:
            conditioned.append(position)
            columns_of_conditioned |= referenced
            if simple not in conditions:
                conditions.append(simple)
            continue
        key = tuple(n for n in names if n in referenced)
        by_columns.setdefault(key, []).append(position)
    groups = [Group(tuple(schema_only), None, NO_ROWS)] if schema_only else []
    groups += [Group(tuple(p), cols, ALL_ROWS) for cols, p in by_columns.items()]
    if conditioned:
        cols = tuple(n for n in names if n in columns_of_conditioned)
        groups.append(Group(tuple(conditioned), cols, CONDITIONED, tuple(conditions)))
    if whole:
        groups.append(Group(tuple(whole), None, ALL_ROWS))
    return groups


def group_table(table: pa.Table, group: Group) -> tuple[pa.Table, npt.NDArray[np.int64] | None]:
    """The group's slice of the table, its compacted columns widened back (compact.py), and
    (for CONDITIONED) the row numbers it keeps."""
    sub = table if group.columns is None else table.select(list(group.columns))
    if group.rows == NO_ROWS:
        return widen(sub.slice(0, 0)), None
    if group.rows == ALL_ROWS:
        return widen(sub), None
    keep: Any = None
    for column, value in group.conditions:
        hit = pc.fill_null(pc.equal(table.column(column), pa.scalar(value)), False)
        keep = hit if keep is None else pc.or_(keep, hit)
    rows = np.flatnonzero(keep.to_numpy(zero_copy_only=False)).astype(np.int64)
    return widen(sub.take(pa.array(rows))), rows


def _referenced(kwargs: Mapping[str, Any]) -> set[str] | None:
    """The columns a column expectation names; None for a table expectation."""
    found = {str(kwargs[k]) for k in _COLUMN_KWARGS if isinstance(kwargs.get(k), str)}
    listed = kwargs.get("column_list")
    if isinstance(listed, list):
        found |= {str(c) for c in listed}
    return found or None


def _condition_column(condition: Any) -> str | None:
    data = condition.to_dict() if hasattr(condition, "to_dict") else condition
    if not isinstance(data, Mapping) or data.get("type") not in ("comparison", "nullity"):
        return None
    column = data.get("column")
    name = column.get("name") if isinstance(column, Mapping) else column
    return name if isinstance(name, str) else None


def _boolean_equality(condition: Any, schema: pa.Schema) -> tuple[str, bool] | None:
    """(column, value) for a row condition `column == True|False` on a boolean column of
    the table (a null there is selected by neither Arrow's filter below nor pandas' query)."""
    data = condition.to_dict() if hasattr(condition, "to_dict") else condition
    if not isinstance(data, Mapping) or data.get("type") != "comparison":
        return None
    if data.get("operator") != "==" or not isinstance(data.get("parameter"), bool):
        return None
    column = _condition_column(data)
    if column is None or column not in schema.names:
        return None
    if not pa.types.is_boolean(schema.field(column).type):
        return None
    return column, bool(data["parameter"])


def gx_order(expectations: Sequence[Mapping[str, Any]], results: Sequence[Any]) -> list[int]:
    """The positions of a suite's results (`results[i]` is expectation i's) in the order one
    GX run on the whole frame lists them (GX 1.x `Validator.graph_validate`): expectations
    grouped by their `column` in order of first appearance (those without one as one group),
    and among them first those that errored before GX computed their result (a metric that
    could not be resolved, such as a missing column), then the rest."""
    groups: dict[str | None, list[int]] = {}
    for position, expectation in enumerate(expectations):
        column = (expectation.get("kwargs") or {}).get("column")
        groups.setdefault(column if isinstance(column, str) else None, []).append(position)
    processed = [p for positions in groups.values() for p in positions]
    early = [p for p in processed if _errored_early(results[p])]
    return early + [p for p in processed if p not in early]


def _errored_early(result: Any) -> bool:
    """Errored while GX resolved its metrics, not while it judged them (`metrics_validate`)."""
    info = getattr(result, "exception_info", None) or {}
    infos = [info] + [v for v in info.values() if isinstance(v, Mapping)]
    raised = [i for i in infos if i.get("raised_exception")]
    return bool(raised) and not any(
        "metrics_validate" in str(i.get("exception_traceback") or "") for i in raised
    )
