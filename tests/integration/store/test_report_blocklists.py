"""Blocklist results in the store, on SQLite and PostgreSQL: stored per shard version and
list, read back so that the report's `total.blocklists` equals `ShardMetrics.merge_all` of
the shards' results (matched entries distinct across shards), with the list version each
shard was checked against; a new or reprocessed version replaces its matches."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.store_checks import run_shardwatch

from shardwatch.core.blocklist import BlocklistKind, BlocklistStats, entry_id, merge_blocklists
from shardwatch.core.metrics import ShardMetrics
from shardwatch.store import models as t
from shardwatch.store.errors import ReportError
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

V1, V2, V_IDS = "1" * 64, "2" * 64, "3" * 64  # list versions (content SHA-256 hex)
URLS = [f"https://blocked.example/{i}.jpg" for i in range(6)]
E = [entry_id("url", hashlib.sha256(u.encode()).digest()) for u in URLS]  # entry ids
ID_ENTRY = entry_id("id", b"12345")


def stats(
    kind: BlocklistKind, version: str, entries: int, rows: int, matched: Sequence[bytes] = ()
) -> BlocklistStats:
    """One shard's result against one version of a list."""
    return BlocklistStats(kind, entries, rows, frozenset(matched), {version: 1})


def shard(rows: int, **lists: BlocklistStats) -> ShardMetrics:
    return ShardMetrics(rows=rows, blocklists=dict(lists) if lists else None)


def store_shard(store: ResultStore, dataset: str, uri: str, m: ShardMetrics, content: str) -> int:
    """Register, claim and complete one version of `uri` holding `m`; its shard id."""
    sv = store.register(dataset, uri, hashlib.sha256(content.encode()).hexdigest())
    assert store.claim(sv.id, "w", lease_seconds=60, force=True)
    assert store.complete(sv.id, "w", m, profile="laion400m", lexicon="birhane2021")
    return sv.id


def store_all(store: ResultStore, dataset: str, shards: Mapping[str, ShardMetrics]) -> None:
    for uri, m in shards.items():
        store_shard(store, dataset, uri, m, f"{uri}-content")


def reported(store: ResultStore, dataset: str) -> dict[str, object] | None:
    lists: dict[str, object] | None = (
        dataset_report(store, dataset).total.to_dict().get("blocklists")
    )
    return lists


def merged(shards: Mapping[str, ShardMetrics] | Sequence[ShardMetrics]) -> object:
    items = shards.values() if isinstance(shards, Mapping) else shards
    return ShardMetrics.merge_all(items).to_dict().get("blocklists")


# a: two lists; b: the same entry E0 as a; c and e: a newer version of the list; d: no list
SHARDS = {
    "s3://b/a.parquet": shard(
        100,
        csam=stats("url_sha256", V1, 1000, 3, [E[0], E[1]]),
        ids=stats("id", V_IDS, 10, 1, [ID_ENTRY]),
    ),
    "s3://b/b.parquet": shard(80, csam=stats("url_sha256", V1, 1000, 2, [E[0]])),
    "s3://b/c.parquet": shard(50, csam=stats("url_sha256", V2, 1200, 0)),
    "s3://b/d.parquet": shard(40),
    "s3://b/e.parquet": shard(60, csam=stats("url_sha256", V2, 1200, 1, [E[3]])),
}


