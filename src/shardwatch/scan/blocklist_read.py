"""Blocklist files: read a remove-list into 16-byte entry keys, streaming, in chunks.

A list is opened once and must be a regular file (blocklist_lines.py: a FIFO or a device is
refused, never read); its version, the SHA-256 of its bytes, is computed in the same pass.
Formats, chosen by the file name (a `.gz` suffix is gunzipped first, except for parquet):
- `*.parquet`: exactly one column, read in batches of rows; row numbers count from 1.
- `*.csv`: one column (RFC 4180 quoting). The first row that is neither blank nor a comment
  is a header, and skipped, only when it is one of the names in HEADER_NAMES
  (case-insensitive, surrounding whitespace ignored): `url`, `url_sha256`, `sha256`, `hash`,
  `id`, `domain`, `host`, `key`. Any other first row is an entry (a malformed one an error).
- anything else: text, one entry a line.
Text and CSV: UTF-8, a byte-order mark at the start ignored; lines end with `\n`, `\r\n` or
`\r`; a line is at most MAX_ENTRY_BYTES long. In every format an entry's surrounding
whitespace is ignored, and blank entries (and nulls) and entries starting with `#`
(comments) are skipped. `#` starts a comment only at the start of an entry: a URL may hold
one. Duplicates count once. A list with no entries is an error (an empty download or a
truncated file would otherwise check nothing), and so is one of more than MAX_ENTRIES.

Id entries: integral numbers are canonicalised to their decimal digits (`+007`, `7.0` and
the float 7.0 are `7`; a float is converted exactly, so 1e19 is `10000000000000000000`);
any other text is kept as is.

Errors (`ListProblem`) give the line or row number and the problem, never the entry.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final, cast

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardwatch.core.blocklist import BlocklistKind
from shardwatch.core.schema import fits
from shardwatch.scan.blocklist_lines import (
    MAX_ENTRY_BYTES,
    ListProblem,
    csv_lines,
    line_blocks,
    open_list,
    too_long,
)
from shardwatch.scan.columns import as_text
from shardwatch.scan.digests import (
    HEX_DIGEST_PATTERN,
    KeyPairs,
    hex_keys,
    hex_matrix,
    is_hex,
    keys_of_hex,
    no_keys,
    sha256_keys,
)
from shardwatch.scan.domains import INVALID_HOST, NO_HOST, host_of
from shardwatch.scan.fingerprint import HashingReader

CHUNK: Final = 1 << 18  # CSV lines or parquet rows per chunk
MAX_ENTRIES: Final = 50_000_000  # entries of one list, duplicates included (memory budget)
HEADER_NAMES: Final = frozenset(
    {"url", "url_sha256", "sha256", "hash", "id", "domain", "host", "key"}
)
ID_PREFIX: Final = "id\x00"  # entry_id("id", text): sha256(b"id\0" + text)
DOMAIN_PREFIX: Final = "domain\x00"
_INTEGRAL: Final = r"^[+-]?[0-9]+(?:\.0*)?$"
_MAX_INTEGRAL_FLOAT: Final = 2.0**63
_TYPE_CHARS: Final = 80  # of an Arrow type in an error (a nested type names its fields)
Lines = npt.NDArray[np.int64]
__all__ = ["ListProblem", "read_list"]


def read_list(kind: BlocklistKind, path: Path) -> tuple[KeyPairs, str]:
    """The keys of every entry of the list at `path` (duplicates not yet removed), and the
    SHA-256 hex of the file's bytes: text and CSV are hashed in the pass that parses them,
    so the version always matches the entries; a parquet file through the same open file,
    which must not change meanwhile."""
    name = path.name.lower()
    gzipped = name.endswith(".gz")
    base = name.removesuffix(".gz")
    try:
        with open_list(path) as raw:
            hashing = HashingReader(raw)
            if base.endswith(".parquet"):
                if gzipped:
                    raise ListProblem("a gzipped parquet file is not supported")
                before = os.fstat(raw.fileno())
                version = hashing.drain()
                raw.seek(0)
                keys = _collected(_parquet_keys(kind, raw))
                after = os.fstat(raw.fileno())
                if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
                    raise ListProblem("changed while it was read")
            else:
                source = cast(IO[bytes], gzip.GzipFile(fileobj=hashing) if gzipped else hashing)
                reader = _csv_keys if base.endswith(".csv") else _text_keys
                keys = _collected(reader(kind, source))
                version = hashing.drain()
    except OSError as exc:  # unreadable, or a broken gzip stream
        raise ListProblem(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except EOFError:
        raise ListProblem("cannot be read (the gzip stream is truncated)") from None
    if len(keys) == 0:
        raise ListProblem("has no entries")
    return keys, version


def _collected(parts: Iterator[KeyPairs]) -> KeyPairs:
    """The parts' keys, at most MAX_ENTRIES of them."""
    out: list[KeyPairs] = []
    total = 0
    for part in parts:
        total += len(part)
        if total > MAX_ENTRIES:
            raise ListProblem(f"has more than {MAX_ENTRIES:,} entries")
        out.append(part)
    return np.concatenate(out) if out else no_keys()


