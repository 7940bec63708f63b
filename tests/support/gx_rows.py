"""Feature rows for the GX tests: a clean LAION-400M-like table that passes every default
expectation, built row by row."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa

from shardwatch.core.lexicon import BIRHANE2021
from support.builders import laion_schema, rows_to_table

N = 2000


def clean_rows(n: int = N, seed: int = 5) -> list[dict[str, Any]]:
    """Passes every default expectation: unique ids, http URLs, < 1% NSFW tags, 2% keyword
    rows (the limit is 5%), similarity in [0.3, 1], positive sizes, every term with a low
    keyword rate."""
    rng = random.Random(seed)
    terms = [p.term for p in BIRHANE2021.terms]
    rows = []
    for i in range(n):
        term = terms[i % len(terms)] if i % 4 == 0 else None
        words = ["a", "picture", "of", "a", "garden"]
        if term:
            words.insert(3, term)
        if i % 50 == 1:  # 2% keyword rows, never on a term row
            words.append("adult")
        rows.append({
            "SAMPLE_ID": i,
            "URL": f"https://img.example/{i}.jpg",
            "TEXT": " ".join(words),
            "HEIGHT": float(rng.randint(1, 1000)),
            "WIDTH": float(rng.randint(1, 1000)),
            "LICENSE": "?",
            "NSFW": "NSFW" if i % 250 == 3 else rng.choice(["UNLIKELY", "UNLIKELY", "UNSURE"]),
            "similarity": rng.uniform(0.3, 1.0),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return rows_to_table(rows, laion_schema(int_ids=True))
