"""Footer: refuse a parquet file whose footer declares more than the caps, before decoding any
data.

A parquet file ends with its footer (thrift `FileMetaData`), a 4-byte little-endian footer
length and the magic `PAR1`. `check_footer` first reads those last 8 bytes itself and refuses
a footer longer than `max_footer_bytes` or than the file, so pyarrow is never asked to parse
a forged or huge footer; then it reads the metadata only (no data page is decoded) and refuses
a file that declares more rows, columns or uncompressed bytes than the caps. This guards
against decompression bombs: a small file whose pages would inflate to terabytes is refused
from what it declares. A footer may lie, so the page headers are then read too
(page_scan.py): what the pages really hold counts against the same cap, and a chunk whose
pages hold more than its footer declares is refused for the lie.

Two caps guard the footer parse itself and the schema (defaults in `FooterLimits`):

- `max_schema_elements` (40,000): the footer's first bytes declare how many schema elements
  (leaf columns, the groups holding them and the root) follow; more than the cap is refused
  before pyarrow parses the footer, which costs about 3 KB of memory per element (a
  100,000-column footer of 16 MB would take ~300 MB to parse).
- `max_nesting_depth` (32): the deepest column of the Arrow schema, counting each struct,
  list or map level and the leaf (a flat column is 1, `list<struct<x>>` is 3, a map counts
  its entries struct too). pyarrow itself
  refuses a parquet schema more than 100 levels deep; that is reported as the same cap.

Row-group and column-chunk sizes are read from the footer bytes by footer_thrift.py, never
through pyarrow's `RowGroupMetaData.column()`, which aborts the process on a malformed chunk.

The pickled `arrow.py_extension_type` (CVE-2023-47248) is never loaded: pyarrow >= 14.0.1
reads an unknown extension type as its storage type, and shardwatch registers no extension
type and unpickles nothing.

A CSV/TSV shard (a name `reader.text_format` recognises: `.csv`, `.tsv`, `.csv.gz`,
`.tsv.gz`, any case) has no footer and declares nothing, so only what its bytes show is
checked: the file size against `max_uncompressed_bytes` (for gzip, the compressed size: the
inflated size cannot be known without inflating), the gzip magic of a `.gz` file, and that a
plain one is not a parquet file under a text name. Rows, columns and the footer cap do not
apply. The reader streams such a file in fixed-size blocks, so a gzip bomb costs time, not
memory.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from shardwatch.acquire.footer_thrift import FooterSyntaxError, row_group_sizes
from shardwatch.acquire.page_scan import PageScan, scan_pages
from shardwatch.core.errors import first_line
from shardwatch.scan.reader import TextFormat, text_format

if TYPE_CHECKING:
    from shardwatch.settings.download import DownloadSettings

MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
_GZIP_MIN_BYTES = 18  # a 10-byte header and an 8-byte trailer
ENCRYPTED_MAGIC = b"PARE"
_TRAILER = 8  # footer length (uint32 LE) + magic


@dataclass(frozen=True)
class FooterLimits:
    """Caps on what a parquet footer may declare."""

    # Both the sum over row groups of total_byte_size and the sum over column chunks of
    # total_uncompressed_size.
    max_uncompressed_bytes: int = 16 * 1024**3
    max_rows: int = 2_000_000_000
    max_footer_bytes: int = 64 * 1024**2  # the serialized metadata (footer) size
    max_columns: int = 10_000
    # Schema elements (leaf columns + groups + root), counted before the footer is parsed.
    max_schema_elements: int = 40_000
    # Struct/list/map levels of the deepest column, plus its leaf (a flat column is 1).
    max_nesting_depth: int = 32


class ShardRejected(Exception):
    """A file refused before any of its data was decoded; `reason` says which cap."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


Reject = Callable[[str], ShardRejected]


@dataclass(frozen=True)
class FooterInfo:
    """What an accepted footer declares."""

    rows: int
    row_groups: int
    columns: int
    uncompressed_bytes: int  # the larger of the row-group and the column-chunk sums
    compressed_bytes: int  # sum over column chunks of total_compressed_size
    footer_bytes: int
    pages: PageScan | None = None  # what the pages hold (page_scan.py)


@dataclass(frozen=True)
class TextFileInfo:
    """What an accepted CSV/TSV file shows without being parsed (it has no footer)."""

    format: str  # "csv" or "tsv"
    gzip: bool
    size_bytes: int  # on disk (compressed, for gzip)


