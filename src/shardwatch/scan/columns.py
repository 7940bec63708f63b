"""Columns: which logical fields a shard has and under which names, and text as text.

A profile maps each logical field (id, url, text, nsfw_tag, ...) to a column name; a shard's
column is found by that exact name, else by a unique case-insensitive match. String-like
columns are read as large_string, invalid UTF-8 decoded with U+FFFD replacement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from shardwatch.core.profiles import LOGICAL_FIELDS, DatasetProfile, LogicalField


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
