"""Compact feature tables: while a shard is scanned, its feature batches are kept with each
float64 column as float32 and each int64 column as int32 wherever that is lossless, bit for
bit, and widened back (`widen`) for each narrow frame GX validates. So GX sees exactly the
values and types it saw before, and a shard's features take less memory while its scan runs.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

WIDE_KEY: Final = b"shardwatch.wide"  # field metadata: the type a narrowed column had
_NARROW: Final = {pa.float64(): pa.float32(), pa.int64(): pa.int32()}
_WIDE_NAMES: Final = {b"double": pa.float64(), b"int64": pa.int64()}


def _lossless(column: pa.Array, narrow: pa.DataType) -> pa.Array | None:
    """`column` as `narrow` if casting there and back gives every value bit for bit."""
    if pa.types.is_integer(narrow):
        lo, hi = pc.min_max(column).values()
        if lo.is_valid and (lo.as_py() < -(2**31) or hi.as_py() >= 2**31):
            return None
        return column.cast(narrow)
    narrowed = column.cast(narrow, safe=False)
    back = narrowed.cast(column.type)
    same = pc.equal(back, column)  # null where null, on both sides
    if pc.any(pc.invert(pc.fill_null(same, True))).as_py():
        return None
    # -0.0 equals 0.0: float32 keeps the sign too, so equality above is bit equality here
    return narrowed


class FeatureCollector:
    """Collects a shard's feature batches (the scan's `on_features`), compacted."""

    def __init__(self) -> None:
        self.schema: pa.Schema | None = None
        self.batches: list[pa.RecordBatch] = []

    def __call__(self, batch: pa.RecordBatch) -> None:
        self.schema = self.schema or batch.schema
        columns = []
        for field, column in zip(batch.schema, batch.columns, strict=True):
            narrow = _NARROW.get(field.type)
            compact = _lossless(column, narrow) if narrow is not None else None
            columns.append(column if compact is None else compact)
        self.batches.append(pa.RecordBatch.from_arrays(columns, names=batch.schema.names))

    def table(self) -> pa.Table:
        """The collected features as one table (the batches are released): a column keeps
        its narrow type only where every batch could narrow it."""
        if self.schema is None:
            return pa.table({})
        batches, self.batches = self.batches, []
        fields = []
        for i, field in enumerate(self.schema):
            narrow = _NARROW.get(field.type)
            if narrow is not None and all(b.column(i).type == narrow for b in batches):
                meta = {**(field.metadata or {}), WIDE_KEY: str(field.type).encode()}
                fields.append(pa.field(field.name, narrow, field.nullable, meta))
            else:
                fields.append(field)
        schema = pa.schema(fields, metadata=self.schema.metadata)
        return pa.Table.from_batches([_as(b, schema) for b in batches], schema=schema)


def _as(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = [
        c if c.type == f.type else c.cast(f.type)
        for c, f in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def widen(table: pa.Table) -> pa.Table:
    """The table with every compacted column back in its original type (exact)."""
    for i, field in enumerate(table.schema):
        wide = _WIDE_NAMES.get((field.metadata or {}).get(WIDE_KEY, b""))
        if wide is not None:
            meta = {k: v for k, v in (field.metadata or {}).items() if k != WIDE_KEY}
            table = table.set_column(
                i,
                pa.field(field.name, wide, field.nullable, meta or None),
                table.column(i).cast(wide),
            )
    return table
