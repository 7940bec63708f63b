"""Distinct counting: exact by value, equal in memory and when spilled to disk."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from shardwatch.scan.dedup import DistinctCounter, keys_of

pytestmark = pytest.mark.unit


def count_dups(batches: list[pa.Array], budget: int) -> int:
    counter = DistinctCounter(memory_budget_keys=budget)
    try:
        for batch in batches:
            counter.add(keys_of(batch))
        return counter.duplicates
    finally:
        counter.close()


def reference_dups(values: Sequence[object]) -> int:
    present = [v for v in values if v is not None and v == v]  # drop nulls and NaN
    return len(present) - len(set(present))


@pytest.mark.parametrize("budget", [1, 7, 10_000_000])
def test_string_duplicates_in_memory_and_spilled(budget: int) -> None:
    rng = random.Random(5)
    pool = ["a", "b", "B", "é", "", None]
    values = [rng.choice([*pool, f"u{rng.randrange(300)}"]) for _ in range(4000)]
    batches = [pa.array(values[i : i + 333], type=pa.large_string()) for i in range(0, 4000, 333)]
    assert count_dups(batches, budget) == reference_dups(values)


@pytest.mark.parametrize("budget", [3, 10_000_000])
def test_numeric_ids_compare_by_value(budget: int) -> None:
    floats = pa.array([5.0, 5.0, 6.5, float("nan"), None, 2.0**60, -0.0, 0.0], type=pa.float64())
    ints = pa.array([5, 7, 2**60, None, 0], type=pa.int64())
    # 5.0 x2 + 5 -> 2 dups; 2**60 twice -> 1; -0.0, 0.0, 0 -> 2; NaN and nulls ignored.
    values = [*floats.to_pylist(), *ints.to_pylist()]
    expected = reference_dups(values)
    assert expected == 5
    assert count_dups([floats, ints], budget) == expected


def test_unsigned_and_dictionary_values() -> None:
    big = pa.array([2**64 - 1, 2**64 - 1, 3], type=pa.uint64())
    assert count_dups([big], 100) == 1
    dict_arr = pa.array(["x", "y", "x", None]).dictionary_encode()
    assert count_dups([dict_arr], 100) == 1


def test_spilled_counter_removes_its_files() -> None:
    counter = DistinctCounter(memory_budget_keys=2)
    counter.add(keys_of(pa.array(np.arange(100))))
    counter.add(keys_of(pa.array(np.arange(50))))
    assert counter.duplicates == 50
    spill = counter._spill
    assert spill is not None
    counter.close()
    assert not Path(spill.name).exists()
