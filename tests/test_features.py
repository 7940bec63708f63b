"""The per-row feature table: the engine's row-level verdicts, without captions or URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import adversarial_table, edge_case_table, table_with_columns, write_shard
from reference import lower, pattern_matches, resolve_column

from shardwatch.engine import scan_shard
from shardwatch.features import KEYWORD, TAG, term_column, terms_of
from shardwatch.lexicon import BIRHANE2021, Lexicon
from shardwatch.profiles import LAION400M

pytestmark = pytest.mark.unit


def features_of(path: Path, lexicon: Lexicon, **kwargs: Any) -> tuple[pa.Table, dict[str, Any]]:
    batches: list[pa.RecordBatch] = []
    metrics = scan_shard(path, LAION400M, lexicon, on_features=batches.append, **kwargs)
    return pa.Table.from_batches(batches), metrics.to_dict()


def expected_flags(table: pa.Table, lexicon: Lexicon) -> tuple[list[bool], list[list[bool]]]:
    """Row by row, with the reference's own matching: the keyword flag and each term's flag."""
    names = table.schema.names
    text_col = resolve_column(names, LAION400M.column("text"))
    url_col = resolve_column(names, LAION400M.column("url"))
    keyword, terms = [], []
    for row in table.to_pylist():
        text = lower(row.get(text_col)) if text_col else ""
        url = lower(row.get(url_col)) if url_col else ""
        keyword.append(any(pattern_matches(k, h) for k in lexicon.keywords for h in (text, url)))
        terms.append([pattern_matches(p, text) for p in lexicon.terms])
    return keyword, terms


@pytest.mark.parametrize("batch_size", [7, 1000, 131_072])
@pytest.mark.parametrize("seed", [1, 2])
def test_features_equal_row_by_row_reference(tmp_path: Path, seed: int, batch_size: int) -> None:
    table = adversarial_table(3000, seed)
    path = write_shard(table, tmp_path)
    features, metrics = features_of(path, BIRHANE2021, batch_size=batch_size)
    assert features.num_rows == table.num_rows
    keyword, terms = expected_flags(pq.read_table(path), BIRHANE2021)
    assert features.column(KEYWORD).to_pylist() == keyword
    for i, term in enumerate(BIRHANE2021.terms):
        got = features.column(term_column(i)).to_pylist()
        assert got == [row[i] for row in terms], term.term
        assert sum(got) == metrics["terms"][term.term]["matches"]
    assert sum(keyword) == metrics["keyword_nsfw_rows"]
    assert features.column(TAG).to_pylist() == pq.read_table(path).column("NSFW").to_pylist()
    assert terms_of(features.schema) == {
        term_column(i): p.term for i, p in enumerate(BIRHANE2021.terms)
    }


def test_features_never_hold_captions_or_urls(tmp_path: Path) -> None:
    table = edge_case_table()
    path = write_shard(table, tmp_path)
    features, _ = features_of(path, BIRHANE2021)
    assert not {"TEXT", "URL", "text", "url"} & set(features.schema.names)
    texts = {v for v in table.column("TEXT").to_pylist() + table.column("URL").to_pylist() if v}
    for column in features.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            assert not texts & set(column.to_pylist())


def test_missing_columns_give_null_flags_not_false(tmp_path: Path) -> None:
    path = write_shard(table_with_columns(["URL", "SAMPLE_ID"]), tmp_path)
    features, metrics = features_of(path, BIRHANE2021)
    assert features.column(term_column(0)).null_count == features.num_rows  # no TEXT
    assert features.column(KEYWORD).null_count == 0  # URL alone still flags keywords
    assert sum(features.column(KEYWORD).to_pylist()) == metrics["keyword_nsfw_rows"]
    assert features.column(TAG).null_count == features.num_rows
