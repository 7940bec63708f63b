"""Blocklists: one published remove-list compiled into fixed-size keys, matched per row.

`compile_blocklist` reads a list (blocklist_read.py: text, CSV or parquet, one entry a line or
row) into the sorted 16-byte ids of its distinct entries (digests.KeySet; 10M entries take
about 224 MB). `CompiledBlocklist.match` tells, for one batch, which rows match and which
entries they matched, vectorised: a URL is hashed once (SHA-256 in polars), an id is
canonicalised and hashed, and a domain list is checked once per distinct URL authority of the
batch (its host and each parent domain at a label boundary).

Entry identity is the core's (core/blocklist.py `entry_id`):
- `url` and `url_sha256`: the first 16 bytes of SHA-256(URL UTF-8 bytes), so a URL entry and
  its hash are the same entry. A row's URL is hashed exactly as stored: a string column's
  UTF-8 bytes, a binary column's raw bytes (never decoded with replacement characters); an
  entry's surrounding whitespace is ignored.
- `id`: the id's text, integral numbers as decimal digits (`123`, `123.0`, `+0123` are `123`),
  on both sides: an integer id column, a float one (integral floats exactly, however large:
  1e19 is `10000000000000000000`), or a text one (text in the same form, so `"0123"`
  matches the entry `123`).
- `domain`: the host in `scan.domains.host_of`'s form (lower-case ASCII, IDN as punycode,
  userinfo, port and trailing dot stripped). A row matches when its host equals an entry or
  ends with `.` + an entry: `a.example.org` matches `example.org`; `notexample.org` and
  `example.org.evil.test` do not. An IP literal matches only itself.
A null URL or id (and a NaN id) matches nothing. A row counts once however many entries it
matches; `BlockMatch.positions` holds every entry matched (as positions in the list's keys;
`BlockMatch.entries` gives their ids).

Nothing here prints or logs an entry: errors name the list and a line or row number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast, get_args

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shardwatch.core.blocklist import (
    BLOCKLIST_KINDS,
    ENTRY_ID_BYTES,
    BlocklistKind,
    BlocklistSeverity,
)
from shardwatch.core.profiles import LogicalField
from shardwatch.core.schema import fits
from shardwatch.scan.blocklist_lines import open_list
from shardwatch.scan.blocklist_read import (
    DOMAIN_PREFIX,
    ID_PREFIX,
    ListProblem,
    id_texts,
    read_list,
)
from shardwatch.scan.columns import as_text
from shardwatch.scan.digests import KeyPairs, KeySet, keys_of_ids, sha256_keys
from shardwatch.scan.domains import AUTHORITY_PATTERN, INVALID_HOST, NO_HOST, host_of, is_ip_literal
from shardwatch.scan.fingerprint import HashingReader

_AUTHORITY_CACHE: Final = 200_000
_SEVERITIES: Final = get_args(BlocklistSeverity)


class BlocklistError(ValueError):
    """A list that cannot be used. The message names the list (`blocklist 'x': <problem>`),
    and a line or row number where one is at fault, never an entry."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"blocklist {name!r}: {problem}")
        self.name = name


def _no_positions() -> npt.NDArray[np.int64]:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class BlockMatch:
    """One batch against one list: per row, whether it matches; the entries matched, as
    positions in the list's keys (`keys`; unordered, and an entry several rows match may
    repeat). Positions, not Python objects: the engine reduces a shard's batches to its
    distinct entries once, with numpy (engine.py)."""

    rows: npt.NDArray[np.bool_]
    positions: npt.NDArray[np.int64] = field(default_factory=_no_positions)
    keys: KeySet | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.rows))

    @property
    def entries(self) -> frozenset[bytes]:
        """The ids of the entries matched."""
        if self.keys is None or len(self.positions) == 0:
            return frozenset()
        return self.keys.entry_ids(self.positions)


