"""Merging is exact: the metrics of all rows equal the merge of any split into shards/batches.

Duplicates are the one documented exception: a dataset total sums each shard's duplicate
count, so a duplicate whose copies fall in different shards is not counted by the merge. The
merge is therefore compared with the documented merge of the per-shard references.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.builders import (
    ALL_FRAGMENTS,
    LAION_COLUMNS,
    NSFW_TAGS,
    SEPARATORS,
    SIMILARITY_EDGES,
    URLS,
    laion_schema,
    rows_to_table,
    tricky_lexicon,
)
from support.compare import assert_same_metrics
from support.reference import merge_reference, reference_metrics

from shardwatch.core.lexicon import BIRHANE2021, PRECISE2026
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.engine import scan_batches

pytestmark = pytest.mark.unit

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Characters that stress lower-casing and word boundaries, for free-form tokens.
ALPHABET = (
    "desinuhotlaDESINUHOT _-.#'(!"
    "\u0130\u1e9e\u03a3\u03c3\u03c2\u212a\uff44\u0301\u200d\u0663\u00b2\u24b6\u017f\u00f1\u00e4"
    "\u0940\u203f\uff3f\u00a0\U0001f525"
)

tokens = st.one_of(
    st.sampled_from(ALL_FRAGMENTS),
    st.sampled_from(SEPARATORS),
    st.text(alphabet=ALPHABET, max_size=5),
)
texts = st.one_of(st.none(), st.lists(tokens, max_size=6).map("".join))
urls = st.one_of(
    st.sampled_from(URLS),
    st.lists(tokens, max_size=3).map(lambda parts: "http://h.example/" + "".join(parts)),
)
similarities = st.one_of(
    st.sampled_from(SIMILARITY_EDGES),
    st.integers(-210, 210).map(lambda k: 0.005 * k),
    st.floats(-3.0, 3.0, allow_nan=False),
)
ids = st.one_of(
    st.none(),
    st.just(math.nan),
    st.just(-0.0),
    st.integers(0, 12).map(float),
)
sizes = st.one_of(st.none(), st.just(math.nan), st.sampled_from((64.0, 256.0, 512.0)))
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "SAMPLE_ID": ids,
            "URL": urls,
            "TEXT": texts,
            "HEIGHT": sizes,
            "WIDTH": sizes,
            "LICENSE": st.sampled_from(("?", None, "CC-BY")),
            "NSFW": st.sampled_from(NSFW_TAGS),
            "similarity": similarities,
        }
    ),
    max_size=40,
)
# TEXT and URL may arrive in any Arrow string layout (sliced, as batches of one table are).
STRING_TYPES = (
    pa.string(),
    pa.large_string(),
    pa.string_view(),
    pa.dictionary(pa.int32(), pa.string()),
)
string_types = st.tuples(st.sampled_from(STRING_TYPES), st.sampled_from(STRING_TYPES))
# Mostly the full schema; sometimes a random subset of the columns, in a random order.
column_sets = st.one_of(
    st.permutations(LAION_COLUMNS),
    st.lists(st.sampled_from(LAION_COLUMNS), unique=True),
)


def cut(n: int, data: st.DataObject, label: str) -> list[tuple[int, int]]:
    """Random consecutive [start, stop) ranges covering range(n); empty ranges allowed."""
    points = data.draw(st.lists(st.integers(0, n), max_size=5), label=label)
    edges = [0, *sorted(points), n]
    return list(itertools.pairwise(edges))


def batches(table: pa.Table, data: st.DataObject) -> list[pa.RecordBatch]:
    """`table` as record batches of random sizes, including empty batches."""
    out: list[pa.RecordBatch] = []
    for start, stop in cut(table.num_rows, data, "batch cuts"):
        piece = table.slice(start, stop - start).combine_chunks()
        out.extend(piece.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)])
    return out


def engine_scan(table: pa.Table, data: st.DataObject, lexicon: Any) -> ShardMetrics:
    return scan_batches(batches(table, data), table.schema, LAION400M, lexicon)


@pytest.mark.parametrize(
    "lexicon",
    [BIRHANE2021, PRECISE2026, tricky_lexicon()],
    ids=["birhane", "precise", "tricky"],
)
@SETTINGS
@given(rows=rows_strategy, columns=column_sets, types=string_types, data=st.data())
def test_merge_of_any_split_equals_whole(
    lexicon: Any,
    rows: list[dict[str, Any]],
    columns: list[str],
    types: tuple[pa.DataType, pa.DataType],
    data: st.DataObject,
) -> None:
    schema = laion_schema(text_type=types[0], url_type=types[1])
    table = rows_to_table(rows, schema).select(list(columns))
    whole = engine_scan(table, data, lexicon)
    ref_whole = reference_metrics(table, LAION400M, lexicon)
    assert_same_metrics(whole.to_dict(), ref_whole, context="whole table")

    parts = [table.slice(a, b - a) for a, b in cut(table.num_rows, data, "shard cuts")]
    part_metrics = [engine_scan(part, data, lexicon) for part in parts]
    part_refs = [reference_metrics(part, LAION400M, lexicon) for part in parts]
    for i, (got, ref) in enumerate(zip(part_metrics, part_refs, strict=True)):
        assert_same_metrics(got.to_dict(), ref, context=f"shard {i}")

    merged = ShardMetrics.merge_all(part_metrics).to_dict()
    assert_same_metrics(merged, merge_reference(part_refs), context="merge vs merged reference")
    assert_same_metrics(merged, whole.to_dict(), skip=("duplicates",), context="merge vs whole")


@SETTINGS
@given(
    rows=rows_strategy,
    shard_columns=st.lists(column_sets, min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_merge_of_shards_with_different_columns(
    rows: list[dict[str, Any]], shard_columns: list[list[str]], seed: int, data: st.DataObject
) -> None:
    """`unavailable` of a total lists only what every shard lacks; the rest adds up."""
    full = rows_to_table(rows, laion_schema())
    rng = random.Random(seed)
    shards = []
    for columns in shard_columns:
        start = rng.randint(0, full.num_rows)
        shards.append(full.slice(start, rng.randint(0, full.num_rows)).select(list(columns)))
    merged = ShardMetrics.merge_all(engine_scan(s, data, BIRHANE2021) for s in shards)
    expected = merge_reference([reference_metrics(s, LAION400M, BIRHANE2021) for s in shards])
    assert_same_metrics(merged.to_dict(), expected, context="heterogeneous shards")
