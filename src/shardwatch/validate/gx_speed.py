"""Two costs GX's pandas engine adds to every run that no check or page needs, removed
exactly (`tune()`, once, when the adapter loads). Together they were about 60% of a shard's
validation time (issue 19: 1.2 s of each 3.2M-row part's 1.7 s).

* **The batch fingerprint.** GX hashes every frame it is given (`pandas_data_fingerprint`,
  an md5 of the rows kept as a batch marker). shardwatch gives GX narrow per-group frames
  (plan.py), so that hash identified one slice of one part, never the shard; the shard's
  content SHA-256 is what the store keeps with each result. GX itself skips the hash for
  frames of `HASH_THRESHOLD` bytes (1 GB) or more; here the threshold is 0.
* **The decimal scan of `column.mean`.** Before a mean, GX looks for `decimal.Decimal`
  objects by testing every value in Python (about 0.2 s per million rows). Only an
  object-dtype column can hold one, so for any other dtype the scan is skipped and the column
  is left as it is, which is what GX does when the scan finds none.
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():  # GX imports the deprecated sre_* modules
    warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
    from great_expectations.execution_engine import pandas_execution_engine
    from great_expectations.expectations.metrics.column_aggregate_metrics import column_mean
    from great_expectations.util import (
        convert_pandas_series_decimal_to_float_dtype as _GX_DECIMAL_TO_FLOAT,
    )


def decimal_to_float(data: Any, inplace: bool = False) -> Any:
    """GX's `convert_pandas_series_decimal_to_float_dtype`, without its per-value scan when
    the series cannot hold a Decimal (a dtype whose kind is not object; pandas extension
    dtypes such as categories report object, and keep GX's scan)."""
    if getattr(getattr(data, "dtype", None), "kind", "O") != "O":  # numeric, bool, datetime
        return None if inplace else data
    return _GX_DECIMAL_TO_FLOAT(data, inplace=inplace)


def tune() -> None:
    """Apply both (idempotent)."""
    pandas_execution_engine.HASH_THRESHOLD = 0
    column_mean.convert_pandas_series_decimal_to_float_dtype = decimal_to_float  # type: ignore[attr-defined]
