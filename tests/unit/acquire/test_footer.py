"""Footer caps on real parquet files: a normal file passes with pyarrow's numbers; a
decompression bomb (5M identical strings, zstd), a footer forged to declare 1 TiB, a forged
footer length, a truncated file and a non-parquet file are refused with clear reasons,
the forged length before pyarrow parses anything. CSV/TSV names get only the checks that
apply to a file without a footer: size, gzip magic, and not parquet under a text name."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardwatch.acquire.footer import (
    FooterInfo,
    FooterLimits,
    ShardRejected,
    TextFileInfo,
    check_footer,
)

pytestmark = pytest.mark.unit

TiB = 1024**4


def parquet_footer(path: Path, limits: FooterLimits) -> FooterInfo:
    """`check_footer` on a parquet file: its FooterInfo."""
    info = check_footer(path, limits)
    assert isinstance(info, FooterInfo)
    return info


def text_footer(path: Path, limits: FooterLimits) -> TextFileInfo:
    """`check_footer` on a CSV/TSV file: its TextFileInfo."""
    info = check_footer(path, limits)
    assert isinstance(info, TextFileInfo)
    return info


def _small(path: Path, rows: int = 1000) -> Path:
    table = pa.table({"x": list(range(rows)), "caption": [f"caption {i}" for i in range(rows)]})
    pq.write_table(table, path, compression="zstd", row_group_size=400)
    return path


def _footer(data: bytes) -> tuple[bytes, bytes]:
    """(everything before the footer, the footer) of a parquet file's bytes."""
    (length,) = struct.unpack("<I", data[-8:-4])
    return data[: -8 - length], data[-8 - length : -8]


def _with_footer(body: bytes, footer: bytes) -> bytes:
    return body + footer + struct.pack("<I", len(footer)) + b"PAR1"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _i64_field(value: int) -> bytes:
    """A thrift compact i64 field one id after the previous field (header 0x16), zigzag."""
    return b"\x16" + _varint((value << 1) ^ (value >> 63))


@pytest.fixture
def no_pyarrow_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if pyarrow is asked to parse the footer."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pyarrow was asked to parse the footer")

    monkeypatch.setattr(pq, "read_metadata", boom)
    monkeypatch.setattr(pq, "ParquetFile", boom)


def test_normal_file_passes_with_pyarrows_numbers(tmp_path: Path) -> None:
    path = _small(tmp_path / "ok.parquet")
    md = pq.read_metadata(path)
    groups = [md.row_group(i) for i in range(md.num_row_groups)]
    chunks = [g.column(j) for g in groups for j in range(g.num_columns)]

    info = parquet_footer(path, FooterLimits())

    assert info.pages is not None
    # An honest file's pages (headers included) hold exactly what its chunks declare.
    assert info.pages.uncompressed_bytes == sum(c.total_uncompressed_size for c in chunks)
    assert info == FooterInfo(
        pages=info.pages,
        rows=1000,
        row_groups=3,
        columns=2,
        uncompressed_bytes=max(
            sum(g.total_byte_size for g in groups),
            sum(c.total_uncompressed_size for c in chunks),
        ),
        compressed_bytes=sum(c.total_compressed_size for c in chunks),
        footer_bytes=md.serialized_size,
    )
    assert md.num_rows == 1000 and md.num_row_groups == 3 and md.num_columns == 2
    assert info.footer_bytes == struct.unpack("<I", path.read_bytes()[-8:-4])[0]
    assert 0 < info.compressed_bytes < info.uncompressed_bytes


def test_compressible_bomb_is_refused_from_its_declared_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.parquet"
    table = pa.table({"s": pa.repeat(pa.scalar("a"), 5_000_000)})
    pq.write_table(table, path, compression="zstd", use_dictionary=False)
    declared = parquet_footer(path, FooterLimits()).uncompressed_bytes
    assert path.stat().st_size < 64 * 1024 and declared > 20_000_000  # tiny file, 1000x

    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits(max_uncompressed_bytes=10_000_000))

    assert info.value.reason == (
        f"declares {declared:,} uncompressed bytes, above the cap of 10,000,000"
    )
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: {info.value.reason}"