def test_report_equals_the_merge_of_the_shards(store: ResultStore) -> None:
    store_all(store, "ds", SHARDS)
    report = dataset_report(store, "ds")
    lists = report.total.to_dict()["blocklists"]
    assert lists == merged(SHARDS)
    assert lists["csam"] == {
        "kind": "url_sha256",
        "entries": 1200,  # the largest version's
        "rows": 6,
        "matched_entries": 3,  # E0 (in a and b) once, E1, E3
        "shards": 4,
        "versions": {V1: 2, V2: 2},
    }
    assert lists["ids"] == {
        "kind": "id",
        "entries": 10,
        "rows": 1,
        "matched_entries": 1,
        "shards": 1,
        "versions": {V_IDS: 1},
    }
    # the merged stats hold the very entry ids, so the report's total merges on exactly
    assert report.total.blocklists is not None
    assert report.total.blocklists["csam"].matched == {E[0], E[1], E[3]}

    # which version of each list each counted shard was checked against
    doc = report.to_dict()
    per_shard = {s["uri"]: s.get("blocklists") for s in doc["shards"]}
    assert per_shard == {
        "s3://b/a.parquet": {"csam": V1, "ids": V_IDS},
        "s3://b/b.parquet": {"csam": V1},
        "s3://b/c.parquet": {"csam": V2},
        "s3://b/d.parquet": None,
        "s3://b/e.parquet": {"csam": V2},
    }
    assert doc["blocklists"] == {
        "csam": {
            "newest": V2,
            "older": {V1: ["s3://b/a.parquet", "s3://b/b.parquet"]},
            "unchecked": 1,
        },
        "ids": {"newest": V_IDS, "older": {}, "unchecked": 4},
    }
    # counts, list names, versions and shard names only: no entry id, URL or id anywhere
    text = json.dumps(doc)
    for secret in [*URLS, "12345", *(e.hex() for e in [*E, ID_ENTRY])]:
        assert secret not in text


def test_a_dataset_without_lists_has_no_blocklists_key(store: ResultStore) -> None:
    store_all(store, "plain", {"a.parquet": shard(10), "b.parquet": shard(20)})
    report = dataset_report(store, "plain")
    assert report.total.blocklists is None
    assert "blocklists" not in report.to_dict() and "blocklists" not in report.to_dict()["total"]


def test_a_new_version_replaces_its_matches(store: ResultStore) -> None:
    uri = "s3://b/x.parquet"
    first = shard(100, csam=stats("url", V1, 1000, 5, [E[0], E[1], E[2]]))
    store_shard(store, "ds", uri, first, "v1")
    store_shard(
        store, "ds", "s3://b/y.parquet", shard(10, csam=stats("url", V1, 1000, 1, [E[2]])), "y"
    )
    second = shard(100, csam=stats("url", V2, 1100, 1, [E[2]]))  # new content, newer list
    store_shard(store, "ds", uri, second, "v2")
    lists = reported(store, "ds")
    assert lists == merged([second, shard(10, csam=stats("url", V1, 1000, 1, [E[2]]))])
    assert lists is not None and lists["csam"] == {
        "kind": "url",
        "entries": 1100,
        "rows": 2,
        "matched_entries": 1,  # the first version's E0, E1 no longer count
        "shards": 2,
        "versions": {V1: 1, V2: 1},
    }


def test_reprocessing_a_version_replaces_its_rows(store: ResultStore) -> None:
    """A forced reprocessing of the same version (same shard id) writes its lists again:
    nothing is left of the first write, nothing is counted twice."""
    first = shard(100, csam=stats("url", V1, 1000, 5, E[:4]), ids=stats("id", V_IDS, 9, 1))
    shard_id = store_shard(store, "ds", "x.parquet", first, "same")
    again = shard(100, csam=stats("url", V2, 1000, 2, E[3:5]))
    assert store_shard(store, "ds", "x.parquet", again, "same") == shard_id
    assert reported(store, "ds") == merged([again])
    with store.sessions() as s:
        lists = s.scalars(
            select(t.ShardBlocklist.name).where(t.ShardBlocklist.shard_id == shard_id)
        )
        assert list(lists) == ["csam"]
        matches = select(func.count()).select_from(t.ShardBlocklistMatch)
        assert s.scalar(matches.where(t.ShardBlocklistMatch.shard_id == shard_id)) == 2


def test_split_and_merge_invariance(store: ResultStore) -> None:
    """Random shards over a few lists: the report over all of them equals the merge of the
    reports over any split of them (an entry matched on both sides counted once), and the
    merge of the shards in any order."""
    rng = random.Random(20)
    pool = [entry_id("url", bytes([i]) * 32) for i in range(12)]
    shards: dict[str, ShardMetrics] = {}
    for i in range(12):
        lists = {}
        kinds: tuple[tuple[str, BlocklistKind], ...] = (("a", "url"), ("b", "domain"))
        for name, kind in kinds:
            if rng.random() < 0.8:
                version = rng.choice((V1, V2))
                matched = rng.sample(pool, rng.randint(0, 4))
                lists[name] = stats(
                    kind, version, 500 + 100 * (version == V2), len(matched) * 2, matched
                )
        shards[f"part-{i:02d}.parquet"] = shard(100, **lists)
    store_all(store, "all", shards)
    names = list(shards)
    rng.shuffle(names)
    left, right = names[:5], names[5:]
    store_all(store, "left", {n: shards[n] for n in left})
    store_all(store, "right", {n: shards[n] for n in right})

    whole = dataset_report(store, "all").total
    parts = [dataset_report(store, side).total for side in ("left", "right")]
    assert whole.to_dict()["blocklists"] == merged(shards)
    rejoined = merge_blocklists(parts[0].blocklists, parts[1].blocklists)
    assert rejoined == whole.blocklists
    assert merged([shards[n] for n in names]) == merged(shards)  # order does not matter


