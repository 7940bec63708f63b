"""store/repository.py on SQLite and PostgreSQL: versions, leases, status, atomic writes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from support.clocks import LONG_LEASE, expire_lease
from support.store_checks import (
    LEXICON,
    SHARD_RESULT_TABLES,
    shard_result_counts,
    shard_state,
    write_shards,
)

from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.engine import scan_shard
from shardwatch.store import models as t
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> ShardMetrics:
    (path,) = write_shards(tmp_path_factory.mktemp("shard"), 1, rows=120, seed=5)
    return scan_shard(path, LAION400M, LEXICON, workers=1)


def complete(store: ResultStore, shard_id: int, owner: str, m: ShardMetrics, **kw: Any) -> bool:
    return store.complete(shard_id, owner, m, profile="laion400m", lexicon="birhane2021", **kw)


def test_register_gives_one_row_per_content_and_numbers_versions(store: ResultStore) -> None:
    v1 = store.register("ds", "s3://b/part-0.parquet", SHA_A, size_bytes=10)
    assert (v1.version, v1.status, v1.attempts) == (1, "discovered", 0)
    assert store.register("ds", "s3://b/part-0.parquet", SHA_A) == v1  # natural key
    v2 = store.register("ds", "s3://b/part-0.parquet", SHA_B)
    assert v2.version == 2 and v2.id != v1.id
    assert store.register("ds", "s3://b/part-0.parquet", SHA_A).id == v1.id
    other = store.register("other", "s3://b/part-0.parquet", SHA_A)
    assert other.version == 1 and other.id not in (v1.id, v2.id)
    assert store.shard(v2.id).dataset == "ds"


def test_status_transitions_and_live_leases(store: ResultStore, metrics: ShardMetrics) -> None:
    sv = store.register("ds", "part-0.parquet", SHA_A)
    assert store.claim(sv.id, "worker-a", lease_seconds=60)
    state = shard_state(store.engine, sv.id)
    assert (state["status"], state["attempts"], state["lease_owner"]) == (
        "processing",
        1,
        "worker-a",
    )
    assert not store.claim(sv.id, "worker-b", lease_seconds=60)  # live lease
    assert not store.claim(sv.id, "worker-b", lease_seconds=60, force=True)
    assert not complete(store, sv.id, "worker-b", metrics)  # not the holder: writes nothing
    assert sum(shard_result_counts(store.engine, sv.id).values()) == 0

    assert complete(store, sv.id, "worker-a", metrics)
    state = shard_state(store.engine, sv.id)
    assert (state["status"], state["lease_owner"], state["lease_expires_at"]) == (
        "done",
        None,
        None,
    )
    counts = shard_result_counts(store.engine, sv.id)
    assert counts["shard_metrics"] == 1
    assert counts["term_metrics"] == len(metrics.terms or {}) > 0
    assert counts["shard_tag_counts"] > 0 and counts["similarity_bins"] > 0
    assert counts["term_tag_counts"] > 0

    assert not store.claim(sv.id, "worker-b", lease_seconds=60)  # done: a no-op
    assert store.claim(sv.id, "worker-b", lease_seconds=60, force=True)
    assert complete(store, sv.id, "worker-b", metrics)
    assert shard_result_counts(store.engine, sv.id) == counts  # replaced, not doubled
    assert shard_state(store.engine, sv.id)["attempts"] == 2


def test_expired_lease_is_taken_over_and_the_old_holder_loses(
    store: ResultStore, metrics: ShardMetrics
) -> None:
    sv = store.register("ds", "part-0.parquet", SHA_A)
    assert store.claim(sv.id, "dead-worker", lease_seconds=LONG_LEASE)
    assert not store.claim(sv.id, "worker-b", lease_seconds=60)  # the lease holds...
    expire_lease(store.engine, sv.id)  # ...until it expires
    assert store.claim(sv.id, "worker-b", lease_seconds=60)
    assert not complete(store, sv.id, "dead-worker", metrics)  # lease lost: nothing written
    assert sum(shard_result_counts(store.engine, sv.id).values()) == 0
    assert complete(store, sv.id, "worker-b", metrics)
    state = shard_state(store.engine, sv.id)
    assert (state["status"], state["attempts"]) == ("done", 2)
    assert shard_result_counts(store.engine, sv.id)["shard_metrics"] == 1


def test_fail_and_quarantine(store: ResultStore) -> None:
    sv = store.register("ds", "part-0.parquet", SHA_A)
    assert store.claim(sv.id, "worker-a", lease_seconds=60)
    store.fail(sv.id, "worker-b", "not the holder")  # ignored
    assert shard_state(store.engine, sv.id)["status"] == "processing"
    store.fail(sv.id, "worker-a", "not a readable parquet file")
    state = shard_state(store.engine, sv.id)
    assert (state["status"], state["reason"], state["lease_owner"]) == (
        "failed",
        "not a readable parquet file",
        None,
    )
    assert store.claim(sv.id, "worker-a", lease_seconds=60)  # failed shards are retried
    assert shard_state(store.engine, sv.id)["reason"] is None
    store.fail(sv.id, "worker-a", "poison", quarantine=True)
    assert shard_state(store.engine, sv.id)["status"] == "quarantined"
    assert not store.claim(sv.id, "worker-a", lease_seconds=60)
    assert store.claim(sv.id, "worker-a", lease_seconds=60, force=True)


class Boom(Exception):
    pass


def test_complete_is_all_or_nothing(store: ResultStore, metrics: ShardMetrics) -> None:
    sv = store.register("ds", "part-0.parquet", SHA_A)
    assert store.claim(sv.id, "worker-a", lease_seconds=60)
    seen_inside: dict[str, int] = {}

    def die(session: Session) -> None:
        for name in SHARD_RESULT_TABLES:
            seen_inside[name] = session.execute(
                text(f"SELECT count(*) FROM {name} WHERE shard_id = :id"), {"id": sv.id}
            ).scalar_one()
        raise Boom

    with pytest.raises(Boom):
        complete(store, sv.id, "worker-a", metrics, before_commit=die)
    assert seen_inside["shard_metrics"] == 1 and seen_inside["term_metrics"] > 0  # were written
    assert shard_result_counts(store.engine, sv.id) == dict.fromkeys(SHARD_RESULT_TABLES, 0)
    state = shard_state(store.engine, sv.id)
    assert (state["status"], state["lease_owner"], state["attempts"]) == (
        "processing",
        "worker-a",
        1,
    )
    assert complete(store, sv.id, "worker-a", metrics)  # the holder can still finish it
    assert shard_result_counts(store.engine, sv.id)["shard_metrics"] == 1


def test_runs_record_their_counts(store: ResultStore) -> None:
    run_id = store.start_run("flow-run-123")
    store.finish_run(run_id, seen=4, done=2, skipped=1, failed=1)
    with store.sessions() as s:
        run = s.scalars(select(t.Run).where(t.Run.id == run_id)).one()
        assert (run.status, run.prefect_flow_run_id) == ("completed", "flow-run-123")
        assert (run.shards_seen, run.shards_done, run.shards_skipped, run.shards_failed) == (
            4,
            2,
            1,
            1,
        )
        assert run.finished_at is not None


def test_metrics_round_trip_the_scalars(store: ResultStore, metrics: ShardMetrics) -> None:
    sv = store.register("ds", "part-0.parquet", SHA_A)
    assert store.claim(sv.id, "w", lease_seconds=60)
    assert complete(store, sv.id, "w", metrics)
    with store.sessions() as s:
        row = s.get(t.ShardMetricsRow, sv.id)
        assert row is not None
        assert row.rows == metrics.rows and row.keyword_nsfw_rows == metrics.keyword_nsfw_rows
        sim = metrics.similarity
        assert sim is not None and row.similarity_below == sim.below_threshold
        bins = dict(
            s.execute(
                select(t.SimilarityBin.bin, t.SimilarityBin.count).where(
                    t.SimilarityBin.shard_id == sv.id
                )
            ).all()
        )
        assert bins == {i: c for i, c in enumerate(sim.histogram.counts) if c}
        tags = dict(
            s.execute(
                select(t.ShardTagCount.label, t.ShardTagCount.count).where(
                    t.ShardTagCount.shard_id == sv.id
                )
            ).all()
        )
        assert tags == dict(metrics.nsfw_flag_counts or {})
        terms = {
            r.term: (r.mode, r.matches, r.keyword_nsfw, r.substring_matches)
            for r in s.scalars(select(t.TermMetricsRow).where(t.TermMetricsRow.shard_id == sv.id))
        }
        assert terms == {
            term: (st.mode, st.matches, st.keyword_nsfw, st.substring_matches)
            for term, st in (metrics.terms or {}).items()
        }
