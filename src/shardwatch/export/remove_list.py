"""Remove list: the export's parquet columns and its staged, atomically renamed file.

`output_batch` turns a batch's flagged rows into the columns of `export_schema`;
`RemoveListFile` writes them, staging each shard and renaming the file into place at the end.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardwatch.core.profiles import LogicalField
from shardwatch.export.flag_rules import BatchFlags
from shardwatch.scan.columns import as_text

ROW_GROUP_ROWS: Final = 65_536
ROW_GROUP_BYTES: Final = 64 * 1024 * 1024


def export_schema(with_text: bool) -> pa.Schema:
    """The remove-list's columns. `url`/`text` are UTF-8; where the shard's bytes are not
    valid UTF-8, `url`/`text` hold them decoded with U+FFFD and `url_raw`/`text_raw` the exact
    bytes (null otherwise)."""
    fields = [
        pa.field("shard", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("url_raw", pa.binary()),
        pa.field("reasons", pa.list_(pa.string()), nullable=False),
    ]
    if with_text:
        fields += [pa.field("text", pa.string()), pa.field("text_raw", pa.binary())]
    return pa.schema(fields)


# --------------------------------------------------------------------------- output rows
def output_batch(
    batch: pa.RecordBatch,
    present: Mapping[LogicalField, str],
    flags: BatchFlags,
    rows: npt.NDArray[np.int64],
    offset: int,
    uri: str,
    with_text: bool,
) -> pa.RecordBatch:
    """The remove-list rows for `rows` of `batch` (numbered from `offset` in the shard)."""
    k = len(rows)
    take = pa.array(rows, type=pa.int64())

    def column(logical: LogicalField) -> pa.Array | None:
        name = present.get(logical)
        return None if name is None else batch.column(name).take(take)

    ids = column("id")
    url, url_raw = _text_and_raw(column("url"), k)
    arrays = [
        pa.repeat(pa.scalar(uri, type=pa.string()), k),
        pa.array(rows + offset, type=pa.int64()),
        _id_strings(ids) if ids is not None else pa.nulls(k, type=pa.string()),
        url,
        url_raw,
        flags.reasons(rows),
    ]
    if with_text:
        arrays += list(_text_and_raw(column("text"), k))
    return pa.RecordBatch.from_arrays(arrays, schema=export_schema(with_text))


def _text_and_raw(arr: pa.Array | None, n: int) -> tuple[pa.Array, pa.Array]:
    """The values as UTF-8 text, and their exact bytes where those are not valid UTF-8."""
    no_raw = pa.nulls(n, type=pa.binary())
    if arr is None or pa.types.is_null(arr.type):
        return pa.nulls(n, type=pa.string()), no_raw
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    kind = arr.type
    if not (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        return as_text(arr).cast(pa.string()), no_raw
    raw = arr.cast(pa.large_binary())
    try:
        return raw.cast(pa.large_string()).cast(pa.string()), no_raw  # validates UTF-8
    except pa.ArrowInvalid:
        pass
    texts: list[str | None] = []
    raws: list[bytes | None] = []
    for value in raw.to_pylist():
        try:
            texts.append(None if value is None else value.decode("utf-8"))
            raws.append(None)
        except UnicodeDecodeError:
            texts.append(value.decode("utf-8", "replace"))
            raws.append(value)
    return pa.array(texts, type=pa.string()), pa.array(raws, type=pa.binary())


_INT_SAFE: Final = 2.0**63


def _id_strings(arr: pa.Array) -> pa.Array:
    """Ids as strings: integers (and integral floats) in decimal, other floats in their
    shortest form; a null or non-finite id is null."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    kind = arr.type
    if pa.types.is_null(kind):
        return pa.nulls(len(arr), type=pa.string())
    if pa.types.is_floating(kind):
        values = np.asarray(
            pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
        finite = np.isfinite(values)
        whole = np.zeros(len(values), dtype=bool)
        np.equal(values, np.floor(values), out=whole, where=finite)
        whole &= np.abs(np.where(finite, values, 0.0)) < _INT_SAFE
        ints = pa.array(np.where(whole, values, 0.0).astype(np.int64)).cast(pa.string())
        text = pc.if_else(pa.array(whole), ints, pc.cast(arr, pa.string()))
        return pc.if_else(pa.array(finite), text, pa.scalar(None, type=pa.string()))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return arr.cast(pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return as_text(arr).cast(pa.string())
    try:
        return pc.cast(arr, pa.string())
    except pa.ArrowNotImplementedError:
        return pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string())


# --------------------------------------------------------------------------------- writer
class RemoveListFile:
    """The output file: written as `.<name>.*.part` beside `out` and renamed onto it when
    complete. A shard's rows are staged in an Arrow IPC file and copied over only when the
    whole shard was read; row groups are cut at ROW_GROUP_ROWS rows or ROW_GROUP_BYTES."""

    def __init__(self, out: Path, schema: pa.Schema, metadata: Mapping[str, str]) -> None:
        self.out, self.schema = out, schema.with_metadata(dict(metadata))
        base = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}"
        self.tmp = base.with_name(base.name + ".part")
        self.staging = base.with_name(base.name + ".stage")
        self.writer: pq.ParquetWriter | None = None
        self.stage_writer: pa.ipc.RecordBatchStreamWriter | None = None
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = self.pending_bytes = 0
        try:
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    def begin_shard(self) -> None:
        self.stage_writer = pa.ipc.new_stream(str(self.staging), self.schema)

    def stage(self, batch: pa.RecordBatch) -> None:
        assert self.stage_writer is not None
        self.stage_writer.write_batch(batch)

    def abort_shard(self) -> None:
        if self.stage_writer is not None:
            self.stage_writer.close()
            self.stage_writer = None
        self.staging.unlink(missing_ok=True)

    def commit_shard(self) -> tuple[int, Counter[str]]:
        """Copy the staged rows into the file; their number and the tally of their reasons."""
        assert self.stage_writer is not None
        self.stage_writer.close()
        self.stage_writer = None
        rows, tally = 0, Counter[str]()
        with pa.OSFile(str(self.staging), "rb") as source:
            for batch in pa.ipc.open_stream(source):
                rows += batch.num_rows
                counts = pc.value_counts(pc.list_flatten(batch.column("reasons")))
                tally.update({c["values"]: c["counts"] for c in counts.to_pylist()})
                self.pending.append(batch)
                self.pending_rows += batch.num_rows
                self.pending_bytes += batch.nbytes
                if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
                    self._flush()
        self.staging.unlink()
        return rows, tally

    def _flush(self) -> None:
        assert self.writer is not None
        if self.pending:
            table = pa.Table.from_batches(self.pending, schema=self.schema)
            self.writer.write_table(table, row_group_size=max(1, table.num_rows))
            self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def finish(self, metadata: Mapping[str, str]) -> None:
        """Write the last row group and `metadata`, sync, and rename onto `out`."""
        assert self.writer is not None
        self._flush()
        self.writer.add_key_value_metadata(dict(metadata))
        self.writer.close()
        self.writer = None
        with self.tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.out)

    def discard(self) -> None:
        """Remove every temporary file (after an error or an interrupt)."""
        self.abort_shard()
        if self.writer is not None:
            with suppress(Exception):
                self.writer.close()
            self.writer = None
        self.tmp.unlink(missing_ok=True)
