"""The shard reader on CSV/TSV files: streaming, headers, gzip, quoting, invalid UTF-8, nulls,
malformed rows and projection; and engine metrics over a CSV equal to the same rows as parquet.

Files are written byte by byte here (no pyarrow writer), so the reader is tested on exactly
the bytes a dataset would ship.
"""

from __future__ import annotations

import gzip
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.builders import adversarial_rows, laion_schema, rows_to_table, write_shard
from support.compare import assert_same_metrics
from support.delimited import Value, delimited_bytes, write_delimited
from support.reference import reference_metrics

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import CC3M, CC12M, LAION400M, DatasetProfile
from shardwatch.scan import reader as reader_module
from shardwatch.scan.columns import as_text
from shardwatch.scan.engine import scan_shard
from shardwatch.scan.reader import (
    ShardReader,
    ShardReadError,
    TextFormat,
    shard_format,
    text_format,
)

pytestmark = pytest.mark.unit

LAION_ORDER = ("SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW", "similarity")

def read_all(reader: ShardReader, batch_size: int = 131_072) -> dict[str, list[Any]]:
    """Every yielded batch, concatenated by column, as Python values."""
    batches = list(reader.iter_batches(batch_size))
    if not batches:
        return {}
    table = pa.Table.from_batches(batches)
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _text(values: list[Any]) -> list[str | None]:
    return as_text(pa.array(values, pa.binary())).to_pylist()


# --- file names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("part-0.csv", TextFormat("csv", False)),
        ("PART-0.CSV", TextFormat("csv", False)),
        ("part-0.tsv", TextFormat("tsv", False)),
        ("part-0.csv.gz", TextFormat("csv", True)),
        ("part-0.Tsv.Gz", TextFormat("tsv", True)),
        ("part-0.parquet", None),
        ("part-0.csv.bak", None),
        ("part-0.gz", None),
        ("csv", None),
    ],
)
def test_text_format_by_name(name: str, expected: TextFormat | None) -> None:
    assert text_format(name) == expected
    assert shard_format(Path("d") / name) == ("parquet" if expected is None else expected.kind)


# --- headers, delimiters, gzip --------------------------------------------------------------

ROWS: list[list[Value]] = [
    ["1", "http://example.com/a.jpg", "a desi wedding", "0.31"],
    ["2", "http://example.com/b.jpg", "sunset, over the sea", "0.25"],
    ["3", "http://example.com/c.jpg", None, None],
]
HEADER = ("SAMPLE_ID", "URL", "TEXT", "similarity")


@pytest.mark.parametrize("name", ["s.csv", "s.tsv", "s.csv.gz", "s.tsv.gz", "S.CSV.GZ", "S.TSV"])
def test_header_row_names_the_columns_in_every_format(tmp_path: Path, name: str) -> None:
    path = write_delimited(tmp_path / name, ROWS, HEADER)
    with ShardReader(path, LAION400M) as reader:
        assert reader.format == ("tsv" if ".tsv" in name.lower() else "csv")
        assert reader.num_rows is None  # unknown until read
        assert reader.schema.names == list(HEADER)
        assert all(t == pa.binary() for t in reader.schema.types)
        assert dict(reader.columns.present) == {
            "id": "SAMPLE_ID",
            "url": "URL",
            "text": "TEXT",
            "similarity": "similarity",
        }
        got = read_all(reader)
    assert _text(got["TEXT"]) == ["a desi wedding", "sunset, over the sea", None]
    assert _text(got["SAMPLE_ID"]) == ["1", "2", "3"]
    assert got["similarity"] == [b"0.31", b"0.25", None]


@pytest.mark.parametrize("profile", [CC3M, CC12M], ids=["cc3m", "cc12m"])
@pytest.mark.parametrize("suffix", [".tsv", ".tsv.gz"])
def test_headerless_tsv_uses_the_profile_header(
    tmp_path: Path, profile: DatasetProfile, suffix: str
) -> None:
    assert profile.header is not None
    by_name = [
        {"caption": "first row is data", "url": "http://a.example/1.jpg"},
        {"caption": "second", "url": "http://a.example/2.jpg"},
    ]
    rows: list[list[Value]] = [[r[name] for name in profile.header] for r in by_name]
    path = write_delimited(tmp_path / f"cc{suffix}", rows)
    with ShardReader(path, profile) as reader:
        assert reader.schema.names == list(profile.header)
        got = read_all(reader)
    assert _text(got["caption"]) == ["first row is data", "second"]
    assert _text(got["url"]) == ["http://a.example/1.jpg", "http://a.example/2.jpg"]


