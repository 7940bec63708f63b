"""The streaming engine against the independent row-by-row reference
(tests/support/reference.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import (
    MISSING_COLUMN_CASES,
    all_null_table,
    ambiguous_case_table,
    desi_hot_lexicon,
    edge_case_table,
    empty_table,
    int_tag_table,
    integer_columns_table,
    lower_case_profile,
    real_fixture,
    renamed_case_table,
    table_with_columns,
    tricky_lexicon,
    unsigned_ids_table,
    write_adversarial_shard,
    write_shard,
)
from support.compare import assert_same_metrics
from support.reference import reference_metrics

from shardwatch.core.lexicon import BIRHANE2021, PRECISE2026, Lexicon
from shardwatch.core.profiles import LAION400M, DatasetProfile
from shardwatch.scan.engine import scan_shard

pytestmark = pytest.mark.unit

LAION_URL_TEXT = "laion400m_url_text_10000.parquet"

LEXICONS = [
    pytest.param(BIRHANE2021, id="birhane2021"),
    pytest.param(PRECISE2026, id="precise2026"),
    pytest.param(tricky_lexicon(), id="tricky"),
]
DICT = pa.dictionary(pa.int32(), pa.string())


def engine_metrics(
    path: Path, profile: DatasetProfile, lexicon: Lexicon, batch_size: int | None = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
    return scan_shard(path, profile, lexicon, **kwargs).to_dict()


def check_shard(
    path: Path, profile: DatasetProfile, lexicon: Lexicon, batch_size: int | None = None
) -> dict[str, Any]:
    """Scan `path` with the engine and compare with the reference on the same parquet data."""
    ref = reference_metrics(pq.read_table(path), profile, lexicon)
    got = engine_metrics(path, profile, lexicon, batch_size)
    assert_same_metrics(got, ref, context=f"on {path.name} (batch_size={batch_size})")
    return got


# --- hand-written and random adversarial shards ---------------------------------------------


@pytest.mark.parametrize("lexicon", LEXICONS)
@pytest.mark.parametrize("batch_size", [None, 7, 1000])
def test_edge_case_table(tmp_path: Path, lexicon: Lexicon, batch_size: int | None) -> None:
    path = write_shard(edge_case_table(), tmp_path, row_group_size=50)
    check_shard(path, LAION400M, lexicon, batch_size)


ADVERSARIAL = [
    pytest.param(0, 3000, {}, id="seed0-float-ids"),
    pytest.param(1, 5000, {"int_ids": True}, id="seed1-int-ids"),
    pytest.param(2, 20000, {}, id="seed2-20k"),
    pytest.param(3, 8000, {"similarity_type": pa.float32()}, id="seed3-float32-similarity"),
    pytest.param(
        4, 4000, {"text_type": pa.large_string(), "url_type": pa.large_string()}, id="seed4-large"
    ),
    pytest.param(5, 4000, {"text_type": DICT, "url_type": DICT}, id="seed5-dictionary"),
    pytest.param(
        9, 3000, {"text_type": pa.string_view(), "url_type": pa.string_view()}, id="seed9-view"
    ),
]


@pytest.mark.parametrize("lexicon", LEXICONS)
@pytest.mark.parametrize(("seed", "n_rows", "kwargs"), ADVERSARIAL)
def test_adversarial_table(
    tmp_path: Path, lexicon: Lexicon, seed: int, n_rows: int, kwargs: dict[str, Any]
) -> None:
    path = write_adversarial_shard(tmp_path, n_rows, seed, **kwargs)
    check_shard(path, LAION400M, lexicon)


@pytest.mark.parametrize("batch_size", [7, 1000])
@pytest.mark.parametrize("seed", [6, 7])
def test_adversarial_table_small_batches(tmp_path: Path, batch_size: int, seed: int) -> None:
    path = write_adversarial_shard(tmp_path, 3000, seed, int_ids=seed % 2 == 1)
    check_shard(path, LAION400M, BIRHANE2021, batch_size)


@pytest.mark.parametrize("workers", [1, 4])
def test_workers_do_not_change_metrics(tmp_path: Path, workers: int) -> None:
    path = write_adversarial_shard(tmp_path, 3000, 10)
    ref = reference_metrics(pq.read_table(path), LAION400M, BIRHANE2021)
    got = scan_shard(path, LAION400M, BIRHANE2021, batch_size=97, workers=workers).to_dict()
    assert_same_metrics(got, ref, context=f"workers={workers}")


def test_batch_size_does_not_change_metrics(tmp_path: Path) -> None:
    path = write_adversarial_shard(tmp_path, 2500, 8)
    one = engine_metrics(path, LAION400M, BIRHANE2021, batch_size=100_000)
    many = engine_metrics(path, LAION400M, BIRHANE2021, batch_size=13)
    assert_same_metrics(many, one, context="batch_size 13 vs one batch")


def test_metrics_are_plain_json(tmp_path: Path) -> None:
    path = write_shard(edge_case_table(), tmp_path)
    got = engine_metrics(path, LAION400M, BIRHANE2021)
    assert json.loads(json.dumps(got, allow_nan=False)) == got


# --- the real LAION file: URL and TEXT only -------------------------------------------------


def test_real_laion_file_matches_reference() -> None:
    got = check_shard(real_fixture(LAION_URL_TEXT), LAION400M, BIRHANE2021)
    assert {"nsfw_flag_counts", "similarity", "duplicates.id"} <= set(got["unavailable"])
    assert "terms" not in got["unavailable"]
    assert "duplicates.url" not in got["unavailable"]
    assert got["rows"] == 10_000
    assert got["nulls"] == {"url": 0, "text": 0}


def test_real_laion_file_known_counts() -> None:
    """PROVENANCE.md: on lower-cased TEXT, 'desi' 226 substring vs 3 word; 'hot' 737 vs 43."""
    lexicon = desi_hot_lexicon()
    path = real_fixture(LAION_URL_TEXT)
    ref = reference_metrics(pq.read_table(path), LAION400M, lexicon)
    got = engine_metrics(path, LAION400M, lexicon)
    for metrics in (ref, got):
        assert metrics["terms"]["desi"]["substring_matches"] == 226
        assert metrics["terms"]["desi"]["matches"] == 3
        assert metrics["terms"]["hot"]["substring_matches"] == 737
        assert metrics["terms"]["hot"]["matches"] == 43
    assert_same_metrics(got, ref, context="on the real LAION file, desi/hot lexicon")


# --- missing, renamed and degenerate columns -------------------------------------------------


@pytest.mark.parametrize("lexicon", LEXICONS)
@pytest.mark.parametrize("case", sorted(MISSING_COLUMN_CASES))
def test_missing_columns(tmp_path: Path, case: str, lexicon: Lexicon) -> None:
    path = write_shard(table_with_columns(MISSING_COLUMN_CASES[case]), tmp_path)
    got = check_shard(path, LAION400M, lexicon)
    assert got["rows"] == 400


def test_only_text_or_only_url_gets_a_note(tmp_path: Path) -> None:
    notes = {}
    for case in ("url_text", "text_only", "url_only"):
        path = write_shard(table_with_columns(MISSING_COLUMN_CASES[case]), tmp_path, f"{case}.pq")
        notes[case] = engine_metrics(path, LAION400M, BIRHANE2021).get("notes", [])
    assert notes["text_only"] != notes["url_text"]
    assert notes["url_only"] != notes["url_text"]
    assert notes["text_only"] != notes["url_only"]


def test_no_mapped_column_still_counts_rows(tmp_path: Path) -> None:
    table = pa.table({"caption": ["desi"] * 5, "link": ["http://porn.example"] * 5})
    path = write_shard(table, tmp_path)
    got = check_shard(path, LAION400M, BIRHANE2021)
    assert got["rows"] == 5


@pytest.mark.parametrize(
    "build",
    [renamed_case_table, ambiguous_case_table, all_null_table, empty_table],
    ids=lambda f: f.__name__,
)
def test_degenerate_shards(tmp_path: Path, build: Any) -> None:
    path = write_shard(build(), tmp_path)
    check_shard(path, LAION400M, BIRHANE2021)
    check_shard(path, LAION400M, tricky_lexicon(), batch_size=7)


def test_integer_numeric_columns(tmp_path: Path) -> None:
    path = write_shard(integer_columns_table(), tmp_path)
    got = check_shard(path, LAION400M, BIRHANE2021)
    assert got["duplicates"]["id"] == 2
    assert got["similarity"]["histogram"]["underflow"] == 1


def test_unsigned_integer_ids(tmp_path: Path) -> None:
    path = write_shard(unsigned_ids_table(), tmp_path)
    got = check_shard(path, LAION400M, BIRHANE2021)
    assert got["duplicates"] == {"id": 1, "url": 6}


def test_profile_column_names_in_another_case(tmp_path: Path) -> None:
    path = write_adversarial_shard(tmp_path, 2000, 21)
    got = check_shard(path, lower_case_profile(), BIRHANE2021)
    assert got["unavailable"] == []


def test_integer_nsfw_tags(tmp_path: Path) -> None:
    table, profile = int_tag_table()
    path = write_shard(table, tmp_path)
    got = check_shard(path, profile, BIRHANE2021)
    assert got["nsfw_flag_counts"] == {"0": 1, "1": 2, "other": 2, "null": 1}


def test_invalid_utf8_in_binary_columns_is_replaced_not_fatal(tmp_path: Path) -> None:
    """One undecodable caption must not cost the shard its metrics."""
    table = pa.table(
        {
            "TEXT": pa.array([b"a desi \xff caption", b"\xfe\xfe", None, b"nun"], pa.binary()),
            "URL": pa.array([b"http://x/\xffporn", b"http://x/a", b"http://x/a", None]),
            "SAMPLE_ID": pa.array([1, 2, 2, 3]),
        }
    )
    path = write_shard(table, tmp_path)
    got = check_shard(path, LAION400M, BIRHANE2021)
    assert got["keyword_nsfw_rows"] == 1
    assert got["terms"]["desi"]["matches"] == 1 and got["terms"]["nun"]["matches"] == 1
    assert got["duplicates"] == {"id": 1, "url": 1}
