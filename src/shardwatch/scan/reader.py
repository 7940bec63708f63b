"""Reader: stream a shard's mapped columns as record batches, with bounded memory.

A shard is a parquet file, or a delimited text file named `*.csv`, `*.tsv`, `*.csv.gz` or
`*.tsv.gz` (case-insensitive; `.gz` is gzip). Text files are streamed block by block with
`pyarrow.csv.open_csv` (`CSV_BLOCK_SIZE` bytes per block), never loaded whole:

- Delimiter by name: `,` for csv (with `"` quoting; quoted fields may hold newlines), tab for
  tsv (no quoting at all: a `"` in a caption is an ordinary character).
- Header: when the profile has `header`, the file has no header row and those are its
  column names (CC3M, CC12M); otherwise the first row names the columns.
- Every column is read as `binary` (no type inference, so a later block can never disagree
  with the first). Text is decoded by `as_text` (columns.py), with U+FFFD for invalid UTF-8,
  so a bad caption never fails the shard; numbers are parsed by the engine (`binary` ->
  float64).
- An empty field is null (CSV has no separate empty string); every other value is kept as
  written, so a caption `NA` or `null` stays text.
- A row whose field count differs from the header's fails the shard with a ShardReadError
  naming both counts (the row is never skipped or silently counted), as do an unreadable
  file, bad gzip data and a row longer than a block.
- `num_rows` is None for a text shard: the count is unknown until the file has been read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shardwatch.core.errors import first_line, one_line
from shardwatch.core.profiles import LOGICAL_FIELDS, DatasetProfile
from shardwatch.core.schema import check_schema
from shardwatch.scan.columns import ResolvedColumns, resolve_columns

DEFAULT_BATCH_SIZE = 131_072
# Read pages through a buffered stream instead of whole column chunks, so a shard written as
# one huge row group still streams in bounded memory.
_READ_BUFFER_BYTES = 8 * 1024 * 1024
# Bytes of a CSV/TSV file parsed at a time (after decompression); one row must fit in one.
CSV_BLOCK_SIZE = 4 * 1024 * 1024
_DETAIL_CHARS = 200
# Arrow's message for a row whose field count differs from the header's.
_MISMATCH = re.compile(
    r"CSV parse error: (?:Row #\d+: )?Expected (\d+) columns, got (\d+): (.*)", re.DOTALL
)

TextKind = Literal["csv", "tsv"]
ShardFormat = Literal["parquet", "csv", "tsv"]
# Name endings (lower-cased) of the delimited text formats: (format, gzip-compressed).
_TEXT_SUFFIXES: dict[str, tuple[TextKind, bool]] = {
    ".csv": ("csv", False),
    ".tsv": ("tsv", False),
    ".csv.gz": ("csv", True),
    ".tsv.gz": ("tsv", True),
}


class ShardReadError(Exception):
    """A shard could not be read; the message names the file and the reason."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason


class DecodedTooLarge(ShardReadError):
    """The batches read so far decoded to more than the cap on uncompressed bytes (a
    decompression bomb the footer understated): the shard is refused, not failed."""


@dataclass(frozen=True)
class TextFormat:
    """How a delimited text shard is stored: csv or tsv, and whether it is gzipped."""

    kind: TextKind
    gzip: bool

    @property
    def delimiter(self) -> str:
        return "\t" if self.kind == "tsv" else ","


def text_format(path: str | Path) -> TextFormat | None:
    """The CSV/TSV format a file name stands for, or None (a parquet shard)."""
    name = Path(path).name.lower()
    for suffix, (kind, gz) in _TEXT_SUFFIXES.items():
        if name.endswith(suffix):
            return TextFormat(kind, gz)
    return None


def shard_format(path: str | Path) -> ShardFormat:
    """`csv` or `tsv` for a delimited text file name (see `text_format`), else `parquet`."""
    fmt = text_format(path)
    return "parquet" if fmt is None else fmt.kind


def _row_counter(n: int) -> pa.RecordBatch:
    """A batch of `n` rows and no data: what a shard with no mapped column yields."""
    return pa.RecordBatch.from_arrays([pa.nulls(n)], names=["__rows__"])


