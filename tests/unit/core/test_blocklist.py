"""Blocklist results (core/blocklist.py): entry ids, and merges that count each matched entry
once whatever the split, with no entry text in any output."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random

import pytest

from shardwatch.core.blocklist import (
    BlocklistStats,
    entry_id,
    merge_all_blocklists,
    merge_blocklists,
)
from shardwatch.core.metrics import ShardMetrics

pytestmark = pytest.mark.unit


def _id(n: int) -> bytes:
    return entry_id("id", str(n).encode())


def test_a_url_and_its_sha256_are_the_same_entry() -> None:
    url = "https://img.example/a b.jpg"
    digest = hashlib.sha256(url.encode()).digest()
    assert entry_id("url", digest) == entry_id("url_sha256", digest) == digest[:16]
    assert entry_id("id", b"42") != entry_id("domain", b"42")  # kinds never collide
    assert len(entry_id("domain", b"example.org")) == 16


def test_merging_counts_each_matched_entry_once_whatever_the_split() -> None:
    rng = random.Random(7)
    shards = [
        BlocklistStats(
            "id",
            entries=50,
            rows=rows,
            matched=frozenset(_id(rng.randrange(50)) for _ in range(rows)),
            versions={"v1": 1},
        )
        for rows in (0, 3, 9, 1, 12)
    ]
    reference_rows = sum(s.rows for s in shards)
    reference_matched = set().union(*(s.matched for s in shards))
    for order in itertools.permutations(shards):
        for cut in range(len(order) + 1):
            left = [ShardMetrics(blocklists={"list": s}) for s in order[:cut]]
            right = [ShardMetrics(blocklists={"list": s}) for s in order[cut:]]
            total = ShardMetrics.merge_all(left).merge(ShardMetrics.merge_all(right))
            assert total.blocklists is not None
            got = total.blocklists["list"]
            assert (got.rows, got.matched) == (reference_rows, reference_matched)
            assert got.versions == {"v1": 5} and got.shards == 5


def test_merge_all_equals_the_pairwise_fold_of_merge() -> None:
    """merge_all unites each list's matched entries once; the result is the fold's."""
    rng = random.Random(11)
    results: list[dict[str, BlocklistStats] | None] = [None]
    for i in range(8):
        lists = {
            "a": BlocklistStats(
                "id", 100 + i, i, frozenset(_id(rng.randrange(300)) for _ in range(40)), {"v1": 1}
            ),
        }
        if i % 3:
            lists["b"] = BlocklistStats("domain", 5, 1, frozenset({_id(i % 2)}), {f"w{i % 2}": 1})
        results.append(lists if i != 4 else None)
    fold: dict[str, BlocklistStats] | None = None
    for r in results:
        fold = merge_blocklists(fold, r)
    assert merge_all_blocklists(results) == fold and fold is not None
    assert fold["a"].matched == set().union(*(r["a"].matched for r in results if r))
    shards = [ShardMetrics(rows=1, shards=1, blocklists=r) for r in results]
    assert ShardMetrics.merge_all(shards) == functools.reduce(ShardMetrics.merge, shards)
    assert merge_all_blocklists([None, None]) is None
    clash = [{"a": BlocklistStats("id", 1)}, {"a": BlocklistStats("url", 1)}]
    with pytest.raises(ValueError, match="kinds"):
        merge_all_blocklists(clash)


def test_versions_are_kept_and_a_list_one_shard_lacks_is_the_other_s() -> None:
    a = {"x": BlocklistStats("url", entries=10, rows=2, matched=frozenset({b"a"}),
                             versions={"v1": 1})}
    b = {"x": BlocklistStats("url", entries=12, rows=1, matched=frozenset({b"a"}),
                             versions={"v2": 1}),
         "y": BlocklistStats("domain", entries=3, versions={"w": 1})}
    merged = merge_blocklists(a, b)
    assert merged is not None and list(merged) == ["x", "y"]
    assert merged["x"].to_dict() == {"kind": "url", "entries": 12, "rows": 3,
                                     "matched_entries": 1, "shards": 2,
                                     "versions": {"v1": 1, "v2": 1}}
    assert merged["y"] == b["y"]
    assert merge_blocklists(None, None) is None
    with pytest.raises(ValueError, match="kinds url and domain"):
        a["x"].merge(b["y"])


def test_scan_json_holds_counts_and_never_an_entry() -> None:
    secret = hashlib.sha256(b"https://bad.example/x.jpg").digest()
    metrics = ShardMetrics(rows=3, blocklists={
        "re-laion": BlocklistStats("url_sha256", entries=1, rows=1,
                                   matched=frozenset({secret[:16]}), versions={"abc": 1})})
    text = json.dumps(metrics.to_dict())
    assert json.loads(text)["blocklists"]["re-laion"]["matched_entries"] == 1
    assert secret.hex()[:32] not in text and "bad.example" not in text
    assert "blocklists" not in ShardMetrics(rows=1).to_dict()


def test_one_name_rule_and_one_flag_prefix_everywhere() -> None:
    """The settings and the store check list names with the core's one pattern, and the
    features name a list's flag column with the core's one prefix."""
    from shardwatch.core import blocklist as core
    from shardwatch.scan import features
    from shardwatch.settings import blocklists as settings
    from shardwatch.store import blocklist_rows as store

    assert settings.BLOCKLIST_NAME is core.BLOCKLIST_NAME
    assert store.BLOCKLIST_NAME is core.BLOCKLIST_NAME
    assert not hasattr(store, "LIST_NAME") and not hasattr(features, "BLOCKLIST_PREFIX")
    assert features.blocklist_column("x") == core.FLAG_PREFIX + "x"
