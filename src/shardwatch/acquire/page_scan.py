"""Page scan: what a parquet file's pages really hold, counted page by page before decoding.

A footer's sizes are only declarations: a file may state that a column chunk holds 1,000
bytes while its pages inflate to gigabytes. Every page, though, starts with a header giving
its `uncompressed_page_size`, and the decompressor refuses a page that does not inflate to
exactly that size (Arrow: "Page didn't decompress to expected size"). So the sum of the page
headers' sizes, read here from the file's bytes with no page decompressed, bounds what the
decompressor can produce; it is counted against `max_uncompressed_bytes`, and a chunk whose
pages hold more than its footer declares is refused for the lie.

Dictionary encoding is the other way to inflate: a page of run-length indices a few bytes
long can repeat one long dictionary entry for every row. The scan reads each BYTE_ARRAY
chunk's dictionary page (decompressed under the same cap) and keeps the longest entry per
column, so a reader can size its batches to bound what one batch decodes (`batch_rows`);
the reader then counts the bytes it has decoded against the cap (reader.DecodedTooLarge).

Limits of the walk itself: a page header may take at most `_MAX_HEADER_BYTES`, a file at most
`MAX_PAGES` pages (each costs tens of microseconds to walk), and a dictionary page larger
than `_MAX_DICTIONARY_BYTES` or `_MAX_DICTIONARY_ENTRIES` is not parsed (its entries count
as long as the page: its batches get smaller, never larger).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa

from shardwatch.acquire.footer_thrift import (
    ChunkSizes,
    CutShort,
    FooterSyntaxError,
    RowGroupSizes,
    page_header,
)

MAX_PAGES = 200_000  # a 12.9M-row shard written by Arrow has ~6,000
_MAX_HEADER_BYTES = 16 * 1024**2
_FIRST_READ = 1024
_MAX_DICTIONARY_BYTES = 64 * 1024**2
_MAX_DICTIONARY_ENTRIES = 1_000_000  # writers cap dictionary pages near 1 MB
_DICTIONARY_PAGE = 2
_BYTE_ARRAY = 6
# Parquet CompressionCodec -> pyarrow codec name (LZO and Hadoop-framed LZ4 are not known
# here: their dictionary entries count as long as the whole page).
_CODECS = {1: "snappy", 2: "gzip", 4: "brotli", 6: "zstd", 7: "lz4_raw"}
# Pages may hold this much more than the footer declares before it counts as a lie (a
# writer's rounding of header sizes; a real lie is orders of magnitude).
_SLACK_BYTES = 64 * 1024
# What one batch may decode at most: this, or a quarter of the cap when that is lower (the
# scan holds a few copies of a batch while the next one decodes).
BATCH_BUDGET_BYTES = 1024**3
# Arrow's fixed cost per value of a variable-length column (an offset and validity).
_PER_VALUE_BYTES = 9

Reject = Callable[[str], Exception]


@dataclass(frozen=True)
class PageScan:
    """What the pages hold: uncompressed bytes (headers included), the page count, and per
    top-level column the longest dictionary entry in bytes (0 without a dictionary)."""

    uncompressed_bytes: int
    pages: int
    longest_value: Mapping[str, int]


def scan_pages(
    fh: BinaryIO, file_size: int, groups: Sequence[RowGroupSizes], cap: int, reject: Reject
) -> PageScan:
    """Walk every page header of every column chunk; raise `reject(reason)` when the pages
    hold more than `cap` bytes uncompressed, more than a chunk's footer declares, or more
    than MAX_PAGES pages, or when a page header is unreadable."""
    total = pages = 0
    longest: dict[str, int] = {}
    for g, group in enumerate(groups):
        if group.num_rows == 0:  # nothing is read from it (Arrow writes its chunks at 0)
            continue
        for c, chunk in enumerate(group.chunks):
            where = f"column chunk {c} of row group {g}"
            walk = _Walk(fh, file_size, chunk, where, reject)
            for header_bytes, page in walk.pages():
                pages += 1
                if pages > MAX_PAGES:
                    raise reject(f"holds more than {MAX_PAGES:,} pages")
                total += header_bytes + page.uncompressed
                walk.held += header_bytes + page.uncompressed
                if total > cap:
                    raise reject(
                        f"its pages hold more than the cap of {cap:,} uncompressed bytes"
                        f" (counted page by page: {total:,} at {where}; the footer declares"
                        f" {chunk.uncompressed:,} for that chunk)"
                    )
                if page.kind == _DICTIONARY_PAGE and chunk.physical_type == _BYTE_ARRAY:
                    entry = walk.longest_entry(page)
                    longest[chunk.column] = max(longest.get(chunk.column, 0), entry)
            if walk.held > chunk.uncompressed + _SLACK_BYTES:
                raise reject(
                    f"its pages hold more than its footer declares: {where} holds"
                    f" {walk.held:,} bytes uncompressed, the footer declares"
                    f" {chunk.uncompressed:,}"
                )
    return PageScan(total, pages, longest)


def batch_rows(scan: PageScan, wanted: int, cap: int) -> int:
    """The most rows a batch may hold so that its dictionary-encoded values decode to at
    most min(cap / 4, BATCH_BUDGET_BYTES): `wanted` unless a long dictionary entry forbids."""
    per_row = sum(scan.longest_value.values())
    if not per_row:
        return wanted
    per_row += _PER_VALUE_BYTES * len(scan.longest_value)
    return max(1, min(wanted, min(cap // 4, BATCH_BUDGET_BYTES) // per_row))


class _Walk:
    """The pages of one column chunk, from its first page to its compressed size."""

    def __init__(
        self, fh: BinaryIO, file_size: int, chunk: ChunkSizes, where: str, reject: Reject
    ) -> None:
        self.fh, self.chunk, self.where, self.reject = fh, chunk, where, reject
        first = chunk.data_page_offset
        if 0 < chunk.dictionary_page_offset < first:
            first = chunk.dictionary_page_offset
        self.start, self.end = first, first + chunk.compressed
        if first < 4 or chunk.compressed < 0 or self.end > file_size:
            raise reject(f"not a parquet file: {where} lies outside the file")
        self.held = 0

    def pages(self) -> Iterator[tuple[int, _Page]]:
        """(header bytes, page) for each page, in file order."""
        pos = self.start
        while pos < self.end:
            used, page = self.header_at(pos)
            yield used, page
            pos += used + page.compressed
            if pos > self.end:
                raise self.reject(f"a page of {self.where} runs past the chunk's end")

    def header_at(self, pos: int) -> tuple[int, _Page]:
        want = min(_FIRST_READ, self.end - pos)
        while True:
            self.fh.seek(pos)
            data = self.fh.read(want)
            try:
                fields, used = page_header(data)
            except CutShort:
                if want >= min(_MAX_HEADER_BYTES, self.end - pos):
                    raise self.reject(f"unreadable page header in {self.where}") from None
                want = min(want * 8, _MAX_HEADER_BYTES, self.end - pos)
                continue
            except FooterSyntaxError as exc:
                raise self.reject(f"unreadable page header in {self.where} ({exc})") from None
            page = _Page(*fields, data_at=pos + used)
            if page.uncompressed < 0 or page.compressed < 0:
                raise self.reject(f"a page of {self.where} declares a negative size")
            return used, page

    def longest_entry(self, page: _Page) -> int:
        """The longest entry (bytes) of a PLAIN BYTE_ARRAY dictionary page; the page's whole
        size when it cannot be read here (the reader then fails on it, or decodes it)."""
        codec = _CODECS.get(self.chunk.codec) if self.chunk.codec else None
        if (
            (self.chunk.codec and codec is None)
            or page.uncompressed > _MAX_DICTIONARY_BYTES
            or page.values > _MAX_DICTIONARY_ENTRIES
        ):
            return page.uncompressed
        self.fh.seek(page.data_at)
        raw = self.fh.read(page.compressed)
        try:
            data = pa.decompress(raw, page.uncompressed, codec=codec) if codec else raw
        except (pa.ArrowException, ValueError):
            return page.uncompressed
        return _longest_plain(memoryview(data), page.values)


@dataclass(frozen=True)
class _Page:
    kind: int
    uncompressed: int
    compressed: int
    values: int  # a dictionary page's num_values (0 otherwise)
    data_at: int = 0


def _longest_plain(data: memoryview, count: int) -> int:
    """The longest of `count` PLAIN byte arrays (4-byte little-endian length, then bytes)."""
    longest = pos = 0
    size = len(data)
    unpack = struct.Struct("<I").unpack_from
    for _ in range(count):
        if pos + 4 > size:
            break
        (n,) = unpack(data, pos)
        longest = max(longest, min(n, size - pos - 4))
        pos += 4 + n
    return longest
