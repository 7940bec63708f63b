"""Blocklists in the engine: per-shard counts, versions, the feature flags and the export's
row view equal the plain-Python reference, and totals do not depend on the split into
shards and batches."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.blocklist_reference import expected, sha
from support.builders import URLS, laion_schema, rows_to_table

from shardwatch.core.blocklist import BlocklistStats
from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.blocklists import CompiledBlocklist, compile_blocklist
from shardwatch.scan.columns import resolve_columns
from shardwatch.scan.engine import scan_batches, scan_shard
from shardwatch.scan.features import blocklist_column
from shardwatch.scan.lexicon_match import CompiledLexicon
from shardwatch.scan.rows import row_view

pytestmark = pytest.mark.unit

LISTED = "https://blocked.example.net/a.jpg"
ROW_URLS: tuple[str | None, ...] = (
    *URLS,
    LISTED,
    "https://sub.Blocked.Example.NET:443/b.jpg",
    "https://notblocked.example.net/c.jpg",
    "https://blocked.example.net.evil.test/d.jpg",
    "http://user@h.example/e.jpg",
)
LISTS: dict[str, tuple[str, list[str]]] = {
    "hashes": ("url_sha256", ["# hashes", sha(LISTED).upper(), sha(URLS[2] or ""), sha("x")]),
    "urls": ("url", [LISTED, "  " + (URLS[4] or "") + " ", "https://absent.test/"]),
    "domains": ("domain", ["blocked.example.net", "H.EXAMPLE.", "absent.test"]),
    "ids": ("id", ["3", "7.0", "011", "abc"]),
}


@pytest.fixture(scope="module")
def blocklists(tmp_path_factory: pytest.TempPathFactory) -> list[CompiledBlocklist]:
    folder = tmp_path_factory.mktemp("lists")
    out = []
    for name, (kind, lines) in LISTS.items():
        path = folder / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        out.append(compile_blocklist(name, kind, path))
    return out


def reference(table: pa.Table) -> dict[str, tuple[list[bool], set[bytes]]]:
    urls = table.column("URL").to_pylist() if "URL" in table.column_names else None
    ids = table.column("SAMPLE_ID").to_pylist() if "SAMPLE_ID" in table.column_names else None
    return {name: expected(kind, lines, urls, ids) for name, (kind, lines) in LISTS.items()}


def assert_matches_reference(metrics: ShardMetrics, table: pa.Table, shards: int) -> None:
    got = metrics.blocklists
    assert got is not None and list(got) == sorted(LISTS)
    lacking = {"url": "URL", "id": "SAMPLE_ID"}
    for name, (rows, matched) in reference(table).items():
        stats = got[name]
        assert (stats.rows, stats.matched) == (sum(rows), matched), name
        assert stats.kind == LISTS[name][0] and stats.shards == shards
        needs = "id" if stats.kind == "id" else "url"
        missing = lacking[needs] not in table.column_names
        assert (f"blocklists.{name}" in metrics.unavailable) == (missing and shards > 0)


ids = st.one_of(
    st.none(), st.just(math.nan), st.just(-0.0), st.integers(0, 12).map(float), st.just(3.5)
)
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "SAMPLE_ID": ids,
            "URL": st.sampled_from(ROW_URLS),
            "TEXT": st.just("a photo"),
            "HEIGHT": st.just(64.0),
            "WIDTH": st.just(64.0),
            "LICENSE": st.just("?"),
            "NSFW": st.just("UNLIKELY"),
            "similarity": st.just(0.3),
        }
    ),
    max_size=40,
)
url_types = st.sampled_from(
    (pa.string(), pa.large_string(), pa.string_view(), pa.dictionary(pa.int32(), pa.string()))
)
column_sets = st.sampled_from(
    (("SAMPLE_ID", "URL", "TEXT"), ("URL",), ("SAMPLE_ID", "TEXT"), ("TEXT",))
)


def cut(n: int, data: st.DataObject, label: str) -> list[tuple[int, int]]:
    points = data.draw(st.lists(st.integers(0, n), max_size=5), label=label)
    return list(itertools.pairwise([0, *sorted(points), n]))


def scan(
    table: pa.Table, data: st.DataObject, lists: list[CompiledBlocklist], workers: int = 1
) -> ShardMetrics:
    batches: list[pa.RecordBatch] = []
    for start, stop in cut(table.num_rows, data, "batch cuts"):
        piece = table.slice(start, stop - start).combine_chunks()
        batches.extend(piece.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)])
    return scan_batches(
        batches, table.schema, LAION400M, BIRHANE2021, blocklists=lists, workers=workers
    )


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rows=rows_strategy, columns=column_sets, url_type=url_types, data=st.data())
def test_blocklist_totals_do_not_depend_on_the_split(
    blocklists: list[CompiledBlocklist],
    rows: list[dict[str, Any]],
    columns: tuple[str, ...],
    url_type: pa.DataType,
    data: st.DataObject,
) -> None:
    table = rows_to_table(rows, laion_schema(url_type=url_type)).select(list(columns))
    whole = scan(table, data, blocklists, workers=data.draw(st.sampled_from((1, 3))))
    assert_matches_reference(whole, table, shards=1)
    parts = [table.slice(a, b - a) for a, b in cut(table.num_rows, data, "shard cuts")]
    scans = [scan(part, data, blocklists) for part in parts]
    for part, got in zip(parts, scans, strict=True):
        assert_matches_reference(got, part, shards=1)
    merged = ShardMetrics.merge_all(scans)
    assert_matches_reference(merged, table, shards=len(parts))
    versions = {b.name: b.version for b in blocklists}
    assert merged.to_dict()["blocklists"] == {
        name: {**stats, "shards": len(parts), "versions": {versions[name]: len(parts)}}
        for name, stats in whole.to_dict()["blocklists"].items()
    }


def test_a_shard_reports_counts_only_with_the_list_version(
    blocklists: list[CompiledBlocklist], tmp_path: Path
) -> None:
    rows = [{"SAMPLE_ID": float(i % 13), "URL": ROW_URLS[i % len(ROW_URLS)]} for i in range(500)]
    table = pa.table(
        {
            "SAMPLE_ID": pa.array([r["SAMPLE_ID"] for r in rows], pa.float64()),
            "URL": pa.array([r["URL"] for r in rows], pa.string()),
        }
    )
    path = tmp_path / "shard.parquet"
    pq.write_table(table, path, row_group_size=128)
    features: list[pa.RecordBatch] = []
    metrics = scan_shard(
        path,
        LAION400M,
        BIRHANE2021,
        batch_size=97,
        blocklists=blocklists,
        on_features=features.append,
    )
    assert_matches_reference(metrics, table, shards=1)
    out = metrics.to_dict()["blocklists"]
    for b in blocklists:
        assert out[b.name]["versions"] == {b.version: 1} and out[b.name]["entries"] == b.entries
        assert set(out[b.name]) == {
            "kind",
            "entries",
            "rows",
            "matched_entries",
            "shards",
            "versions",
        }
    assert out["hashes"]["rows"] > 0 and out["domains"]["matched_entries"] == 2
    assert all(isinstance(v, int | str | dict) for s in out.values() for v in s.values())
    assert "blocked" not in str(out) and "example" not in str(out)

    flags = pa.Table.from_batches(features)
    view_flags: dict[str, list[bool]] = {b.name: [] for b in blocklists}
    columns = resolve_columns(table.column_names, LAION400M)
    for batch in table.to_batches(max_chunksize=61):
        view = row_view(batch, columns, LAION400M, CompiledLexicon(BIRHANE2021), blocklists)
        for name, rows_hit in view.blocklists.items():
            view_flags[name].extend(rows_hit.tolist())
    for name, (expected_rows, _) in reference(table).items():
        assert flags.column(blocklist_column(name)).to_pylist() == expected_rows
        assert view_flags[name] == expected_rows


def test_a_shard_without_the_column_is_not_checked(
    blocklists: list[CompiledBlocklist], tmp_path: Path
) -> None:
    table = pa.table({"URL": pa.array([ROW_URLS[-5], None], pa.string())})
    features: list[pa.RecordBatch] = []
    metrics = scan_batches(
        table.to_batches(),
        table.schema,
        LAION400M,
        BIRHANE2021,
        blocklists=blocklists,
        on_features=features.append,
    )
    assert metrics.unavailable.count("blocklists.ids") == 1
    assert [n for n in metrics.unavailable if n.startswith("blocklists.")] == ["blocklists.ids"]
    assert metrics.blocklists is not None
    assert metrics.blocklists["ids"] == BlocklistStats(
        kind="id", entries=4, versions={blocklists[-1].version: 1}
    )
    assert metrics.blocklists["urls"].rows == 1
    names = features[0].schema.names
    assert blocklist_column("urls") in names and blocklist_column("ids") not in names
    view = row_view(
        table.to_batches()[0],
        resolve_columns(table.column_names, LAION400M),
        LAION400M,
        CompiledLexicon(BIRHANE2021),
        blocklists,
    )
    assert "ids" not in view.blocklists and np.array_equal(view.blocklists["urls"], [True, False])


def test_without_lists_nothing_changes(tmp_path: Path) -> None:
    table = pa.table({"URL": pa.array(["https://a.test/"], pa.string())})
    metrics = scan_batches(table.to_batches(), table.schema, LAION400M, BIRHANE2021)
    assert metrics.blocklists is None and "blocklists" not in metrics.to_dict()
