"""Footer: refuse a parquet file whose footer declares more than the caps, before decoding any
data.

A parquet file ends with its footer (thrift `FileMetaData`), a 4-byte little-endian footer
length and the magic `PAR1`. `check_footer` first reads those last 8 bytes itself and refuses
a footer longer than `max_footer_bytes` or than the file, so pyarrow is never asked to parse
a forged or huge footer; then it reads the metadata only (no data page is decoded) and refuses
a file that declares more rows, columns or uncompressed bytes than the caps. This guards
against decompression bombs: a small file whose pages would inflate to terabytes is refused
from what it declares.

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
from typing import Any, BinaryIO

from shardwatch.reader import TextFormat, text_format

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


@dataclass(frozen=True)
class TextFileInfo:
    """What an accepted CSV/TSV file shows without being parsed (it has no footer)."""

    format: str  # "csv" or "tsv"
    gzip: bool
    size_bytes: int  # on disk (compressed, for gzip)


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
            _check_trailer(reject, head, trailer, size, limits)
            fh.seek(0)
            metadata = _read_metadata(fh, reject)  # the same open file: no swap in between
    except OSError as exc:
        raise reject(f"cannot read the file ({exc.strerror or type(exc).__name__})") from None

    footer_bytes = int(metadata.serialized_size)
    _cap(reject, "footer bytes", footer_bytes, limits.max_footer_bytes)
    columns = int(metadata.num_columns)
    _cap(reject, "columns", columns, limits.max_columns)
    rows = int(metadata.num_rows)
    _cap(reject, "rows", rows, limits.max_rows)

    row_groups = int(metadata.num_row_groups)
    group_bytes = chunk_bytes = compressed = group_rows = 0
    for i in range(row_groups):
        group = metadata.row_group(i)
        group_bytes += _non_negative(reject, "row group byte size", group.total_byte_size)
        group_rows += _non_negative(reject, "row group row count", group.num_rows)
        for j in range(group.num_columns):
            chunk = group.column(j)
            chunk_bytes += _non_negative(
                reject, "column chunk uncompressed size", chunk.total_uncompressed_size
            )
            compressed += _non_negative(
                reject, "column chunk compressed size", chunk.total_compressed_size
            )
    _cap(reject, "rows", group_rows, limits.max_rows)
    uncompressed = max(group_bytes, chunk_bytes)
    _cap(reject, "uncompressed bytes", uncompressed, limits.max_uncompressed_bytes)
    return FooterInfo(
        rows=rows,
        row_groups=row_groups,
        columns=columns,
        uncompressed_bytes=uncompressed,
        compressed_bytes=compressed,
        footer_bytes=footer_bytes,
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
) -> None:
    """The magic at both ends, and a footer length that fits in the file and under the cap;
    checked before pyarrow parses anything."""
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


def _read_metadata(source: BinaryIO, reject: Reject) -> Any:
    """The footer as pyarrow's FileMetaData (no data page is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(source)
    except (pa.ArrowException, OSError, ValueError) as exc:  # pyarrow: OSError on bad thrift
        text = str(exc).strip().splitlines()
        detail = text[0].strip()[:200] if text else type(exc).__name__
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
