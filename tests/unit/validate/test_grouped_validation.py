"""Grouped validation (plan.py) of compacted features (compact.py): every check, and every
stored GX result behind Data Docs, equals one GX checkpoint run on the whole row-level frame
of the original features (the path before issue 19, kept here as the reference), on
adversarial feature tables and suites."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import LAION400M, tag_keys
from shardwatch.core.validation import Check
from shardwatch.scan.features import URL_CATEGORIES, term_columns
from shardwatch.validate.compact import WIDE_KEY, FeatureCollector, widen
from shardwatch.validate.gx_adapter import GxPaths, GxValidator, feature_frame
from shardwatch.validate.gx_context import result_identifier
from shardwatch.validate.plan import CONDITIONED, NO_ROWS, plan
from shardwatch.validate.results import to_check

pytestmark = pytest.mark.unit

SUITES = Path(__file__).resolve().parents[3] / "expectations"
TERMS = term_columns(BIRHANE2021)


def _category(rng: random.Random, n: int, values: tuple[str, ...], nulls: bool) -> pa.Array:
    codes = [None if nulls and rng.random() < 0.05 else rng.randrange(len(values))
             for _ in range(n)]
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int8()), pa.array(values, pa.large_string()))


def features(n: int, seed: int, *, text_ids: bool = True) -> pa.Table:
    """A feature table built to break every check somewhere: null and duplicated ids, tags
    outside the labels, NaN-free but null and out-of-range numbers, non-http URLs, keyword
    rows concentrated on some terms, terms that never occur, and a term column with nulls."""
    rng = random.Random(seed)
    ids: list[Any] = [None if rng.random() < 0.02 else rng.randrange(n * 2) for _ in range(n)]
    columns: dict[str, pa.Array] = {
        "id": pa.array([None if i is None else f"id-{i}" for i in ids], pa.large_string())
        if text_ids else pa.array(ids, pa.int64()),
        "nsfw_tag": _category(rng, n, tag_keys(LAION400M.nsfw_labels), nulls=False),
    }
    for name, low, high in (("similarity", 0.0, 1.2), ("width", -5, 900), ("height", 0, 900)):
        values = [None if rng.random() < 0.03 else rng.uniform(low, high) for _ in range(n)]
        if name != "similarity":  # whole numbers (-0.0 too), float32-exact in some batches
            values = [v if v is None or (name == "width" and i > n // 2) else float(round(v))
                      for i, v in enumerate(values)]
            values[:3] = [-0.0, 0.0, None]
        columns[name] = pa.array(values, pa.float64())
    columns["url_scheme"] = _category(rng, n, URL_CATEGORIES, nulls=True)
    keyword = [rng.random() < 0.1 for _ in range(n)]
    columns["keyword_nsfw"] = pa.array(keyword)
    for k, name in enumerate(TERMS):
        share = 0.0 if k % 7 == 3 else 0.02 + 0.01 * (k % 5)  # some terms never occur
        flags: list[bool | None] = [rng.random() < share + (0.3 if keyword[i] and k % 2 else 0)
                                    for i in range(n)]
        if k == 0:
            flags = [None if rng.random() < 0.05 else f for f in flags]
        columns[name] = pa.array(flags, pa.bool_())
    return pa.table(columns)


def condition(column: str, operator: str, parameter: Any) -> dict[str, Any]:
    return {"type": "comparison", "column": {"name": column}, "operator": operator,
            "parameter": parameter}


ADVERSARIAL_SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}},
    {"type": "expect_column_to_exist", "kwargs": {"column": "width", "column_index": 3}},
    {"type": "expect_table_column_count_to_be_between", "kwargs": {"min_value": 5}},
    {"type": "expect_column_values_to_not_be_in_set",
     "kwargs": {"column": "keyword_nsfw", "value_set": [True], "mostly": 0.9,
                "row_condition": condition(TERMS[1], "==", False)}},
    {"type": "expect_column_values_to_not_be_in_set",
     "kwargs": {"column": "keyword_nsfw", "value_set": [True], "mostly": 0.8,
                "row_condition": condition(TERMS[0], "==", True)}},  # the column with nulls
    {"type": "expect_column_values_to_not_be_in_set",
     "kwargs": {"column": "keyword_nsfw", "value_set": [True],
                "row_condition": condition("term_zzz", "==", True)}},  # a missing column
    {"type": "expect_column_mean_to_be_between",
     "kwargs": {"column": "similarity", "min_value": 0.5,
                "row_condition": condition(TERMS[2], "==", True)}},
    {"type": "expect_column_values_to_be_unique",
     "kwargs": {"column": "id", "row_condition": condition(TERMS[3], "==", True)}},  # empty
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "similarity", "min_value": 0.3, "max_value": 1.0,
                "row_condition": condition("width", ">", 100)}},
    {"type": "expect_column_pair_values_a_to_be_greater_than_b",
     "kwargs": {"column_A": "width", "column_B": "height", "or_equal": True}},
    {"type": "expect_column_values_to_not_be_in_set",
     "kwargs": {"column": "url_scheme", "value_set": ["other"], "mostly": 0.99}},
    {"type": "expect_column_distinct_values_to_be_in_set",
     "kwargs": {"column": "nsfw_tag", "value_set": ["UNLIKELY", "UNSURE", "NSFW"]}},
    {"type": "expect_column_max_to_be_between", "kwargs": {"column": "width", "max_value": 800}},
    {"type": "expect_column_values_to_be_in_set",
     "kwargs": {"column": "nsfw_tag", "value_set": ["UNLIKELY", "UNSURE"],
                "row_condition": condition("keyword_nsfw", "==", True)}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    {"type": "expect_table_columns_to_match_set",
     "kwargs": {"column_set": ["id", "width", "no_such_column"], "exact_match": False}},
]


def reference(validator: GxValidator, table: pa.Table) -> tuple[list[Check], list[Any]]:
    """One checkpoint run on the whole row-level frame, as before grouping: its checks,
    and its results as stored for Data Docs."""
    from great_expectations.core.run_identifier import RunIdentifier

    checkpoint = validator.checkpoint(validator.suite)
    result = checkpoint.run(batch_parameters={"dataframe": feature_frame(table)},
                            run_id=RunIdentifier(run_name="reference"))
    [(key, suite_result)] = result.run_results.items()
    validator._forget_batch()
    checks = [to_check(i, r) for i, r in enumerate(suite_result.results)]
    return checks, stored(validator, tuple(key.to_tuple()))  # as Data Docs reads it


def stored(validator: GxValidator, key: tuple[str, ...]) -> list[Any]:
    return list(validator.context.validation_results_store.get(result_identifier(key)).results)


def gx_view(result: Any) -> dict[str, Any]:
    """What Data Docs renders of one result: its expectation, verdict, numbers and samples."""
    info = result.exception_info or {}
    return {
        "type": result.expectation_config.type,
        "kwargs": json.dumps(result.expectation_config.kwargs, sort_keys=True, default=str),
        "success": result.success,
        "result": json.dumps(result.result, sort_keys=True, default=str),
        "raised": bool(info.get("raised_exception")) or any(
            isinstance(v, dict) and v.get("raised_exception") for v in info.values()),
    }


def compacted(table: pa.Table) -> pa.Table:
    """The table as ingest hands it over: collected batch by batch, compacted."""
    collector = FeatureCollector()
    for batch in table.to_batches(max_chunksize=700):
        collector(batch)
    return collector.table()


def assert_same(validator: GxValidator, table: pa.Table) -> list[Check]:
    compact = compacted(table)
    narrowed = {f.name for f in compact.schema if WIDE_KEY in (f.metadata or {})}
    assert "height" in narrowed and "width" not in narrowed and "similarity" not in narrowed
    assert ("id" in narrowed) == pa.types.is_integer(table.schema.field("id").type)
    assert widen(compact).equals(table)
    validation = validator.validate(compact, "adversarial", 1, 1)
    expected, expected_results = reference(validator, table)  # frees the table's buffers
    assert list(validation.checks) == expected
    [key] = validation.result_keys
    got = stored(validator, key)
    assert [gx_view(r) for r in got] == [gx_view(r) for r in expected_results]
    return expected


@pytest.mark.parametrize(("seed", "text_ids"), [(1, True), (2, False)])
def test_the_default_suite_equals_one_run_on_the_whole_frame(
    tmp_path: Path, seed: int, text_ids: bool
) -> None:
    validator = GxValidator(GxPaths(tmp_path / "gx", tmp_path / "docs"), SUITES, "laion400m")
    table = features(4000, seed, text_ids=text_ids)
    checks = assert_same(validator, table)
    assert len(checks) == 32
    statuses = {c.status for c in checks}
    assert statuses == {"passed", "failed"}  # the table breaks some checks, not all
    conditioned = [c for c in checks if c.condition]
    assert len(conditioned) == 21
    assert any((c.observed or {}).get("element_count") == 0 for c in conditioned)
    assert any(c.status == "failed" for c in conditioned)


def test_an_adversarial_suite_equals_one_run_on_the_whole_frame(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "adversarial.json").write_text(
        json.dumps({"name": "adversarial", "expectations": ADVERSARIAL_SUITE}))
    validator = GxValidator(GxPaths(tmp_path / "gx", tmp_path / "docs"), suites, "adversarial")
    table = features(3000, 7)
    groups = plan(ADVERSARIAL_SUITE, table.schema)
    assert any(g.rows == NO_ROWS for g in groups) and any(g.rows == CONDITIONED for g in groups)
    assert any(g.columns is None and g.rows != NO_ROWS for g in groups)  # the row count
    checks = assert_same(validator, table)
    assert {c.status for c in checks} == {"passed", "failed", "errored"}
    # GX lists first the checks that errored while resolving metrics: order kept too
    assert checks[0].status == "errored"


def test_the_per_term_checks_see_only_the_rows_of_their_terms(tmp_path: Path) -> None:
    suite = json.loads((SUITES / "laion400m.json").read_text())["expectations"]
    table = features(2000, 3)
    groups = plan(suite, table.schema)
    [conditioned] = [g for g in groups if g.rows == CONDITIONED]
    assert len(conditioned.positions) == 21
    assert conditioned.columns is not None and len(conditioned.columns) == 22
    widest = max(len(g.columns or ()) for g in groups if g.rows != CONDITIONED and g.columns)
    assert widest == 1  # every other column check runs on its one column