def test_footer_forged_to_declare_a_terabyte_is_refused(tmp_path: Path) -> None:
    original = tmp_path / "one.parquet"
    pq.write_table(pa.table({"x": list(range(1000))}), original, compression="zstd")
    size = pq.read_metadata(original).row_group(0).total_byte_size
    body, footer = _footer(original.read_bytes())
    # The row group's total_byte_size and its only column's total_uncompressed_size.
    assert footer.count(_i64_field(size)) == 2
    forged = tmp_path / "forged.parquet"
    forged.write_bytes(_with_footer(body, footer.replace(_i64_field(size), _i64_field(TiB))))
    assert pq.read_metadata(forged).row_group(0).total_byte_size == TiB  # a valid footer
    assert forged.stat().st_size < 10_000

    with pytest.raises(ShardRejected) as info:
        check_footer(forged, FooterLimits())

    assert info.value.reason == (
        "declares 1,099,511,627,776 uncompressed bytes, above the cap of 17,179,869,184"
    )


def test_forged_footer_length_is_refused_before_pyarrow_parses(
    tmp_path: Path, no_pyarrow_parsing: None
) -> None:
    data = bytearray(_small(tmp_path / "ok.parquet").read_bytes())
    data[-8:-4] = struct.pack("<I", 0x7FFFFFFF)
    path = tmp_path / "forged.parquet"
    path.write_bytes(bytes(data))

    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits())

    room = len(data) - 12
    assert info.value.reason == (
        "not a parquet file: the footer length field declares 2,147,483,647 bytes,"
        f" more than the {room:,} bytes before it (truncated or corrupt)"
    )


def test_footer_length_above_the_cap_is_refused_before_pyarrow_parses(
    tmp_path: Path, no_pyarrow_parsing: None
) -> None:
    path = _small(tmp_path / "ok.parquet")
    length = struct.unpack("<I", path.read_bytes()[-8:-4])[0]

    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits(max_footer_bytes=100))

    assert info.value.reason == f"declares {length:,} footer bytes, above the cap of 100"


def test_garbage_footer_is_not_parquet(tmp_path: Path) -> None:
    body, footer = _footer(_small(tmp_path / "ok.parquet").read_bytes())
    path = tmp_path / "garbage.parquet"
    path.write_bytes(_with_footer(body, b"\xff" * len(footer)))

    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits())

    assert info.value.reason.startswith("not a parquet file: unreadable footer (")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"a,b\n1,2\n" * 10, "not a parquet file: no PAR1 magic at the end"),
        (b"PAR1", "not a parquet file: only 4 bytes"),
        (b"", "not a parquet file: only 0 bytes"),
        (b"NOPE" + b"\0" * 20 + struct.pack("<I", 8) + b"PAR1", "no PAR1 magic at the start"),
        (b"PAR1" + b"\0" * 20 + struct.pack("<I", 8) + b"PARE", "encrypted footers"),
    ],
)
def test_not_parquet_is_refused(
    tmp_path: Path, no_pyarrow_parsing: None, content: bytes, reason: str
) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(content)

    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits())

    assert reason in info.value.reason
    assert info.value.reason.startswith("not a parquet file: ")


def test_truncated_parquet_is_refused(tmp_path: Path) -> None:
    data = _small(tmp_path / "ok.parquet").read_bytes()
    for keep in (len(data) // 2, len(data) - 1, len(data) - 9):
        path = tmp_path / f"cut{keep}.parquet"
        path.write_bytes(data[:keep])
        with pytest.raises(ShardRejected) as info:
            check_footer(path, FooterLimits())
        assert info.value.reason.startswith("not a parquet file: no PAR1 magic at the end")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ShardRejected) as info:
        check_footer(tmp_path / "absent.parquet", FooterLimits())
    assert info.value.reason == "cannot read the file (No such file or directory)"


def test_rows_cap(tmp_path: Path) -> None:
    path = _small(tmp_path / "ok.parquet")

    assert parquet_footer(path, FooterLimits(max_rows=1000)).rows == 1000
    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits(max_rows=999))
    assert info.value.reason == "declares 1,000 rows, above the cap of 999"


def test_columns_cap(tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [i] for i in range(50)}), path)

    assert parquet_footer(path, FooterLimits(max_columns=50)).columns == 50
    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits(max_columns=49))
    assert info.value.reason == "declares 50 columns, above the cap of 49"


def test_nested_columns_count_leaves(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    table = pa.table({"s": [{"a": 1, "b": "x", "c": [1.0]}], "top": [1]})
    pq.write_table(table, path)

    assert parquet_footer(path, FooterLimits()).columns == 4
    with pytest.raises(ShardRejected):
        check_footer(path, FooterLimits(max_columns=3))


def test_schema_elements_count_groups_and_the_root(tmp_path: Path) -> None:
    # root, s, s.a, s.b, s.c (list group), its repeated group, its element, top: 8 elements
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"s": [{"a": 1, "b": "x", "c": [1.0]}], "top": [1]}), path)

    assert parquet_footer(path, FooterLimits(max_schema_elements=8)).columns == 4
    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits(max_schema_elements=7))
    assert info.value.reason == (
        "declares 8 schema elements (columns and groups), above the cap of 7"
    )