def footer_limits(download: DownloadSettings) -> FooterLimits:
    """The caps configured under `[download]` (the monitor's check and `shardwatch ingest`)."""
    return FooterLimits(
        max_uncompressed_bytes=download.max_uncompressed_bytes,
        max_rows=download.max_rows,
        max_footer_bytes=download.max_footer_bytes,
        max_columns=download.max_columns,
        max_schema_elements=download.max_schema_elements,
        max_nesting_depth=download.max_nesting_depth,
    )


def check_footer(path: Path, limits: FooterLimits) -> FooterInfo | TextFileInfo:
    """Read only the footer and raise ShardRejected with a reason naming the cap and the
    declared value when any cap is exceeded; a file that is not parquet (bad magic,
    truncated, unreadable footer) raises ShardRejected("not a parquet file: ...").

    A CSV/TSV file name gets the text checks instead (module docstring) and a TextFileInfo.
    """
    name = str(path)

    def reject(reason: str) -> ShardRejected:
        return ShardRejected(name, reason)

    fmt = text_format(path)
    if fmt is not None:
        return _check_text_file(path, fmt, limits, reject)

    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            if size < len(MAGIC) + _TRAILER:
                raise reject(f"not a parquet file: only {size:,} bytes")
            fh.seek(0)
            head = fh.read(len(MAGIC))
            fh.seek(size - _TRAILER)
            trailer = fh.read(_TRAILER)
            footer_length = _check_trailer(reject, head, trailer, size, limits)
            fh.seek(size - _TRAILER - footer_length)
            elements = _schema_elements(fh.read(min(footer_length, 32)))
            if elements is not None:
                _cap(
                    reject,
                    "schema elements (columns and groups)",
                    elements,
                    limits.max_schema_elements,
                )
            fh.seek(size - _TRAILER - footer_length)
            footer = fh.read(footer_length)  # under the cap: read whole
            fh.seek(0)
            metadata = _read_metadata(fh, reject, limits)  # the same open file: no swap
    except OSError as exc:
        raise reject(f"cannot read the file ({exc.strerror or type(exc).__name__})") from None

    footer_bytes = int(metadata.serialized_size)
    _cap(reject, "footer bytes", footer_bytes, limits.max_footer_bytes)
    columns = int(metadata.num_columns)
    _cap(reject, "columns", columns, limits.max_columns)
    depth = _nesting_depth(metadata, reject)
    if depth > limits.max_nesting_depth:
        raise reject(
            f"declares a schema nested {depth:,} levels deep, above the cap of"
            f" {limits.max_nesting_depth:,}"
        )
    rows = int(metadata.num_rows)
    _cap(reject, "rows", rows, limits.max_rows)

    # From the footer's bytes: pyarrow's RowGroupMetaData.column() aborts the process on a
    # chunk with malformed size statistics (footer_thrift.py).
    try:
        groups = row_group_sizes(footer)
    except FooterSyntaxError as exc:
        raise reject(f"not a parquet file: unreadable footer ({exc})") from None
    row_groups = len(groups)
    group_bytes = chunk_bytes = compressed = group_rows = 0
    for group in groups:
        group_bytes += _non_negative(reject, "row group byte size", group.total_byte_size)
        group_rows += _non_negative(reject, "row group row count", group.num_rows)
        for chunk in group.chunks:
            chunk_bytes += _non_negative(
                reject, "column chunk uncompressed size", chunk.uncompressed
            )
            compressed += _non_negative(reject, "column chunk compressed size", chunk.compressed)
    _cap(reject, "rows", group_rows, limits.max_rows)
    uncompressed = max(group_bytes, chunk_bytes)
    _cap(reject, "uncompressed bytes", uncompressed, limits.max_uncompressed_bytes)
    try:  # the declarations passed: now what the page headers say (page_scan.py)
        with path.open("rb") as fh:
            pages = scan_pages(fh, size, groups, limits.max_uncompressed_bytes, reject)
    except OSError as exc:
        raise reject(f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    return FooterInfo(
        rows=rows,
        row_groups=row_groups,
        columns=columns,
        uncompressed_bytes=uncompressed,
        compressed_bytes=compressed,
        footer_bytes=footer_bytes,
        pages=pages,
    )


def _check_text_file(
    path: Path, fmt: TextFormat, limits: FooterLimits, reject: Reject
) -> TextFileInfo:
    """The size cap, and the first bytes: gzip magic for `.gz`, not parquet otherwise."""
    kind = fmt.kind.upper()
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            head = fh.read(len(MAGIC))
    except OSError as exc:
        raise reject(f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    cap = limits.max_uncompressed_bytes
    if size > cap:
        what = "compressed " if fmt.gzip else ""
        raise reject(f"a {kind} file of {size:,} {what}bytes, above the cap of {cap:,} bytes")
    if fmt.gzip:
        if size < _GZIP_MIN_BYTES:
            raise reject(f"not a gzip file: only {size:,} bytes")
        if not head.startswith(GZIP_MAGIC):
            raise reject("not a gzip file: no gzip magic at the start")
    elif head == MAGIC:
        raise reject(f"a parquet file (PAR1 magic) named as a {kind} file")
    return TextFileInfo(format=fmt.kind, gzip=fmt.gzip, size_bytes=size)


def _check_trailer(
    reject: Reject, head: bytes, trailer: bytes, size: int, limits: FooterLimits
) -> int:
    """The magic at both ends, and a footer length that fits in the file and under the cap;
    checked before pyarrow parses anything. Returns the footer length."""
    footer_length, tail = struct.unpack("<I4s", trailer)
    if tail == ENCRYPTED_MAGIC:
        raise reject("not a parquet file: encrypted footers (PARE) are not supported")
    if tail != MAGIC:
        raise reject("not a parquet file: no PAR1 magic at the end (truncated or not parquet)")
    if head != MAGIC:
        raise reject("not a parquet file: no PAR1 magic at the start")
    room = size - len(MAGIC) - _TRAILER
    if footer_length > room:
        raise reject(
            f"not a parquet file: the footer length field declares {footer_length:,} bytes,"
            f" more than the {room:,} bytes before it (truncated or corrupt)"
        )
    _cap(reject, "footer bytes", footer_length, limits.max_footer_bytes)
    return int(footer_length)


def _schema_elements(footer: bytes) -> int | None:
    """The length of FileMetaData's `schema` list, read from the footer's first bytes (thrift
    compact protocol: field 1 `version` i32, then field 2 `schema` list<SchemaElement>); None
    when the footer does not start that way (pyarrow then judges it)."""
    pos, field = 0, 0
    while pos < len(footer):
        header = footer[pos]
        pos += 1
        delta, kind = header >> 4, header & 0x0F
        if delta == 0:  # a long-form field id: no writer emits one here
            return None
        field += delta
        if field == 1 and kind == 5:  # version (i32, a zigzag varint): skip it
            _, pos = _varint(footer, pos)
            continue
        if field == 2 and kind == 9 and pos < len(footer):  # the schema list's header
            size, pos = footer[pos] >> 4, pos + 1
            if size == 15:  # 15 or more: the size follows as a varint
                size, pos = _varint(footer, pos)
            return size
        return None
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint at `pos` and the position after it (-1 if cut short)."""
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return -1, len(data)


def _nesting_depth(metadata: Any, reject: Reject) -> int:
    """Struct/list/map levels of the deepest column of the footer's schema, plus the leaf."""
    import pyarrow as pa

    try:
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise reject(
            f"not a parquet file: unreadable schema ({first_line(exc, limit=200)})"
        ) from None
    deepest = 0
    stack: list[tuple[pa.DataType, int]] = [(field.type, 1) for field in schema]
    while stack:
        typ, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((typ.field(i).type, depth + 1) for i in range(typ.num_fields))
    return deepest


def _read_metadata(source: BinaryIO, reject: Reject, limits: FooterLimits) -> Any:
    """The footer as pyarrow's FileMetaData (no data page is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(source)
    except (pa.ArrowException, OSError, ValueError) as exc:  # pyarrow: OSError on bad thrift
        detail = first_line(exc, limit=200)
        if "too deeply nested" in detail:
            raise reject(
                f"declares a schema nested deeper than pyarrow reads ({detail}), above the cap"
                f" of {limits.max_nesting_depth:,} levels"
            ) from None
        raise reject(f"not a parquet file: unreadable footer ({detail})") from None


def _cap(reject: Reject, what: str, declared: int, cap: int) -> None:
    if declared < 0:
        raise reject(f"declares a negative number of {what} ({declared:,})")
    if declared > cap:
        raise reject(f"declares {declared:,} {what}, above the cap of {cap:,}")


def _non_negative(reject: Reject, what: str, value: Any) -> int:
    number = int(value) if value is not None else 0
    if number < 0:
        raise reject(f"declares a negative {what} ({number:,})")
    return number
