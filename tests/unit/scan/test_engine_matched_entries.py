"""A shard whose batches match many entries: the engine reduces the batches' matches once per
shard (engine.MatchedEntries), and the result holds exactly the distinct entries the
plain-Python reference finds, whatever the batch size and the number of workers."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest
from support.blocklist_reference import expected, sha
from support.builders import laion_schema, rows_to_table

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.blocklists import CompiledBlocklist, compile_blocklist
from shardwatch.scan.engine import scan_batches

pytestmark = pytest.mark.unit

ROWS = 6000
HOSTS = [f"h{i}.example" for i in range(40)]


def shard_rows(seed: int) -> list[dict[str, object]]:
    """Ids and URLs drawn with many repeats, so batches match the same entries again."""
    rnd = random.Random(seed)
    out: list[dict[str, object]] = []
    for _ in range(ROWS):
        sample = rnd.randrange(4000)
        url = f"https://{rnd.choice(HOSTS)}/{rnd.randrange(3000)}.jpg"
        out.append(
            {
                "SAMPLE_ID": None if rnd.random() < 0.02 else sample,
                "URL": None if rnd.random() < 0.02 else url,
                "TEXT": "a photo",
                "HEIGHT": 64.0,
                "WIDTH": 64.0,
                "LICENSE": "?",
                "NSFW": "UNLIKELY",
                "similarity": 0.3,
            }
        )
    return out


def list_lines(seed: int) -> dict[str, tuple[str, list[str]]]:
    """Lists most rows match, each with entries no row holds."""
    rnd = random.Random(seed)
    urls = [f"https://{h}/{i}.jpg" for h in HOSTS[:30] for i in rnd.sample(range(3000), 900)]
    return {
        "ids": ("id", [str(i) for i in range(0, 5000, 1)] + ["absent"]),
        "hashes": ("url_sha256", [sha(u) for u in urls] + [sha("https://absent.test/")]),
        "domains": ("domain", [*HOSTS[:25], "absent.test"]),
    }


def compiled(folder: Path, lists: dict[str, tuple[str, list[str]]]) -> list[CompiledBlocklist]:
    out = []
    for name, (kind, lines) in lists.items():
        path = folder / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        out.append(compile_blocklist(name, kind, path))
    return out


def scan(table: pa.Table, lists: list[CompiledBlocklist], batch: int, workers: int) -> ShardMetrics:
    return scan_batches(
        table.to_batches(max_chunksize=batch),
        table.schema,
        LAION400M,
        BIRHANE2021,
        blocklists=lists,
        workers=workers,
    )


@pytest.mark.parametrize(("batch", "workers"), [(ROWS, 1), (97, 1), (500, 2), (1000, 3)])
def test_a_shard_holds_exactly_the_distinct_entries_its_batches_match(
    tmp_path: Path, batch: int, workers: int
) -> None:
    table = rows_to_table(shard_rows(7), laion_schema(int_ids=True))
    lists = list_lines(11)
    metrics = scan(table, compiled(tmp_path, lists), batch, workers)
    urls = table.column("URL").to_pylist()
    ids = table.column("SAMPLE_ID").to_pylist()
    assert metrics.blocklists is not None
    for name, (kind, lines) in lists.items():
        rows, matched = expected(kind, lines, urls, ids)
        stats = metrics.blocklists[name]
        assert len(matched) >= (25 if kind == "domain" else 1000), name  # many entries
        assert sum(rows) > ROWS // 5, name
        assert (stats.rows, stats.matched, stats.matched_entries) == (
            sum(rows),
            matched,
            len(matched),
        ), name
        assert all(isinstance(e, bytes) and len(e) == 16 for e in stats.matched)


def test_merged_shards_count_an_entry_once(tmp_path: Path) -> None:
    """Two shards matching overlapping entries: the dataset's merge is their distinct union."""
    lists = list_lines(3)
    blocklists = compiled(tmp_path, lists)
    tables = [rows_to_table(shard_rows(seed), laion_schema(int_ids=True)) for seed in (1, 2)]
    merged = ShardMetrics.merge_all([scan(t, blocklists, 700, 2) for t in tables])
    assert merged.blocklists is not None
    for name, (kind, lines) in lists.items():
        want: set[bytes] = set()
        for t in tables:
            urls, ids = t.column("URL").to_pylist(), t.column("SAMPLE_ID").to_pylist()
            want |= expected(kind, lines, urls, ids)[1]
        assert merged.blocklists[name].matched == want, name
        assert merged.blocklists[name].shards == 2