def test_schema_elements_are_refused_before_pyarrow_parses(
    tmp_path: Path, no_pyarrow_parsing: None
) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [i] for i in range(50)}), path)
    with pytest.raises(ShardRejected) as info:  # 20 columns (1-byte size) would not do
        check_footer(path, FooterLimits(max_schema_elements=50))
    assert info.value.reason == (
        "declares 51 schema elements (columns and groups), above the cap of 50"
    )


def test_nesting_depth_cap(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"  # s.c.item: struct, list, leaf
    pq.write_table(pa.table({"s": [{"a": 1, "c": [1.0]}], "top": [1]}), path)

    assert parquet_footer(path, FooterLimits(max_nesting_depth=3)).columns == 3
    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits(max_nesting_depth=2))
    assert info.value.reason == "declares a schema nested 3 levels deep, above the cap of 2"


def test_a_schema_deeper_than_pyarrow_reads_is_refused_as_too_deep(tmp_path: Path) -> None:
    typ: pa.DataType = pa.int64()
    value: Any = 1
    for _ in range(120):
        typ, value = pa.struct([pa.field("c", typ)]), {"c": value}
    path = tmp_path / "deep.parquet"
    pq.write_table(pa.table({"deep": pa.array([value], typ)}), path)
    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits())
    assert "nested deeper than pyarrow reads" in info.value.reason
    assert info.value.reason.endswith("above the cap of 32 levels")


# --- CSV/TSV files: no footer, so only the size and the first bytes are checked ----------

CSV_BYTES = b"caption,url\n" + b"a red car,http://x/1.jpg\n" * 100


@pytest.mark.parametrize("name", ["s.csv", "S.CSV", "s.tsv", "s.csv.gz", "s.TSV.GZ"])
def test_text_shard_passes_without_a_parquet_magic(
    tmp_path: Path, no_pyarrow_parsing: None, name: str
) -> None:
    gz = name.lower().endswith(".gz")
    data = gzip.compress(CSV_BYTES) if gz else CSV_BYTES
    path = tmp_path / name
    path.write_bytes(data)

    info = check_footer(path, FooterLimits())

    kind = "tsv" if ".tsv" in name.lower() else "csv"
    assert info == TextFileInfo(format=kind, gzip=gz, size_bytes=len(data))


def test_empty_plain_text_shard_passes(tmp_path: Path) -> None:
    path = tmp_path / "empty.tsv"
    path.write_bytes(b"")
    assert check_footer(path, FooterLimits()) == TextFileInfo("tsv", False, 0)


def test_text_shard_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(CSV_BYTES)
    size = len(CSV_BYTES)

    assert text_footer(path, FooterLimits(max_uncompressed_bytes=size)).size_bytes == size
    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits(max_uncompressed_bytes=size - 1))
    assert info.value.reason == f"a CSV file of {size:,} bytes, above the cap of {size - 1:,} bytes"

    gz = tmp_path / "s.tsv.gz"
    gz.write_bytes(gzip.compress(CSV_BYTES))
    small = gz.stat().st_size - 1
    with pytest.raises(ShardRejected, match=r"a TSV file of .* compressed bytes, above the cap"):
        check_footer(gz, FooterLimits(max_uncompressed_bytes=small))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (CSV_BYTES, "not a gzip file: no gzip magic at the start"),
        (b"\x1f\x8b\x08", "not a gzip file: only 3 bytes"),
        (b"", "not a gzip file: only 0 bytes"),
    ],
)
def test_gz_text_shard_needs_gzip_magic(
    tmp_path: Path, no_pyarrow_parsing: None, content: bytes, reason: str
) -> None:
    path = tmp_path / "s.csv.gz"
    path.write_bytes(content)
    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits())
    assert info.value.reason == reason


def test_parquet_named_as_csv_is_refused(tmp_path: Path, no_pyarrow_parsing: None) -> None:
    source = tmp_path / "real.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), source)
    data = source.read_bytes()
    path = tmp_path / "disguised.tsv"
    path.write_bytes(data)
    with pytest.raises(ShardRejected) as info:
        check_footer(path, FooterLimits())
    assert info.value.reason == "a parquet file (PAR1 magic) named as a TSV file"


def test_missing_text_shard_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ShardRejected) as info:
        check_footer(tmp_path / "absent.csv.gz", FooterLimits())
    assert info.value.reason == "cannot read the file (No such file or directory)"