class _ParquetSource:
    def __init__(self, uri: str, path: str | Path) -> None:
        self.uri = uri
        try:
            self._file = pq.ParquetFile(
                path, buffer_size=_READ_BUFFER_BYTES, pre_buffer=False, memory_map=False
            )
            self.schema: pa.Schema = self._file.schema_arrow
        except FileNotFoundError:
            raise ShardReadError(uri, "no such file") from None
        except PermissionError:
            raise ShardReadError(uri, "permission denied") from None
        except (pa.ArrowException, OSError) as exc:
            raise ShardReadError(
                uri, f"not a readable parquet file ({one_line(exc, limit=2 * _DETAIL_CHARS)})"
            ) from None
        self.num_rows: int = self._file.metadata.num_rows

    def batches(self, wanted: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        try:
            if not wanted:  # nothing mapped: still count rows, from the metadata
                for start in range(0, self.num_rows, batch_size):
                    yield _row_counter(min(batch_size, self.num_rows - start))
                return
            yield from self._file.iter_batches(
                batch_size=batch_size, columns=wanted, use_threads=True
            )
        except (pa.ArrowException, OSError) as exc:
            raise ShardReadError(
                self.uri, f"failed while reading ({one_line(exc, limit=2 * _DETAIL_CHARS)})"
            ) from None

    def close(self) -> None:
        self._file.close()


class _TextSource:
    """A CSV/TSV file; each `batches` call streams it again from the start."""

    def __init__(
        self,
        uri: str,
        path: str | Path,
        fmt: TextFormat,
        header: tuple[str, ...] | None,
        block_size: int,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.uri = uri
        self.path = str(path)
        self.fmt = fmt
        self.header = header
        self.block_size = block_size
        self.num_rows: int | None = None
        self.empty = False  # a header-less file with no bytes (after decompression)
        names = self._probe(list(header) if header is not None else None)
        self.schema = pa.schema([pa.field(name, pa.binary()) for name in names])

    def _probe(self, names: list[str] | None) -> list[str]:
        """Open the file and parse its first block: errors surface when the shard is opened,
        and a file with a header row tells its column names."""
        stream = self._stream()
        try:
            # Column names only: types inferred from the first block are never used for data.
            types = None if names is None else dict.fromkeys(names, pa.binary())
            reader = pacsv.open_csv(stream, **self._options(names, types, None))
            found: list[str] = list(reader.schema.names)
            reader.close()
            return found
        except (pa.ArrowException, OSError) as exc:
            if names is not None and _is_empty_file(exc):
                self.empty = True  # no rows; the profile's header gives the columns
                return names
            raise self._error(exc, 0) from None
        finally:
            stream.close()

    def _stream(self) -> Any:
        try:
            return pa.input_stream(
                self.path,
                compression="gzip" if self.fmt.gzip else None,
                buffer_size=_READ_BUFFER_BYTES,
            )
        except FileNotFoundError:
            raise ShardReadError(self.uri, "no such file") from None
        except PermissionError:
            raise ShardReadError(self.uri, "permission denied") from None
        except (pa.ArrowException, OSError) as exc:
            raise ShardReadError(
                self.uri, f"cannot be opened ({first_line(exc, limit=_DETAIL_CHARS)})"
            ) from None

    def _options(
        self,
        names: list[str] | None,
        types: dict[str, pa.DataType] | None,
        include: list[str] | None,
    ) -> dict[str, Any]:
        # No `invalid_row_handler`: a Python callable handed to Arrow is owned by the CSV
        # reader's read-ahead tasks on Arrow's worker threads, and the last reference can be
        # dropped there while the interpreter finalizes; taking the GIL then ends the thread
        # inside a noexcept C++ destructor: "terminate called without an active exception",
        # exit 134 (docs/exit-134.md). Arrow's own error names the field counts and the row.
        csv = self.fmt.kind == "csv"
        convert: dict[str, Any] = {
            "strings_can_be_null": True,
            "quoted_strings_can_be_null": True,
            "null_values": [""],
        }
        if types is not None:
            convert["column_types"] = types
        if include is not None:
            convert["include_columns"] = include
        return {
            "read_options": pacsv.ReadOptions(
                block_size=self.block_size,
                column_names=names if self.header is not None else None,
            ),
            "parse_options": pacsv.ParseOptions(
                delimiter=self.fmt.delimiter,
                quote_char='"' if csv else False,
                newlines_in_values=csv,
            ),
            "convert_options": pacsv.ConvertOptions(**convert),
        }

    def batches(self, wanted: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        if self.empty:
            return
        # With nothing mapped, read the first column only, to count rows.
        include = wanted or self.schema.names[:1]
        rows = 0
        stream = self._stream()
        try:
            try:
                reader = pacsv.open_csv(
                    stream,
                    **self._options(
                        list(self.schema.names),
                        dict.fromkeys(include, pa.binary()),
                        include,
                    ),
                )
            except (pa.ArrowException, OSError) as exc:
                raise self._error(exc, rows) from None
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowException, OSError) as exc:
                    raise self._error(exc, rows) from None
                if not wanted:
                    batch = _row_counter(batch.num_rows)
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
                rows += batch.num_rows
        finally:
            stream.close()

    def _error(self, exc: BaseException, rows: int) -> ShardReadError:
        kind = self.fmt.kind.upper()
        where = f"in the block after data row {rows:,}" if rows else "in the first block"
        bad_row = _MISMATCH.match(str(exc))
        if bad_row is not None:
            expected, actual, text = bad_row.groups()
            shown = text[:80] + ("..." if len(text) > 80 else "")
            return ShardReadError(
                self.uri,
                f"malformed {kind} row: {actual} fields where the "
                f"{'profile header' if self.header is not None else 'header'} has "
                f"{expected} ({where}): {shown!r}",
            )
        detail = first_line(exc, limit=_DETAIL_CHARS)
        if self.fmt.gzip and isinstance(exc, OSError) and not isinstance(exc, pa.ArrowException):
            return ShardReadError(self.uri, f"bad gzip data ({detail})")
        if _is_empty_file(exc):
            return ShardReadError(self.uri, f"empty {kind} file: no header row")
        if "straddling" in detail or "straddles" in detail:
            quote = ", or a quote that is never closed" if self.fmt.kind == "csv" else ""
            return ShardReadError(
                self.uri,
                f"a {kind} row longer than the block size of {self.block_size:,} bytes"
                f"{quote} ({where})",
            )
        return ShardReadError(self.uri, f"not a readable {kind} file ({detail}; {where})")

    def close(self) -> None:
        return None  # every stream is closed by the call that opened it


def _is_empty_file(exc: BaseException) -> bool:
    return str(exc).startswith("Empty CSV file")


class ShardReader:
    """An open shard (parquet, or CSV/TSV by file name): its row count when known, resolved
    columns, its schema drift against the profile (`drift`; a retyped column is left out of
    `columns`) and a batch stream of the mapped columns only.

    `num_rows` is the row count of a parquet shard (from its footer) and None for a CSV/TSV
    shard, whose rows are known only once it has been read. `block_size` (default
    `CSV_BLOCK_SIZE`) is the bytes parsed at a time in a CSV/TSV shard.
    """

    def __init__(
        self,
        path: str | Path,
        profile: DatasetProfile,
        *,
        block_size: int | None = None,
        max_decoded_bytes: int | None = None,
    ) -> None:
        self.uri = str(path)
        self.max_decoded_bytes = max_decoded_bytes
        if Path(path).is_dir():
            raise ShardReadError(self.uri, "is a directory with no *.parquet files")
        fmt = text_format(path)
        self.format: ShardFormat = "parquet" if fmt is None else fmt.kind
        self._source: _ParquetSource | _TextSource
        if fmt is None:
            self._source = _ParquetSource(self.uri, path)
        else:
            size = CSV_BLOCK_SIZE if block_size is None else block_size
            self._source = _TextSource(self.uri, path, fmt, profile.header, size)
        self.schema: pa.Schema = self._source.schema
        resolved = resolve_columns(self.schema.names, profile)
        self.num_rows: int | None = self._source.num_rows
        names = self.schema.names
        twice = sorted({n for n in resolved.present.values() if names.count(n) > 1})
        if twice:
            self.close()
            raise ShardReadError(self.uri, f"column(s) {twice} appear more than once")
        # Schema drift (schema.py): a retyped column is not read, as if it were missing.
        self.drift, usable = check_schema(
            self.schema, profile, resolved.present, typed=self.format == "parquet"
        )
        absent = tuple(f for f in LOGICAL_FIELDS if f not in usable)
        self.columns = ResolvedColumns(usable, absent)

    def iter_batches(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """Stream only the mapped columns, at most `batch_size` rows per batch; read errors
        become ShardReadError."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        wanted = list(dict.fromkeys(self.columns.present.values()))
        batches = self._source.batches(wanted, batch_size)
        if self.max_decoded_bytes is None:
            return batches
        return self._counted(batches, self.max_decoded_bytes)

    def _counted(self, batches: Iterator[pa.RecordBatch], cap: int) -> Iterator[pa.RecordBatch]:
        """The batches, counting the bytes they decoded to against `cap` (DecodedTooLarge)."""
        decoded = rows = 0
        for batch in batches:
            decoded += batch.nbytes
            rows += batch.num_rows
            if decoded > cap:
                raise DecodedTooLarge(
                    self.uri,
                    f"decoded more than the cap of {cap:,} uncompressed bytes"
                    f" ({decoded:,} bytes by row {rows:,}; a decompression bomb)",
                )
            yield batch

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