def test_tsv_captions_keep_their_quotes(tmp_path: Path) -> None:
    captions = ['"Quoted" whole', 'a 6" ruler', 'he said "hi', '""', "it's", '"a\\"b"']
    path = write_delimited(
        tmp_path / "q.tsv", [[c, f"http://x/{i}"] for i, c in enumerate(captions)]
    )
    with ShardReader(path, CC3M) as reader:
        got = read_all(reader)
    assert _text(got["caption"]) == captions


def test_csv_quoting_commas_quotes_and_newlines(tmp_path: Path) -> None:
    captions = ["a, b", 'say "hi"', "two\nlines", "crlf\r\nline", '"', " padded "]
    rows: list[list[Value]] = [[str(i), "u", c, "0.5"] for i, c in enumerate(captions)]
    path = write_delimited(tmp_path / "q.csv", rows, HEADER)
    with ShardReader(path, LAION400M) as reader:
        got = read_all(reader)
    assert _text(got["TEXT"]) == captions


def test_invalid_utf8_caption_is_decoded_with_replacement(tmp_path: Path) -> None:
    rows: list[list[Value]] = [
        [b"1", b"http://x/1", b"caf\xe9 desi", b"0.5"],
        [b"2", b"http://x/\xff\xfe", b"\xc3\x28 hot", b"0.1"],
        [b"3", b"http://x/3", "über desi".encode(), b"0.2"],
    ]
    for name in ("bad.csv", "bad.csv.gz"):
        path = write_delimited(tmp_path / name, rows, HEADER)
        with ShardReader(path, LAION400M) as reader:
            got = read_all(reader)
        assert _text(got["TEXT"]) == ["caf\ufffd desi", "\ufffd( hot", "über desi"]
        metrics = scan_shard(path, LAION400M, BIRHANE2021).to_dict()
        assert metrics["rows"] == 3
        assert metrics["terms"]["desi"]["matches"] == 2
        assert metrics["keyword_nsfw_rows"] == 1  # 'hot' in the row whose bytes were bad


def test_headerless_tsv_with_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cc.tsv"
    path.write_bytes(b"a \xff desi\thttp://x/1\nplain\thttp://x/\xe9porn\n")
    metrics = scan_shard(path, CC3M, BIRHANE2021).to_dict()
    assert metrics["rows"] == 2
    assert metrics["terms"]["desi"]["matches"] == 1
    assert metrics["keyword_nsfw_rows"] == 1


# --- nulls ----------------------------------------------------------------------------------


def test_empty_fields_are_null_and_text_like_null_stays_text(tmp_path: Path) -> None:
    rows: list[list[Value]] = [
        ["1", "u1", "NA", "", "", "640"],
        ["2", "u2", "null", "0.2", "480", ""],
        ["3", "", "", "nan", "", ""],
        ["4", "u4", "x", "0.5", "1", "2"],
    ]
    header = ("SAMPLE_ID", "URL", "TEXT", "similarity", "HEIGHT", "WIDTH")
    path = write_delimited(tmp_path / "n.csv", rows, header)
    metrics = scan_shard(path, LAION400M, BIRHANE2021).to_dict()
    assert metrics["nulls"] == {
        "id": 0,
        "url": 1,
        "text": 1,  # only the empty field; 'NA' and 'null' are captions
        "similarity": 1,  # the empty field; the text 'nan' is not null here...
        "height": 2,
        "width": 2,
    }
    sim = metrics["similarity"]
    assert (sim["count"], sim["null"]) == (2, 2)  # ...but NaN is no similarity value
    assert (sim["min"], sim["max"], sim["below_threshold"]) == (0.2, 0.5, 1)


# --- malformed rows -------------------------------------------------------------------------


def test_wrong_field_count_in_first_block_fails_at_open(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"SAMPLE_ID,TEXT\n1,ok\n2,too,many\n3,ok\n")
    with pytest.raises(ShardReadError) as err:
        ShardReader(path, LAION400M)
    assert err.value.uri == str(path)
    assert "malformed CSV row: 3 fields where the header has 2" in err.value.reason
    assert "'2,too,many'" in err.value.reason
    with pytest.raises(ShardReadError, match="malformed CSV row"):
        scan_shard(path, LAION400M, BIRHANE2021)


