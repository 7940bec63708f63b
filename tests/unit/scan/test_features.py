"""The per-row feature table: the engine's row-level verdicts, without captions or URLs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import adversarial_table, edge_case_table, table_with_columns, write_shard
from support.reference import lower, pattern_matches, resolve_column

from shardwatch.core.lexicon import BIRHANE2021, Lexicon, Pattern
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.engine import scan_shard
from shardwatch.scan.features import KEYWORD, TAG, URL_SCHEME, term_columns, terms_of

pytestmark = pytest.mark.unit


def features_of(path: Path, lexicon: Lexicon, **kwargs: Any) -> tuple[pa.Table, dict[str, Any]]:
    batches: list[pa.RecordBatch] = []
    metrics = scan_shard(path, LAION400M, lexicon, on_features=batches.append, **kwargs)
    return pa.Table.from_batches(batches), metrics.to_dict()


def differences(got: list[Any], want: list[Any], show: int = 5) -> tuple[int, list[Any]]:
    """How many rows differ (a length mismatch counts its extra rows) and the first `show`
    as (row, got, want): a short failure message where a 3,000-row list diff takes minutes."""
    rows = [(i, a, b) for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b]
    return len(rows) + abs(len(got) - len(want)), rows[:show]


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
    assert differences(features.column(KEYWORD).to_pylist(), keyword) == (0, [])
    columns = term_columns(BIRHANE2021)
    for i, (term, column) in enumerate(zip(BIRHANE2021.terms, columns, strict=True)):
        got = features.column(column).to_pylist()
        assert differences(got, [row[i] for row in terms]) == (0, []), term.term
        assert sum(got) == metrics["terms"][term.term]["matches"]
    assert sum(keyword) == metrics["keyword_nsfw_rows"]
    labels = LAION400M.nsfw_labels
    tags = pq.read_table(path).column("NSFW").to_pylist()
    expected_tags = ["null" if t is None else t if t in labels else "other" for t in tags]
    assert differences(features.column(TAG).to_pylist(), expected_tags) == (0, [])
    assert terms_of(features.schema) == dict(
        zip(term_columns(BIRHANE2021), (p.term for p in BIRHANE2021.terms), strict=True)
    )


def test_features_never_hold_captions_or_urls(tmp_path: Path) -> None:
    table = edge_case_table()
    path = write_shard(table, tmp_path)
    features, _ = features_of(path, BIRHANE2021)
    assert not {"TEXT", "URL", "text", "url"} & set(features.schema.names)
    texts = {v for v in table.column("TEXT").to_pylist() + table.column("URL").to_pylist() if v}
    for column in features.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            assert not texts & set(column.to_pylist())


def test_missing_source_columns_leave_their_features_out(tmp_path: Path) -> None:
    path = write_shard(table_with_columns(["URL", "SAMPLE_ID"]), tmp_path)
    features, metrics = features_of(path, BIRHANE2021)
    assert features.schema.names == ["id", URL_SCHEME, KEYWORD]  # no TEXT: no term flags
    assert features.column(KEYWORD).null_count == 0  # URL alone still flags keywords
    assert sum(features.column(KEYWORD).to_pylist()) == metrics["keyword_nsfw_rows"]
    assert terms_of(features.schema) == {}


def test_url_scheme_says_http_or_other_and_keeps_nulls(tmp_path: Path) -> None:
    urls = ["http://a.example/x", "HTTPS://B.example", "ftp://c.example", "https://", None,
            "javascript:alert(1)", " http://d.example", "https://e.example/<script>"]
    path = write_shard(pa.table({"URL": urls}), tmp_path)
    features, _ = features_of(path, BIRHANE2021)
    assert features.column(URL_SCHEME).to_pylist() == [
        "http(s)", "http(s)", "other", "other", None, "other", "other", "http(s)"
    ]


def test_term_columns_are_safe_unique_slugs() -> None:
    lexicon = Lexicon(
        "x",
        terms=tuple(Pattern(t, "word") for t in ["Black Woman", "black-woman", "<b>", "école"]),
        keywords=(),
    )
    names = term_columns(lexicon)
    assert names == ["term_black_woman", "term_black_woman_001", "term_b", "term_cole"]
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names)


def test_non_finite_numbers_are_null_as_the_engine_counts_them(tmp_path: Path) -> None:
    values = [0.5, float("nan"), float("inf"), -float("inf"), None, 1.0]
    source = pa.table({"similarity": values, "WIDTH": values, "HEIGHT": values})
    path = write_shard(source, tmp_path)
    features, metrics = features_of(path, BIRHANE2021)
    for column in ("similarity", "width", "height"):
        assert features.column(column).to_pylist() == [0.5, None, None, None, None, 1.0]
    assert features.column("similarity").null_count == metrics["similarity"]["null"]
