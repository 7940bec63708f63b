"""Digests: the SHA-256 of many strings at once, as 16-byte keys, and a sorted set of keys.

A key is the first 16 bytes of a SHA-256 digest, held as two uint64 (the first and the last
8 bytes, each read big-endian), so a set of 10M keys is 160 MB of numpy arrays plus a bucket
index, never Python objects. Hashing runs in polars (the `polars-hash` plugin, vectorised and
outside the GIL); its hex output is decoded to bytes in numpy.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
from polars_hash import CryptographicHashingNameSpace

from shardwatch.core.blocklist import ENTRY_ID_BYTES

KeyPairs = npt.NDArray[np.uint64]  # shape (n, 2)
HEX_DIGEST_PATTERN: Final = r"^[0-9A-Fa-f]{64}$"


# bytes.translate tables (a C loop over bytes, far cheaper than numpy fancy indexing, which
# widens every index to intp): hex digit -> its value; any byte -> 0 if a hex digit, else 1.
_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"
_NIBBLE: Final = bytes.maketrans(_HEX_DIGITS, bytes([*range(16), *range(10, 16)]))
_NOT_HEX: Final = bytes(0 if c in _HEX_DIGITS else 1 for c in range(256))
_MAX_BUCKET_BITS: Final = 24  # 16M buckets, 64 MB of int32 starts at most


def no_keys() -> KeyPairs:
    return np.zeros((0, 2), dtype=np.uint64)


def hex_matrix(hex_digests: pa.Array) -> npt.NDArray[np.uint8]:
    """A string array of 64-character values (no nulls) as an (n, 64) byte matrix."""
    arr = hex_digests.cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return np.zeros((0, 64), dtype=np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    if arr.null_count or not np.all(np.diff(offsets) == 64):
        raise ValueError("a hex digest is not 64 characters")
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(n, 64)


def is_hex(matrix: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Per row of an (n, 64) byte matrix, whether every byte is a hex digit (either case)."""
    if len(matrix) == 0:
        return np.zeros(0, dtype=np.bool_)
    flags = np.frombuffer(np.ascontiguousarray(matrix).tobytes().translate(_NOT_HEX), np.uint8)
    return np.asarray(~flags.view(np.uint64).reshape(len(matrix), 8).any(axis=1))


def keys_of_hex(matrix: npt.NDArray[np.uint8]) -> KeyPairs:
    """Keys of an (n, 64) matrix of hex digits (checked by the caller)."""
    n = len(matrix)
    if n == 0:
        return no_keys()
    chars = np.ascontiguousarray(matrix[:, : 2 * ENTRY_ID_BYTES]).tobytes()
    nibbles = np.frombuffer(chars.translate(_NIBBLE), np.uint8).reshape(n, 2 * ENTRY_ID_BYTES)
    raw = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return np.ascontiguousarray(raw).view(">u8").astype(np.uint64)


def hex_keys(hex_digests: pa.Array) -> KeyPairs:
    """Keys of a string array of hex digests (64 hex characters each, either case, no nulls;
    the caller has checked them)."""
    return keys_of_hex(hex_matrix(hex_digests))


def sha256_keys(values: pa.Array, prefix: str = "") -> KeyPairs:
    """Keys of SHA-256(prefix + value) of each value's UTF-8 bytes (a string array; a null
    is hashed as the empty string, for the caller to mask)."""
    if len(values) == 0:
        return no_keys()
    frame = pl.DataFrame({"v": pl.Series("v", values.cast(pa.large_string()))})
    column = pl.col("v").fill_null("") if values.null_count else pl.col("v")
    source = pl.lit(prefix) + column if prefix else column
    sha256 = CryptographicHashingNameSpace(source).sha2_256()
    hexed = frame.select(sha256.alias("h")).to_series().to_arrow()
    return hex_keys(hexed)


def key_bytes(hi: int, lo: int) -> bytes:
    """A key's 16 bytes (the core's entry id)."""
    return int(hi).to_bytes(8, "big") + int(lo).to_bytes(8, "big")


def keys_of_ids(ids: list[bytes]) -> KeyPairs:
    """Keys of 16-byte entry ids."""
    if not ids:
        return no_keys()
    raw = np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(len(ids), ENTRY_ID_BYTES)
    return np.ascontiguousarray(raw).view(">u8").astype(np.uint64)