def test_wrong_field_count_in_a_later_block_fails_while_reading(tmp_path: Path) -> None:
    rows: list[list[Value]] = [[f"caption {i}", f"http://x/{i}"] for i in range(200)]
    data = delimited_bytes(rows, None, "tsv") + b"one field only\n" + b"tail\thttp://x/t\n"
    path = tmp_path / "late.tsv.gz"
    path.write_bytes(gzip.compress(data))
    with ShardReader(path, CC3M, block_size=256) as reader:  # opens fine: block 1 is good
        seen = 0
        with pytest.raises(ShardReadError) as err:
            for batch in reader.iter_batches():
                seen += batch.num_rows
    assert 0 < seen < 200  # rows before the bad block were streamed, nothing after it
    reason = err.value.reason
    assert "malformed TSV row: 1 fields where the profile header has 2" in reason
    assert "in the block after data row" in reason and "'one field only'" in reason


def test_too_many_fields_in_headerless_tsv(tmp_path: Path) -> None:
    path = tmp_path / "wide.tsv"
    path.write_bytes(b"caption\thttp://x/1\textra\n")
    with pytest.raises(ShardReadError, match="3 fields where the profile header has 2"):
        scan_shard(path, CC12M, BIRHANE2021)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("long.tsv", b"short\thttp://x/1\n" + b"x" * 600 + b"\thttp://x/2\n"),
        ("unclosed.csv", b'TEXT,URL\n"never closed,' + b"y" * 600 + b"\n"),
    ],
)
def test_row_longer_than_a_block_is_a_clear_error(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    profile = CC3M if name.endswith(".tsv") else LAION400M
    with (
        pytest.raises(ShardReadError, match="longer than the block size of 256 bytes") as err,
        ShardReader(path, profile, block_size=256) as reader,
    ):
        list(reader.iter_batches())
    assert ("quote that is never closed" in err.value.reason) == name.endswith(".csv")


# --- unreadable files -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ShardReadError, match="no such file"):
        ShardReader(tmp_path / "absent.csv.gz", LAION400M)


def test_not_gzip_at_all(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv.gz"
    path.write_bytes(delimited_bytes(ROWS, HEADER, "csv"))  # named .gz, but not compressed
    with pytest.raises(ShardReadError, match=r"bad gzip data \(.*incorrect header check"):
        ShardReader(path, LAION400M)


def test_truncated_gzip_fails_while_reading(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows: list[list[Value]] = [
        [str(i), f"http://x/{rng.random()}", f"caption {rng.random()}", "0.3"] for i in range(5000)
    ]
    data = gzip.compress(delimited_bytes(rows, HEADER, "csv"))
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with (
        ShardReader(path, LAION400M, block_size=4096) as reader,
        pytest.raises(ShardReadError, match=r"bad gzip data .*[Tt]runcated"),
    ):
        list(reader.iter_batches())
    with pytest.raises(ShardReadError, match="bad gzip data"):
        scan_shard(path, LAION400M, BIRHANE2021)


def test_empty_files(tmp_path: Path) -> None:
    empty_tsv = tmp_path / "empty.tsv"
    empty_tsv.write_bytes(b"")
    metrics = scan_shard(empty_tsv, CC3M, BIRHANE2021)  # header-less: a shard with no rows
    assert metrics.rows == 0 and metrics.to_dict()["keyword_nsfw_rows"] == 0
    empty_gz = tmp_path / "empty.tsv.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    assert scan_shard(empty_gz, CC12M, BIRHANE2021).rows == 0

    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_bytes(b"")
    with pytest.raises(ShardReadError, match="empty CSV file: no header row"):
        ShardReader(empty_csv, LAION400M)

    header_only = write_delimited(tmp_path / "header.csv", [], HEADER)
    metrics = scan_shard(header_only, LAION400M, BIRHANE2021)
    assert metrics.rows == 0
    assert "similarity" not in metrics.to_dict()["unavailable"]


def test_a_mapped_column_named_twice_is_an_error(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "dup.csv", [["a", "b", "c"]], ("TEXT", "URL", "TEXT"))
    with pytest.raises(ShardReadError, match=r"\['TEXT'\] appear more than once"):
        ShardReader(path, LAION400M)


# --- projection, blocks and batches ---------------------------------------------------------


def test_only_mapped_columns_are_yielded(tmp_path: Path) -> None:
    header = ("extra_a", "TEXT", "extra_b", "URL", "width")  # 'width' resolves to WIDTH
    rows: list[list[Value]] = [["x", f"t{i}", "not a number", f"u{i}", "12"] for i in range(5)]
    path = write_delimited(tmp_path / "p.csv", rows, header)
    with ShardReader(path, LAION400M) as reader:
        assert reader.schema.names == list(header)
        batches = list(reader.iter_batches())
    wanted = ["URL", "TEXT", "width"]  # logical-field order: url, text, width
    assert [b.schema.names for b in batches] == [wanted]
    assert all(t == pa.binary() for t in batches[0].schema.types)


def test_many_blocks_stream_every_row_in_order(tmp_path: Path) -> None:
    rows: list[list[Value]] = [
        [str(i), f"http://x/{i}.jpg", f'caption number {i}, "quoted"', f"0.{i % 10}"]
        for i in range(1000)
    ]
    path = write_delimited(tmp_path / "big.csv.gz", rows, HEADER)
    with ShardReader(path, LAION400M, block_size=512) as reader:
        batches = list(reader.iter_batches(batch_size=7))
    assert len(batches) > 100
    assert max(b.num_rows for b in batches) == 7
    table = pa.Table.from_batches(batches)
    assert _text(table.column("SAMPLE_ID").to_pylist()) == [str(i) for i in range(1000)]
    assert _text(table.column("TEXT").to_pylist()) == [r[2] for r in rows]


def test_no_mapped_column_still_counts_rows(tmp_path: Path) -> None:
    rows: list[list[Value]] = [[f"{i}", "x"] for i in range(300)]
    path = write_delimited(tmp_path / "other.csv", rows, ("a", "b"))
    with ShardReader(path, LAION400M, block_size=128) as reader:
        batches = list(reader.iter_batches(batch_size=50))
    assert sum(b.num_rows for b in batches) == 300
    assert {tuple(b.schema.names) for b in batches} == {("__rows__",)}
    metrics = scan_shard(path, LAION400M, BIRHANE2021)
    assert metrics.rows == 300


def test_iter_batches_restarts_from_the_beginning(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "twice.tsv", [["a", "u1"], ["b", "u2"]])
    with ShardReader(path, CC3M) as reader:
        assert read_all(reader) == read_all(reader)
        assert len(read_all(reader)["caption"]) == 2


# --- engine: CSV metrics equal parquet metrics ----------------------------------------------


def _csv_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose CSV form means the same: CSV has no NaN/inf float and no empty string
    distinct from null, so those become null (in both files)."""
    out = []
    for row in rows:
        clean = {}
        for key, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            if v == "":
                v = None
            clean[key] = v
        out.append(clean)
    return out


def _csv_value(v: Any) -> Value:
    return None if v is None else (repr(v) if isinstance(v, float) else str(v))


def _without_sums(metrics: dict[str, Any]) -> tuple[dict[str, Any], tuple[float, float]]:
    sim = dict(metrics["similarity"])
    sums = (sim.pop("sum"), sim.pop("mean"))
    return {**metrics, "similarity": sim}, sums


@pytest.mark.parametrize("seed", [0, 1])
def test_engine_metrics_on_csv_equal_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rows = _csv_safe(adversarial_rows(3000, seed, int_ids=True))
    table = rows_to_table(rows, laion_schema(int_ids=True))
    parquet = write_shard(table, tmp_path)
    csv_path = write_delimited(
        tmp_path / "shard.csv",
        [[_csv_value(r[name]) for name in LAION_ORDER] for r in rows],
        LAION_ORDER,
    )
    assert b"\n" in csv_path.read_bytes().split(b"\n", 1)[1].rstrip(b"\n")  # multi-line rows

    # One block, one batch each: identical to the last bit, sums included.
    from_parquet = scan_shard(parquet, LAION400M, BIRHANE2021).to_dict()
    from_csv = scan_shard(csv_path, LAION400M, BIRHANE2021).to_dict()
    assert from_csv == from_parquet
    assert from_csv["rows"] == 3000 and from_csv["terms"]["desi"]["matches"] > 0
    assert_same_metrics(from_csv, reference_metrics(table, LAION400M, BIRHANE2021))

    # Many small blocks through scan_shard (the module's block size): the same counts, and
    # sums equal up to summation order.
    monkeypatch.setattr(reader_module, "CSV_BLOCK_SIZE", 2048)
    calls: list[int] = []
    small = scan_shard(csv_path, LAION400M, BIRHANE2021, progress=calls.append).to_dict()
    assert len(calls) > 50 and sum(calls) == 3000
    got, (got_sum, got_mean) = _without_sums(small)
    want, (want_sum, want_mean) = _without_sums(from_parquet)
    assert got == want
    assert math.isclose(got_sum, want_sum, rel_tol=1e-12)
    assert math.isclose(got_mean, want_mean, rel_tol=1e-12)
