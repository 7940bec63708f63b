"""page_scan: the pages' real sizes and longest dictionary entries, against pyarrow's own
numbers and a plain-Python reading of the rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardwatch.acquire import page_scan
from shardwatch.acquire.footer import FooterInfo, FooterLimits, ShardRejected, check_footer
from shardwatch.acquire.page_scan import PageScan, batch_rows

pytestmark = pytest.mark.unit

CAPTIONS = [f"caption {i} " + "x" * (i % 97) for i in range(3000)] + ["y" * 5000]
URLS = [f"http://h{i % 13}.example/{'p' * (i % 211)}" for i in range(len(CAPTIONS))]


def _pages(path: Path, limits: FooterLimits | None = None) -> PageScan:
    info = check_footer(path, limits or FooterLimits())
    assert isinstance(info, FooterInfo) and info.pages is not None
    return info.pages


def _write(path: Path, **kwargs: Any) -> Path:
    table = pa.table({"TEXT": CAPTIONS, "URL": URLS, "n": list(range(len(CAPTIONS)))})
    pq.write_table(table, path, row_group_size=1000, **kwargs)
    return path


@pytest.mark.parametrize("compression", ["none", "snappy", "gzip", "zstd", "brotli", "lz4"])
@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_an_honest_file_holds_what_it_declares(
    tmp_path: Path, compression: str, version: str
) -> None:
    path = _write(tmp_path / "f.parquet", compression=compression, data_page_version=version)
    md = pq.read_metadata(path)
    declared = sum(
        md.row_group(g).column(c).total_uncompressed_size
        for g in range(md.num_row_groups)
        for c in range(md.num_columns)
    )
    pages = _pages(path)
    assert pages.uncompressed_bytes == declared
    # The longest dictionary entry of each string column is its longest value (every value
    # of these small row groups fits in the dictionary).
    assert pages.longest_value == {
        "TEXT": max(len(c.encode()) for c in CAPTIONS),
        "URL": max(len(u.encode()) for u in URLS),
    }
    assert pages.pages >= md.num_row_groups * md.num_columns


def test_a_file_without_dictionaries_has_no_longest_entries(tmp_path: Path) -> None:
    path = _write(tmp_path / "plain.parquet", use_dictionary=False)
    assert _pages(path).longest_value == {}


def test_the_pages_count_against_the_cap_before_the_footer_would(tmp_path: Path) -> None:
    """A cap of exactly the real size passes; one byte less is refused."""
    path = _write(tmp_path / "f.parquet")
    real = _pages(path).uncompressed_bytes
    check_footer(path, FooterLimits(max_uncompressed_bytes=real))
    with pytest.raises(ShardRejected, match="uncompressed bytes"):
        check_footer(path, FooterLimits(max_uncompressed_bytes=real - 1))


def test_too_many_pages_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "f.parquet")
    pages = _pages(path).pages
    monkeypatch.setattr(page_scan, "MAX_PAGES", pages - 1)
    with pytest.raises(ShardRejected, match=f"more than {pages - 1:,} pages"):
        check_footer(path, FooterLimits())


def test_a_truncated_chunk_is_refused(tmp_path: Path) -> None:
    """Bytes cut from inside the pages (the footer kept): the walk runs off its chunk."""
    path = _write(tmp_path / "f.parquet")
    data = path.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[:4] + data[200:])  # every offset now points 196 bytes too far
    with pytest.raises(ShardRejected):
        check_footer(cut, FooterLimits())


@pytest.mark.parametrize(
    ("longest", "wanted", "cap", "expected"),
    [
        ({}, 131_072, 10**9, 131_072),  # no dictionary: as asked
        # 1 GiB / (40,000 + 991 + 2 x 9 bytes a row) = 26,183.08
        ({"TEXT": 40_000, "URL": 991}, 131_072, 16 * 1024**3, 26_183),
        # real LAION rows' longest entries (2,041 and 3,487 bytes): the batch is unchanged
        ({"TEXT": 2041, "URL": 3487}, 131_072, 16 * 1024**3, 131_072),
        # a quarter of a 50 MB cap / (1 MiB + 9) = 11.92
        ({"TEXT": 1024**2}, 131_072, 50_000_000, 11),
        ({"TEXT": 10}, 1000, 16 * 1024**3, 1000),  # small entries never raise the batch
        ({"TEXT": 10**9}, 1000, 16 * 1024**3, 1),  # at least one row
    ],
)
def test_batch_rows_bounds_what_a_batch_decodes(
    longest: dict[str, int], wanted: int, cap: int, expected: int
) -> None:
    assert batch_rows(PageScan(0, 0, longest), wanted, cap) == expected


def test_an_empty_row_group_is_not_walked(tmp_path: Path) -> None:
    """Arrow writes a 0-row table as one row group whose chunks start at offset 0."""
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"TEXT": pa.array([], pa.string())}), path)
    assert pq.read_metadata(path).row_group(0).column(0).data_page_offset == 0
    assert _pages(path) == PageScan(0, 0, {})