def _text_keys(kind: BlocklistKind, raw: IO[bytes]) -> Iterator[KeyPairs]:
    """Blocks of whole lines, split in Arrow (no Python object per line)."""
    for first, block in line_blocks(raw):
        yield _text_block(kind, block, first)


def _text_block(kind: BlocklistKind, data: bytes, first: int) -> KeyPairs:
    """The keys of a block of lines (each ending with `\n`), numbered from `first`."""
    try:
        text = pa.array([data], pa.large_binary()).cast(pa.large_string())
    except pa.ArrowInvalid:
        bad = _first_non_utf8(data.split(b"\n"))
        raise ListProblem(f"line {first + bad}: not UTF-8 text") from None
    parts = pc.split_pattern(text, "\n").flatten()
    lines = parts.slice(0, len(parts) - 1)  # the empty text after the last `\n`
    lengths = pc.binary_length(lines)
    if (pc.max(lengths).as_py() or 0) > MAX_ENTRY_BYTES:
        longer = np.flatnonzero(lengths.to_numpy(zero_copy_only=False) > MAX_ENTRY_BYTES)
        raise too_long(first + int(longer[0]))
    numbers = np.arange(first, first + len(lines))
    return keys_of_entries(kind, lines, numbers, "line")


def _first_non_utf8(lines: list[bytes]) -> int:
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return i
    return 0


def _csv_keys(kind: BlocklistKind, raw: IO[bytes]) -> Iterator[KeyPairs]:
    yield from _csv_rows(kind, csv.reader(csv_lines(raw)))


def _csv_rows(kind: BlocklistKind, reader: Any) -> Iterator[KeyPairs]:
    """A CSV's entries. Blank rows and comment rows (`#` first) are skipped; the first other
    row is a header, and skipped, only when it is one of HEADER_NAMES (case-insensitive):
    any other first row is an entry, checked like the rest."""
    values: list[str] = []
    numbers: list[int] = []
    header_checked = False
    try:
        for row in reader:
            first = row[0].strip() if row else ""
            if (not first and len(row) <= 1) or first.startswith("#"):
                continue
            if len(row) != 1:
                raise ListProblem(f"line {reader.line_num}: {len(row)} columns, not 1")
            if not header_checked:
                header_checked = True
                if first.lower() in HEADER_NAMES:
                    continue
            values.append(row[0])
            numbers.append(reader.line_num)
            if len(values) >= CHUNK:
                yield _csv_chunk(kind, values, numbers)
                values, numbers = [], []
    except csv.Error:
        raise ListProblem(f"line {reader.line_num}: not valid CSV") from None
    if values:
        yield _csv_chunk(kind, values, numbers)


def _csv_chunk(kind: BlocklistKind, values: list[str], numbers: list[int]) -> KeyPairs:
    return keys_of_entries(kind, pa.array(values, pa.large_string()), np.array(numbers), "line")


def _parquet_keys(kind: BlocklistKind, raw: IO[bytes]) -> Iterator[KeyPairs]:
    try:
        shard = pq.ParquetFile(raw)
    except (pa.ArrowException, ValueError):
        raise ListProblem("cannot be read as parquet") from None
    with shard:
        fields = shard.schema_arrow
        if len(fields) != 1:
            raise ListProblem(f"has {len(fields)} columns, not 1")
        source = fields.field(0).type
        found = str(source)[:_TYPE_CHARS]
        if kind == "id":
            if not fits("id", source):
                raise ListProblem(
                    f"an id list's column must be integers, floats or text, not {found}"
                )
        elif not fits("text", source):
            raise ListProblem(f"a {kind} list's column must be text, not {found}")
        first = 1
        try:
            for batch in shard.iter_batches(batch_size=CHUNK):
                column = batch.column(0)
                values = id_texts(column) if kind == "id" else as_text(column)
                numbers = np.arange(first, first + len(column))
                yield keys_of_entries(kind, values, numbers, "row")
                first += len(column)
        except (pa.ArrowException, ValueError) as exc:
            if isinstance(exc, ListProblem):
                raise
            raise ListProblem(f"cannot be read as parquet (after row {first - 1})") from None


def keys_of_entries(kind: BlocklistKind, values: pa.Array, numbers: Lines, unit: str) -> KeyPairs:
    """The keys of a chunk of entries (text, nulls allowed); `numbers` gives each one's line
    or row number for errors."""
    values = values.cast(pa.large_string())
    if kind == "url_sha256":
        exact, values, numbers = _exact_digests(values, numbers)
        if len(values) == 0:
            return exact
        return np.concatenate([exact, _keys_of_stripped(kind, values, numbers, unit)])
    return _keys_of_stripped(kind, values, numbers, unit)


