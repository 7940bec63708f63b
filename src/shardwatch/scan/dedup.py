"""Dedup: count distinct values of one column across a shard in bounded memory.

Values become 128-bit keys: integers (and integral floats) by value, other floats by their
bits, strings by two independent 64-bit hashes (a collision needs ~2^64 distinct strings).
Keys stay in memory up to a budget (1M keys, 16 MB, per column), then spill to
hash-partitioned files, so memory does not grow with shard size. (A 4M budget made a 12.9M-row
scan peak at 840 MB against 567 MB with 1M: each spill sorts and copies the budget's keys.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from shardwatch.scan.columns import as_text

KeyArray = npt.NDArray[np.uint64]  # shape (n, 2)

_TAG_INT = np.uint64(0)
_TAG_FLOAT = np.uint64(1)
_PARTITION_BITS = 6
_MIX = np.uint64(0x9E3779B97F4A7C15)


def keys_of(values: pa.Array) -> KeyArray:
    """128-bit keys of the non-null (and finite, for floats) values of an Arrow array."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        values = as_text(values)
    values = values.drop_null()
    if pa.types.is_integer(values.type):
        wide = pa.uint64() if pa.types.is_unsigned_integer(values.type) else pa.int64()
        ints = np.ascontiguousarray(values.cast(wide).to_numpy()).view(np.uint64)
        return np.column_stack([ints, np.full(len(ints), _TAG_INT)])
    if pa.types.is_floating(values.type):
        floats = values.cast(pa.float64()).to_numpy()
        floats = floats[np.isfinite(floats)]
        integral = (np.floor(floats) == floats) & (np.abs(floats) < 2.0**63)
        first = floats.view(np.uint64).copy()
        first[integral] = floats[integral].astype(np.int64).view(np.uint64)
        tags = np.where(integral, _TAG_INT, _TAG_FLOAT).astype(np.uint64)
        return np.column_stack([first, tags])
    series = pl.Series(values=values)
    h1 = series.hash(0x5EED).to_numpy()
    h2 = series.hash(0xC0FFEE).to_numpy()
    return np.column_stack([h1, h2]).astype(np.uint64)


def _count_distinct(keys: KeyArray) -> int:
    """Distinct 128-bit keys: distinct first halves, corrected where a first half repeats."""
    if len(keys) == 0:
        return 0
    first = pl.Series(keys[:, 0])
    distinct = first.n_unique()
    repeated = first.is_duplicated().to_numpy()
    if repeated.any():
        pairs = pl.DataFrame({"a": keys[repeated, 0], "b": keys[repeated, 1]})
        distinct += pairs.n_unique() - pairs["a"].n_unique()
    return int(distinct)


class DistinctCounter:
    """Counts values and distinct values; `duplicates` is their difference."""

    def __init__(self, memory_budget_keys: int = 1_000_000) -> None:
        self.count = 0
        self._budget = memory_budget_keys
        self._chunks: list[KeyArray] = []
        self._in_memory = 0
        self._spill: tempfile.TemporaryDirectory[str] | None = None

    def add(self, keys: KeyArray) -> None:
        """Add the keys (from `keys_of`) of one batch."""
        self.count += len(keys)
        self._chunks.append(keys)
        self._in_memory += len(keys)
        if self._in_memory > self._budget:
            self._flush()

    def _partition_files(self) -> list[Path]:
        if self._spill is None:
            self._spill = tempfile.TemporaryDirectory(prefix="shardwatch-dedup-")
        return [Path(self._spill.name) / f"p{i:02d}.bin" for i in range(1 << _PARTITION_BITS)]

    def _flush(self) -> None:
        if not self._chunks:
            return
        keys = np.concatenate(self._chunks)
        self._chunks, self._in_memory = [], 0
        part = ((keys[:, 0] ^ keys[:, 1]) * _MIX) >> np.uint64(64 - _PARTITION_BITS)
        order = np.argsort(part, kind="stable")
        keys, part = keys[order], part[order]
        bounds = np.searchsorted(part, np.arange((1 << _PARTITION_BITS) + 1, dtype=np.uint64))
        for i, path in enumerate(self._partition_files()):
            chunk = keys[bounds[i] : bounds[i + 1]]
            if len(chunk):
                with path.open("ab") as fh:
                    chunk.tofile(fh)

    @property
    def duplicates(self) -> int:
        """Values seen minus distinct values seen."""
        if self._spill is None:
            keys = np.concatenate(self._chunks) if self._chunks else np.zeros((0, 2), np.uint64)
            return self.count - _count_distinct(keys)
        self._flush()
        distinct = 0
        for path in self._partition_files():
            if path.exists():
                distinct += _count_distinct(np.fromfile(path, dtype=np.uint64).reshape(-1, 2))
        return self.count - distinct

    def close(self) -> None:
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None