@dataclass(frozen=True, eq=False)
class CompiledBlocklist:
    """One list, compiled: immutable apart from a bounded per-authority cache (domain lists),
    and safe to share across threads."""

    name: str
    kind: BlocklistKind
    version: str  # SHA-256 hex of the list file's bytes
    severity: BlocklistSeverity
    keys: KeySet = field(repr=False)

    def __post_init__(self) -> None:
        # Per URL authority, the entries its host matches (domain lists): not a field, so
        # no repr or comparison of the list ever shows a host.
        object.__setattr__(self, "_hosts", {})

    @property
    def _host_cache(self) -> dict[str, tuple[int, ...]]:
        hosts: dict[str, tuple[int, ...]] = self.__dict__["_hosts"]
        return hosts

    @property
    def entries(self) -> int:
        """Distinct entries."""
        return len(self.keys)

    @property
    def needs(self) -> LogicalField:
        """The logical column the list is matched against: `url` or `id`."""
        return "id" if self.kind == "id" else "url"

    def match(self, url: pa.Array | None, ids: pa.Array | None) -> BlockMatch:
        """Which rows of one batch match (its URL column for url, url_sha256 and domain lists,
        its id column for id lists; the other may be None). Without the column the list
        needs, no row matches."""
        source = ids if self.kind == "id" else url
        if source is None:
            other = url if source is ids else ids
            if other is None:
                raise ValueError("match needs the batch's URL or id column")
            return BlockMatch(np.zeros(len(other), dtype=np.bool_))
        if self.kind == "domain":
            return self._match_domains(source)
        return self.match_hashed(row_keys(self.kind, source))

    def match_hashed(self, hashed: RowKeys) -> BlockMatch:
        """`match` given the rows' keys (`row_keys` of this list's kind): lists of one kind
        share them, so a batch's URLs are hashed once however many URL lists there are."""
        keys, nulls = hashed
        found = self.keys.positions(keys)
        if nulls is not None:  # a null was hashed as "": it matches nothing
            found[nulls] = -1
        return BlockMatch(found >= 0, found[found >= 0], self.keys)

    def _match_domains(self, url: pa.Array) -> BlockMatch:
        extracted = pc.extract_regex(as_text(url), pattern=AUTHORITY_PATTERN)
        encoded = pc.struct_field(extracted, "authority").dictionary_encode()
        authorities: list[str] = encoded.dictionary.to_pylist()
        matched = self._authority_matches(authorities)
        hit = np.array([bool(m) for m in matched] + [False], dtype=np.bool_)
        indices = encoded.indices.fill_null(len(authorities))
        rows = hit[np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
        present = np.unique(np.asarray(encoded.indices.drop_null().to_numpy(), dtype=np.int64))
        positions = [p for i in present.tolist() for p in matched[i]]
        return BlockMatch(rows, np.array(positions, dtype=np.int64), self.keys)

    def _authority_matches(self, authorities: list[str]) -> list[tuple[int, ...]]:
        """Per authority, the positions of the entries its host matches (cached)."""
        out: list[tuple[int, ...] | None] = [self._host_cache.get(a) for a in authorities]
        todo = [i for i, found in enumerate(out) if found is None]
        owners: list[int] = []
        candidates: list[str] = []
        for i in todo:
            for suffix in _domain_candidates(host_of(authorities[i])):
                owners.append(i)
                candidates.append(suffix)
        positions = self.keys.positions(
            sha256_keys(pa.array(candidates, pa.large_string()), DOMAIN_PREFIX)
        )
        found_by: dict[int, list[int]] = {i: [] for i in todo}
        for owner, position in zip(owners, positions.tolist(), strict=True):
            if position >= 0:
                found_by[owner].append(position)
        if len(self._host_cache) + len(todo) > _AUTHORITY_CACHE:
            self._host_cache.clear()
        for i in todo:
            out[i] = self._host_cache[authorities[i]] = tuple(found_by[i])
        return [found if found is not None else () for found in out]


RowKeys = tuple[KeyPairs, npt.NDArray[np.bool_] | None]  # per row: key; null rows (or None)


def row_keys(kind: BlocklistKind, column: pa.Array) -> RowKeys:
    """Per row of a batch's URL column (`url`, `url_sha256`) or id column (`id`), the key it
    is looked up by, and which rows are null (None: none)."""
    if kind == "domain":
        raise ValueError("a domain list is matched per host, not per row key")
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    nulls = None
    if column.null_count:
        nulls = ~np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    if kind == "id":
        texts = id_texts(column)
        if texts.null_count:  # NaN and infinite ids too
            nulls = ~np.asarray(texts.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
        return sha256_keys(texts, ID_PREFIX), nulls
    return _url_keys(column), nulls


def _url_keys(urls: pa.Array) -> KeyPairs:
    """Per row, the key of SHA-256(the URL's bytes): a string column's UTF-8 bytes, a binary
    column's raw bytes (no U+FFFD replacement: distinct raw URLs stay distinct)."""
    if not fits("text", urls.type) or pa.types.is_null(urls.type):
        return sha256_keys(as_text(urls))
    try:
        return sha256_keys(urls.cast(pa.large_string()))  # valid UTF-8: the same bytes
    except pa.ArrowInvalid:  # binary, not UTF-8: hash the raw bytes (a rare batch)
        raw = urls.cast(pa.large_binary()).to_pylist()
        return keys_of_ids([hashlib.sha256(v or b"").digest()[:ENTRY_ID_BYTES] for v in raw])


def _domain_candidates(host: str) -> list[str]:
    """The host and each parent domain at a label boundary (an IP literal: itself only)."""
    if host in (NO_HOST, INVALID_HOST):
        return []
    if is_ip_literal(host):
        return [host]
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels)) if labels[i]]


def list_version(name: str, path: Path) -> str:
    """SHA-256 hex of a list file's bytes (a regular file only; raises BlocklistError)."""
    try:
        with open_list(path) as raw:
            return HashingReader(raw).drain()
    except ListProblem as exc:
        raise BlocklistError(name, str(exc)) from None
    except OSError as exc:
        raise BlocklistError(
            name, f"cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None


def compile_blocklist(
    name: str,
    kind: str,
    source_path: Path,
    severity: str = "critical",
) -> CompiledBlocklist:
    """Read and compile one list (raises BlocklistError naming the list)."""
    if kind not in BLOCKLIST_KINDS:
        raise BlocklistError(name, f"unknown kind (one of {', '.join(BLOCKLIST_KINDS)})")
    if severity not in _SEVERITIES:
        raise BlocklistError(name, f"unknown severity (one of {', '.join(_SEVERITIES)})")
    try:
        pairs, version = read_list(cast(BlocklistKind, kind), source_path)
    except ListProblem as exc:
        raise BlocklistError(name, str(exc)) from None
    keys = KeySet(pairs)
    del pairs
    return CompiledBlocklist(
        name, cast(BlocklistKind, kind), version, cast(BlocklistSeverity, severity), keys
    )