def _exact_digests(values: pa.Array, numbers: Lines) -> tuple[KeyPairs, pa.Array, Lines]:
    """The keys of the entries that are exactly 64 hex digits (the bulk of a hash list),
    decoded in numpy; and the other entries (comments, blanks, padding, errors), with their
    numbers, for the general path."""
    lengths = pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    exact = lengths == 64
    matrix = hex_matrix(values.filter(pa.array(exact)))
    digits = is_hex(matrix)
    plain = np.zeros(len(values), dtype=np.bool_)
    plain[np.flatnonzero(exact)[digits]] = True
    rest = ~plain
    return keys_of_hex(matrix[digits]), values.filter(pa.array(rest)), numbers[rest]


def _keys_of_stripped(kind: BlocklistKind, values: pa.Array, numbers: Lines, unit: str) -> KeyPairs:
    frame = pl.DataFrame({"v": pl.Series("v", values)})
    stripped = frame.select(pl.col("v").str.strip_chars()).to_series()
    keep = (
        stripped.is_not_null() & (stripped.str.len_bytes() > 0) & ~stripped.str.starts_with("#")
    ).to_numpy()
    entries = stripped.filter(pl.Series(keep))
    where = numbers[keep]
    if len(entries) == 0:
        return no_keys()
    if kind == "url_sha256":
        valid = entries.str.contains(HEX_DIGEST_PATTERN).to_numpy()
        if not valid.all():
            bad = int(where[~valid][0])
            raise ListProblem(f"{unit} {bad}: not a SHA-256 hex digest (64 hex characters)")
        return hex_keys(entries.to_arrow())
    if kind == "url":
        return sha256_keys(entries.to_arrow())
    if kind == "id":
        return sha256_keys(canonical_ids(entries).to_arrow(), ID_PREFIX)
    hosts: list[str] = []
    for i, entry in enumerate(entries.to_list()):
        host = entry_host(entry)
        if host is None:
            raise ListProblem(f"{unit} {int(where[i])}: not a host name")
        hosts.append(host)
    return sha256_keys(pa.array(hosts, pa.large_string()), DOMAIN_PREFIX)


def entry_host(entry: str) -> str | None:
    """A domain entry's canonical host (`host_of`'s rule), or None when it is no bare host.
    A leading `*.` or `.` (wildcard, squid and hosts-file style) is dropped: subdomains
    match anyway."""
    if "/" in entry or "@" in entry or entry.startswith(("http:", "https:")):
        return None
    bare = entry[2:] if entry.startswith("*.") else entry[1:] if entry.startswith(".") else entry
    host = host_of(bare)
    if host in (NO_HOST, INVALID_HOST) or (":" in host and not host.startswith("[")):
        return None
    return host


def canonical_ids(texts: pl.Series) -> pl.Series:
    """Id texts in their one comparable form: an integral number (`+007`, `7.0`, `-0`) as its
    decimal digits (`7`, `7`, `0`); any other text as is."""
    frame = pl.DataFrame({"v": texts})
    digits = (
        pl.col("v")
        .str.replace(r"\.0*$", "")
        .str.replace(r"^\+", "")
        .str.replace(r"^(-?)0+([0-9])", "${1}${2}")
    )
    digits = pl.when(digits == "-0").then(pl.lit("0")).otherwise(digits)
    integral = pl.col("v").str.contains(_INTEGRAL)
    return frame.select(
        pl.when(integral).then(digits).otherwise(pl.col("v")).alias("v")
    ).to_series()


def id_texts(ids: pa.Array) -> pa.Array:
    """Per row, the id's text as entries are compared (null where it matches nothing):
    integers and integral floats as decimal digits (exactly, however large), other finite
    floats as polars prints them, NaN and infinities null, text in `canonical_ids`'s form."""
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if pa.types.is_integer(ids.type):
        return pl.Series("v", ids).cast(pl.String).to_arrow().cast(pa.large_string())
    if pa.types.is_floating(ids.type):
        return _float_texts(ids.cast(pa.float64()))
    return canonical_ids(pl.Series("v", as_text(ids))).to_arrow().cast(pa.large_string())


def _float_texts(floats: pa.Array) -> pa.Array:
    frame = pl.DataFrame({"v": pl.Series("v", floats)})
    v = pl.col("v")
    integral = v.is_finite() & (v.floor() == v) & (v.abs() < _MAX_INTEGRAL_FLOAT)
    texts = (
        pl.when(integral)
        .then(v.cast(pl.Int64, strict=False).cast(pl.String))
        .when(v.is_finite())
        .then(v.cast(pl.String))
        .otherwise(pl.lit(None, pl.String))
    )
    out = frame.select(texts.alias("v")).to_series().to_arrow().cast(pa.large_string())
    values = np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        big = np.isfinite(values) & (np.abs(values) >= _MAX_INTEGRAL_FLOAT)
    if not big.any():
        return out
    # Beyond int64 (every such float is integral): Python's exact int, not `1e19`.
    exact = pa.array([str(int(x)) for x in values[big].tolist()], pa.large_string())
    return pc.replace_with_mask(out, pa.array(big), exact)
