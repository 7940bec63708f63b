"""Delimited shard files (CSV, TSV, gzipped) written byte for byte, for the reader and profile
tests."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

Value = str | bytes | None


def _field(value: Value, kind: str) -> bytes:
    if value is None:
        return b""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if kind == "tsv":
        assert not any(c in raw for c in (b"\t", b"\n", b"\r")), f"not TSV-safe: {raw!r}"
        return raw
    if any(c in raw for c in (b",", b'"', b"\n", b"\r")):
        return b'"' + raw.replace(b'"', b'""') + b'"'
    return raw


def delimited_bytes(
    rows: Sequence[Sequence[Value]], header: Sequence[str] | None, kind: str
) -> bytes:
    """CSV (RFC 4180 quoting where needed) or TSV (no quoting) bytes; None is an empty field."""
    sep = b"\t" if kind == "tsv" else b","
    lines = [] if header is None else [sep.join(_field(h, kind) for h in header)]
    lines += [sep.join(_field(v, kind) for v in row) for row in rows]
    return b"".join(line + b"\n" for line in lines)


def write_delimited(
    path: Path, rows: Sequence[Sequence[Value]], header: Sequence[str] | None = None
) -> Path:
    """Write `rows` to `path`: TSV if the name says .tsv, gzip if it ends in .gz."""
    name = path.name.lower()
    data = delimited_bytes(rows, header, "tsv" if ".tsv" in name else "csv")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path
