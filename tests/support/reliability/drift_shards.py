"""Shards of the schema-drift scenario (issue 8, scenario 2): one clean LAION-400M-like
shard whose values pass every check of expectations/laion400m.json and every built-in
alert rule, and its variants with one change each: a renamed, missing, retyped or extra
column (schema drift), or bad values under the right columns (a data failure)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROWS = 200


def clean_table(seed: int, rows: int = ROWS) -> pa.Table:
    """Unique ids, http(s) links, benign captions (no keyword, no watched term), tag
    UNLIKELY, similarity 0.30-0.79 and positive sizes: nothing to flag."""
    base = seed * 100_000
    return pa.table(
        {
            "SAMPLE_ID": pa.array(range(base, base + rows), pa.int64()),
            "URL": [f"https://img{seed}.example.org/{i}.jpg" for i in range(rows)],
            "TEXT": [f"a blue car on a quiet road, picture {i}" for i in range(rows)],
            "HEIGHT": pa.array([480.0] * rows),
            "WIDTH": pa.array([640.0] * rows),
            "LICENSE": ["?"] * rows,
            "NSFW": ["UNLIKELY"] * rows,
            "similarity": pa.array([0.30 + (i % 50) / 100 for i in range(rows)]),
        }
    )


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def renamed(t: pa.Table) -> pa.Table:
    return t.rename_columns(["simlarity" if n == "similarity" else n for n in t.column_names])


def missing(t: pa.Table) -> pa.Table:
    return t.drop_columns(["similarity"])


def retyped(t: pa.Table) -> pa.Table:
    """similarity as text ("0.35": the old reader parsed it silently) and the label tag
    NSFW as an integer (the old reader counted every row as tag `other`)."""
    t = _replace(t, "similarity", pc.cast(t.column("similarity"), pa.string()))
    return _replace(t, "NSFW", pa.array([0] * t.num_rows, pa.int64()))


def extra(t: pa.Table) -> pa.Table:
    return t.append_column("caption_lang", pa.array(["en"] * t.num_rows))


def bad_values(t: pa.Table) -> pa.Table:
    """Right columns, wrong values: every WIDTH is 0 (the image-size check wants > 0; no
    alert rule but `validation` looks at sizes, so the failure causes exactly one alert)."""
    return _replace(t, "WIDTH", pa.array([0.0] * t.num_rows))


# name -> (variant, the drift summary it must get; None: no drift)
CASES: dict[str, tuple[Callable[[pa.Table], pa.Table], str | None]] = {
    "renamed": (renamed, "missing: similarity; unexpected: simlarity"),
    "missing": (missing, "missing: similarity"),
    "retyped": (
        retyped,
        "retyped: NSFW as int64 (expected text), similarity as string (expected a number)",
    ),
    "extra": (extra, "unexpected: caption_lang"),
    "data-failure": (bad_values, None),
}
DRIFTED = tuple(name for name, (_, drift) in CASES.items() if drift is not None)


def write_case_shards(folder: Path) -> dict[str, Path]:
    """A clean shard (`good`), then the cases, one file each."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"good": clean_table(1)}
    for i, (name, (variant, _)) in enumerate(CASES.items()):
        tables[name] = variant(clean_table(10 + i))
    paths = {}
    for i, (name, table) in enumerate(tables.items()):
        paths[name] = folder / f"part-{i:02d}-{name}.parquet"
        pq.write_table(table, paths[name])
    return paths
