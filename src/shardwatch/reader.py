"""Reader: stream a parquet shard's mapped columns as record batches, with bounded memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardwatch.profiles import LOGICAL_FIELDS, DatasetProfile, LogicalField

DEFAULT_BATCH_SIZE = 131_072
# Read pages through a buffered stream instead of whole column chunks, so a shard written as
# one huge row group still streams in bounded memory.
_READ_BUFFER_BYTES = 8 * 1024 * 1024


class ShardReadError(Exception):
    """A shard could not be read; the message names the file and the reason."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason


@dataclass(frozen=True)
class ResolvedColumns:
    """Which logical fields a shard has, and under which column names."""

    present: Mapping[LogicalField, str]
    missing: tuple[LogicalField, ...]

    def has(self, logical: LogicalField) -> bool:
        return logical in self.present


def resolve_columns(names: list[str], profile: DatasetProfile) -> ResolvedColumns:
    """Find each mapped column by exact name, else by a unique case-insensitive match."""
    present: dict[LogicalField, str] = {}
    missing: list[LogicalField] = []
    for logical in LOGICAL_FIELDS:
        wanted = profile.column(logical)
        if wanted is None:
            missing.append(logical)
            continue
        if wanted in names:
            present[logical] = wanted
            continue
        folded = [n for n in names if n.casefold() == wanted.casefold()]
        if len(folded) == 1:
            present[logical] = folded[0]
        else:
            missing.append(logical)
    return ResolvedColumns(present, tuple(missing))


class ShardReader:
    """An open parquet shard: its row count, resolved columns and a batch stream."""

    def __init__(self, path: str | Path, profile: DatasetProfile) -> None:
        self.uri = str(path)
        if Path(path).is_dir():
            raise ShardReadError(self.uri, "is a directory with no *.parquet files")
        try:
            self._file = pq.ParquetFile(
                path, buffer_size=_READ_BUFFER_BYTES, pre_buffer=False, memory_map=False
            )
            schema = self._file.schema_arrow
        except FileNotFoundError:
            raise ShardReadError(self.uri, "no such file") from None
        except PermissionError:
            raise ShardReadError(self.uri, "permission denied") from None
        except (pa.ArrowException, OSError) as exc:
            raise ShardReadError(self.uri, f"not a readable parquet file ({exc})") from None
        self.schema = schema
        self.columns = resolve_columns(schema.names, profile)
        self.num_rows: int = self._file.metadata.num_rows

    def iter_batches(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """Stream only the mapped columns; read errors become ShardReadError."""
        wanted = list(dict.fromkeys(self.columns.present.values()))
        try:
            if not wanted:  # nothing mapped: still count rows, from the metadata
                for start in range(0, self.num_rows, batch_size):
                    n = min(batch_size, self.num_rows - start)
                    yield pa.RecordBatch.from_arrays([pa.nulls(n)], names=["__rows__"])
                return
            yield from self._file.iter_batches(
                batch_size=batch_size, columns=wanted, use_threads=True
            )
        except (pa.ArrowException, OSError) as exc:
            raise ShardReadError(self.uri, f"failed while reading ({exc})") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_text(arr: pa.Array) -> pa.Array:
    """Any string-like column as large_string. Invalid UTF-8 in a binary column is decoded
    with U+FFFD replacement (Python's `errors="replace"`) rather than failing the shard."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        return arr
    try:
        return arr.cast(pa.large_string())
    except pa.ArrowInvalid:
        if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
            raise
        values = [None if v is None else v.decode("utf-8", "replace") for v in arr.to_pylist()]
        return pa.array(values, type=pa.large_string())