def _sorted_distinct(keys: KeyPairs) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """The distinct keys sorted by (hi, lo), as two arrays. Sorting by `hi` alone (numpy's
    vectorised argsort) orders all but the runs of equal `hi` (duplicates, and rare
    collisions), which are then sorted by (hi, lo) in place: they are contiguous."""
    order = np.argsort(keys[:, 0])
    hi = keys[order, 0]
    lo = keys[order, 1]
    del order
    same = hi[1:] == hi[:-1]
    if same.any():
        in_run = np.zeros(len(hi), dtype=np.bool_)
        in_run[1:] |= same
        in_run[:-1] |= same
        at = np.flatnonzero(in_run)
        sub = np.lexsort((lo[at], hi[at]))
        hi[at], lo[at] = hi[at][sub], lo[at][sub]
        repeat = np.zeros(len(hi), dtype=np.bool_)
        repeat[1:] = same & (lo[1:] == lo[:-1])
        if repeat.any():
            hi, lo = hi[~repeat], lo[~repeat]
    return np.ascontiguousarray(hi, dtype=np.uint64), np.ascontiguousarray(lo, dtype=np.uint64)


class KeySet:
    """A sorted, distinct set of keys with a bucket index on the leading bits: membership of
    a batch of keys costs a few vectorised gathers per key (keys are uniformly distributed,
    so a bucket holds about one key)."""

    def __init__(self, keys: KeyPairs) -> None:
        self.hi, self.lo = _sorted_distinct(keys)
        n = len(self.hi)
        self._bits = int(min(_MAX_BUCKET_BITS, max(1, int(n).bit_length())))
        self._shift = np.uint64(64 - self._bits)
        # The first key of each bucket: bucket b holds the keys with hi >> shift == b.
        bounds = np.arange(1 << self._bits, dtype=np.uint64) << self._shift
        starts = np.empty((1 << self._bits) + 1, dtype=np.int64 if n >= 2**31 else np.int32)
        starts[:-1] = np.searchsorted(self.hi, bounds)
        starts[-1] = n
        self._starts = starts

    def __len__(self) -> int:
        return len(self.hi)

    @property
    def nbytes(self) -> int:
        return int(self.hi.nbytes + self.lo.nbytes + self._starts.nbytes)

    def _bucket(self, hi: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        return (hi >> self._shift).astype(np.intp)

    def positions(self, keys: KeyPairs) -> npt.NDArray[np.int64]:
        """Per key, its position in the set, or -1 when absent."""
        found = np.full(len(keys), -1, dtype=np.int64)
        if len(keys) == 0 or len(self.hi) == 0:
            return found
        hi, lo = keys[:, 0], keys[:, 1]
        bucket = self._bucket(hi)
        start = self._starts[bucket].astype(np.int64)
        count = self._starts[bucket + 1].astype(np.int64) - start
        todo = np.flatnonzero(count > 0)
        step = 0
        while todo.size:
            at = start[todo] + step
            hit = (self.hi[at] == hi[todo]) & (self.lo[at] == lo[todo])
            found[todo[hit]] = at[hit]
            step += 1
            todo = todo[~hit & (count[todo] > step)]
        return found

    def entry_ids(self, positions: npt.NDArray[np.int64]) -> frozenset[bytes]:
        """The 16-byte ids of the keys at `positions` (-1s ignored; repeats allowed)."""
        chosen = np.sort(positions[positions >= 0])  # sort + distinct: numpy's hashed
        if len(chosen) > 1:  # np.unique is several times slower on millions of ints
            chosen = chosen[np.concatenate(([True], chosen[1:] != chosen[:-1]))]
        pairs = np.empty((len(chosen), 2), dtype=">u8")
        pairs[:, 0], pairs[:, 1] = self.hi[chosen], self.lo[chosen]
        # Each key's 16 bytes, big-endian (as key_bytes); a void item's tolist() is its bytes
        # (NULs kept, unlike "S16"), twice as fast as slicing the blob in Python.
        ids: list[bytes] = pairs.view(f"V{ENTRY_ID_BYTES}").ravel().tolist()
        return frozenset(ids)