def test_a_list_checked_as_two_kinds_is_refused(store: ResultStore) -> None:
    store_all(
        store,
        "ds",
        {
            "a.parquet": shard(1, x=stats("url", V1, 5, 0)),
            "b.parquet": shard(1, x=stats("id", V2, 5, 0)),
        },
    )
    with pytest.raises(ReportError, match="blocklist 'x' was checked as kinds id and url"):
        dataset_report(store, "ds")
    with pytest.raises(ValueError, match="cannot merge"):  # as the merge refuses
        ShardMetrics.merge_all(
            [shard(1, x=stats("url", V1, 5, 0)), shard(1, x=stats("id", V2, 5, 0))]
        )


@pytest.mark.parametrize(
    "lists",
    [
        {"bad name": stats("url", V1, 5, 0)},  # not a slug
        {"x": BlocklistStats("url", 5, 0, frozenset(), {V1: 1, V2: 1})},  # two versions
        {"x": stats("url", V1, 5, 1, [b"short"])},  # not a 16-byte id
    ],
)
def test_a_malformed_result_stores_nothing(
    store: ResultStore, lists: dict[str, BlocklistStats]
) -> None:
    sv = store.register("ds", "a.parquet", "a" * 64)
    assert store.claim(sv.id, "w", lease_seconds=60)
    with pytest.raises(ValueError):
        store.complete(sv.id, "w", shard(5, **lists), profile="laion400m", lexicon="birhane2021")
    assert store.shard(sv.id).status == "processing"  # the transaction rolled back
    with store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.ShardBlocklist)) == 0


def test_kept_sums_leave_the_blocklists_exact(store: ResultStore) -> None:
    """The pass's kept sums (store/stored_totals.py) hold no blocklist: the report reads the
    lists' tables every time, so a kept total and a fresh one give the same blocklists."""
    store_all(store, "ds", SHARDS)
    fresh = reported(store, "ds")
    assert store.judge_dataset("ds", None) is False  # keeps the sums, judges nothing
    assert store.verify_total("ds")
    assert reported(store, "ds") == fresh == merged(SHARDS)


def test_the_report_command_shows_counts_and_versions(
    store: ResultStore, database_url: str, tmp_path: Path
) -> None:
    """`shardwatch report` (text, JSON, Markdown): per list its kind, entries, rows and
    entries matched, the shards checked against an older version and those not checked;
    never an entry."""
    store_all(store, "ds", SHARDS)

    def report(*args: str) -> str:
        proc = run_shardwatch(
            "report", "--dataset", "ds", *args, cwd=tmp_path, SHARDWATCH_DATABASE_URL=database_url
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    text, as_json, markdown = report(), report("--json"), report("--format", "markdown")
    assert json.loads(as_json)["total"]["blocklists"] == merged(SHARDS)
    assert (
        "blocklist csam (url_sha256, 2 versions, the largest 1,200 entries): 6 rows matched "
        "(1.8%), 3 entries matched; checked in 4 of 5 shards"
    ) in text
    assert "blocklist ids (id, 10 entries): 1 rows matched (0.3%), 1 entries matched" in text
    assert (
        "blocklist csam: 2 shard(s) checked against version 111111111111 (newest "
        "222222222222): s3://b/a.parquet, s3://b/b.parquet"
    ) in text
    assert "blocklist ids: 4 shard(s) not checked against it" in text
    assert "blocklist csam (url\\_sha256, 2 versions" in markdown  # in the Overall line
    for secret in [*URLS, "12345", *(e.hex() for e in [*E, ID_ENTRY])]:
        assert secret not in text + as_json + markdown
