"""Digests: hashed keys equal hashlib's, and KeySet membership equals a Python set's, also
when many keys share their first 8 bytes or one bucket."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pyarrow as pa
import pytest

from shardwatch.scan.digests import KeySet, hex_keys, key_bytes, keys_of_ids, sha256_keys

pytestmark = pytest.mark.unit


def test_sha256_keys_are_the_first_16_bytes_of_hashlib_digests() -> None:
    values = ["", "a", "ünïcode ß", "x" * 5000, "https://example.org/?q=1#frag"]
    for prefix in ("", "id\x00", "domain\x00"):
        keys = sha256_keys(pa.array(values), prefix)
        expected = [hashlib.sha256((prefix + v).encode()).digest()[:16] for v in values]
        assert [key_bytes(hi, lo) for hi, lo in keys.tolist()] == expected
    hexed = [hashlib.sha256(v.encode()).hexdigest() for v in values]
    mixed = [h.upper() if i % 2 else h for i, h in enumerate(hexed)]
    assert np.array_equal(hex_keys(pa.array(mixed)), sha256_keys(pa.array(values)))
    assert np.array_equal(hex_keys(pa.array(mixed).slice(2)), sha256_keys(pa.array(values[2:])))


def test_keyset_membership_equals_a_python_set() -> None:
    rng = random.Random(20)
    crowded = [bytes(8) + rng.randbytes(8) for _ in range(40)]  # one bucket, one first half
    near = [bytes([0xFF] * 7) + bytes([i]) + rng.randbytes(8) for i in range(30)]
    spread = [rng.randbytes(16) for _ in range(3000)]
    members = crowded + near + spread
    keyset = KeySet(keys_of_ids(members + members[:500]))  # duplicates count once
    assert len(keyset) == len(set(members))
    queries = members[::3] + [bytes(8) + rng.randbytes(8) for _ in range(50)]
    queries += [rng.randbytes(16) for _ in range(3000)] + [m[:8] + bytes(8) for m in near]
    positions = keyset.positions(keys_of_ids(queries))
    assert [p >= 0 for p in positions.tolist()] == [q in set(members) for q in queries]
    assert keyset.entry_ids(positions) == {q for q in queries if q in set(members)}
    for p, q in zip(positions.tolist(), queries, strict=True):
        if p >= 0:
            assert key_bytes(keyset.hi[p], keyset.lo[p]) == q


def test_entry_ids_keep_every_byte_and_count_a_repeated_position_once() -> None:
    ids = [bytes(16), bytes(15) + b"\x01", b"\x01" + bytes(15), b"\xff" * 16, bytes(range(16))]
    keyset = KeySet(keys_of_ids(ids))
    positions = keyset.positions(keys_of_ids(ids[::-1] + ids + [b"\x02" * 16]))
    assert keyset.entry_ids(positions) == frozenset(ids)  # trailing NULs kept, -1 ignored
    assert keyset.entry_ids(positions[:0]) == frozenset()


def test_an_empty_keyset_matches_nothing() -> None:
    keyset = KeySet(keys_of_ids([]))
    assert len(keyset) == 0
    assert keyset.positions(keys_of_ids([bytes(16)])).tolist() == [-1]
