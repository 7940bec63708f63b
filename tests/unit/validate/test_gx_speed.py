"""GX's two per-run costs that no check needs (validate/gx_speed.py): the frame fingerprint
is gone from stored results, and the mean's decimal scan is skipped only where no Decimal can
be, with every verdict and observed value unchanged."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.gx_rows import clean_rows, table

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.engine import scan_shard
from shardwatch.validate.gx_adapter import GxPaths, GxValidator
from shardwatch.validate.gx_context import result_identifier
from shardwatch.validate.gx_speed import decimal_to_float

pytestmark = pytest.mark.unit

SUITES = Path(__file__).resolve().parents[3] / "expectations"


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([True, False, True]),
        pd.Series([True, None, False], dtype="boolean"),
        pd.Series([0.25, 1.5, float("nan")]),
        pd.Series([1, None, 3], dtype="Int64"),
        pd.Series([1, 2, 3]),
    ],
    ids=["bool", "nullable-bool", "float", "nullable-int", "int"],
)
def test_a_series_that_cannot_hold_a_decimal_is_left_as_it_is(series: pd.Series) -> None:
    before = series.copy()
    assert decimal_to_float(series) is series
    assert decimal_to_float(series, inplace=True) is None
    pd.testing.assert_series_equal(series, before)


def test_decimals_in_an_object_series_are_still_converted_as_gx_does() -> None:
    series = pd.Series([Decimal("0.5"), Decimal("1.25"), Decimal("3")], dtype=object)
    converted = decimal_to_float(series)
    assert [type(v) for v in converted] == [float, float, float]
    assert list(converted) == [0.5, 1.25, 3.0]
    assert converted.mean() == pytest.approx(1.5833333333)
    categories = pd.Series(["a", "b"]).astype("category")
    assert decimal_to_float(categories) is categories  # scanned (object kind), none found


def test_stored_results_keep_no_frame_fingerprint_and_the_mean_is_exact(tmp_path: Path) -> None:
    rows = clean_rows(700)
    shard = tmp_path / "shard.parquet"
    pq.write_table(table(rows), shard)
    batches: list[pa.RecordBatch] = []
    metrics = scan_shard(shard, LAION400M, BIRHANE2021, on_features=batches.append)
    validator = GxValidator(GxPaths(tmp_path / "gx", tmp_path / "docs"), SUITES, "laion400m")
    validation = validator.validate(pa.Table.from_batches(batches), "tests", 1, 1)
    [mean] = [c for c in validation.checks if c.expectation == "expect_column_mean_to_be_between"]
    assert mean.observed is not None and metrics.keyword_nsfw_rows
    assert mean.observed["observed_value"] == metrics.keyword_nsfw_rows / metrics.rows
    [key] = validation.result_keys
    stored = validator.context.validation_results_store.get(result_identifier(key))
    markers = stored.meta["batch_markers"]
    assert "ge_load_time" in markers  # the markers are there, without the rows' md5
    assert "pandas_data_fingerprint" not in markers
