"""The alert outbox in the store, on SQLite and PostgreSQL: alert state and notices commit
with the shard's results or not at all; a persisting breach enqueues nothing more; a cleared
one enqueues one recovery; dataset rates are exact sums over the latest versions; claims
lease notices and skip the ones another relay holds."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from support.builders import tagged_table, write_shard
from support.clocks import LONG_LEASE, expire_lease
from support.store_checks import ingest, table_counts

from shardwatch.core.alerts import AlertPlan, Rule
from shardwatch.store import models as t
from shardwatch.store.notices import scope_key
from shardwatch.store.outbox import Outbox
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

TAG = Rule("tag", "nsfw_tag_rate", "critical", "both", max=0.05, min_support=10)
PLAN = AlertPlan((TAG,), ("mail", "slack"))


def shard(directory: Path, name: str, rows: int, nsfw: int, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_shard(tagged_table(rows, nsfw, seed=seed), directory, name)


def alerts(store: ResultStore) -> dict[tuple[str, str], dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.Alert.__table__)).mappings().all()
    return {(r["rule"], r["scope"]): dict(r) for r in rows}


def notices(store: ResultStore, **where: str) -> list[dict[str, Any]]:
    o, a = t.AlertOutbox.__table__, t.Alert.__table__
    query = select(o, a.c.scope, a.c.rule).join(a, a.c.id == o.c.alert_id).order_by(o.c.id)
    for column, value in where.items():
        query = query.where(o.c[column] == value)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def deliver_all(store: ResultStore) -> list[Any]:
    """What a relay whose channels all accept would do."""
    outbox = Outbox(store.engine)
    claimed = outbox.claim("relay", timedelta(seconds=30), t.utcnow())
    outbox.sent([n.id for n in claimed], "relay", t.utcnow())
    return claimed


def test_a_breach_writes_its_alert_and_one_notice_per_channel(
    store: ResultStore, tmp_path: Path
) -> None:
    path = shard(tmp_path, "a.parquet", rows=100, nsfw=20)
    ingest([path], store, alerts=PLAN)
    state = alerts(store)
    shard_key = ("tag", scope_key("shard", str(path.resolve()), None))
    assert set(state) == {shard_key, ("tag", "dataset")}
    for row in state.values():
        assert row["breaching"] and row["observed"] == 20 / 100
        assert row["detail"] == "20 of 100" and row["threshold"] == "<= 0.05"
        assert row["severity"] == "critical"
    pending = notices(store, state="pending")
    assert sorted((n["channel"], n["scope"]) for n in pending) == sorted(
        (c, s) for c in ("mail", "slack") for _, s in state
    )
    assert {n["kind"] for n in pending} == {"breach"}
    assert all(n["payload"]["observed"] == 0.2 for n in pending)


def test_a_crash_before_commit_leaves_no_alert_and_no_notice(
    store: ResultStore, tmp_path: Path
) -> None:
    path = shard(tmp_path, "a.parquet", rows=100, nsfw=20)

    seen: list[int] = []

    def crash(session: Any) -> None:
        seen.append(session.query(t.AlertOutbox).count())  # written in this transaction
        raise RuntimeError("killed before commit")

    with pytest.raises(RuntimeError):
        ingest([path], store, alerts=PLAN, before_commit=crash, lease_seconds=LONG_LEASE)
    assert seen == [2]  # the shard's key, one notice per channel (the dataset's: after it)
    counts = table_counts(store.engine)
    assert counts["alerts"] == 0 and counts["alert_outbox"] == 0 and counts["shard_metrics"] == 0
    (busy,) = ingest([path], store, alerts=PLAN)
    assert busy.outcome == "busy"  # the crashed claim's lease holds...
    with store.engine.connect() as conn:
        shard_id = conn.execute(text("SELECT id FROM shards")).scalar_one()
    expire_lease(store.engine, shard_id)  # ...until it expires
    (result,) = ingest([path], store, alerts=PLAN)
    assert result.outcome == "done"
    assert len(notices(store)) == 4


def test_a_persisting_breach_enqueues_nothing_more_and_its_recovery_once(
    store: ResultStore, tmp_path: Path
) -> None:
    path = shard(tmp_path, "a.parquet", rows=100, nsfw=20)
    ingest([path], store, alerts=PLAN)
    assert len(deliver_all(store)) == 4
    for _ in range(2):  # the breach persists over two more runs
        ingest([path], store, alerts=PLAN, force=True)
        assert notices(store, state="pending") == []
    shard(tmp_path, "a.parquet", rows=100, nsfw=1)  # new content under the same path: clear
    ingest([path], store, alerts=PLAN)
    recovered = notices(store, state="pending")
    assert len(recovered) == 4 and {n["kind"] for n in recovered} == {"recovery"}
    assert all(n["payload"]["observed"] == 0.01 for n in recovered)
    assert not any(row["breaching"] for row in alerts(store).values())
    deliver_all(store)
    ingest([path], store, alerts=PLAN, force=True)  # still clear: nothing more
    kinds = [(n["kind"], n["state"]) for n in notices(store)]
    assert kinds.count(("breach", "sent")) == 4 and kinds.count(("recovery", "sent")) == 4
    assert len(kinds) == 8


def test_a_breach_cleared_before_delivery_is_cancelled_not_recovered(
    store: ResultStore, tmp_path: Path
) -> None:
    path = shard(tmp_path, "a.parquet", rows=100, nsfw=20)
    ingest([path], store, alerts=PLAN)
    shard(tmp_path, "a.parquet", rows=100, nsfw=0)
    ingest([path], store, alerts=PLAN)
    states = [(n["kind"], n["state"]) for n in notices(store)]
    assert states == [("breach", "cancelled")] * 4  # nobody heard of it: nothing to recover
    assert deliver_all(store) == []


def test_on_clear_a_dead_breach_notice_is_cancelled_and_only_told_channels_recover(
    store: ResultStore, tmp_path: Path
) -> None:
    path = shard(tmp_path, "a.parquet", rows=100, nsfw=20)
    ingest([path], store, alerts=PLAN)
    outbox = Outbox(store.engine)
    claimed = outbox.claim("r", timedelta(seconds=30), t.utcnow())
    mail = [n.id for n in claimed if n.channel == "mail"]
    outbox.failed(mail, "r", "smtp: 550 5.1.1 no such mailbox", permanent=True,
                  retry_at=t.utcnow(), max_attempts=5)
    outbox.sent([n.id for n in claimed if n.channel == "slack"], "r", t.utcnow())
    shard(tmp_path, "a.parquet", rows=100, nsfw=0)
    ingest([path], store, alerts=PLAN)
    states = Counter((n["channel"], n["kind"], n["state"]) for n in notices(store))
    assert states == {
        ("mail", "breach", "cancelled"): 2,  # stale now: `alerts retry` will not send them
        ("slack", "breach", "sent"): 2,
        ("slack", "recovery", "pending"): 2,  # only slack heard of the breach
    }
    cancelled = notices(store, state="cancelled")
    assert {n["last_error"] for n in cancelled} == {"smtp: 550 5.1.1 no such mailbox"}
    assert outbox.retry() == 0


def test_dataset_rates_are_exact_sums_over_the_latest_versions(
    store: ResultStore, tmp_path: Path
) -> None:
    rule = Rule("tag", "nsfw_tag_rate", "warning", "dataset", max=0.05, min_support=150)
    plan = AlertPlan((rule,), ("slack",))
    a = shard(tmp_path, "a.parquet", rows=100, nsfw=3, seed=1)
    b = shard(tmp_path, "b.parquet", rows=100, nsfw=9, seed=2)
    c = shard(tmp_path, "c.parquet", rows=100, nsfw=0, seed=3)

    ingest([a], store, alerts=plan)
    assert alerts(store) == {}  # 100 rows < min_support 150: not judged
    ingest([b], store, alerts=plan)
    row = alerts(store)[("tag", "dataset")]
    assert row["breaching"] and row["detail"] == f"{3 + 9} of 200"
    ingest([c], store, alerts=plan)
    row = alerts(store)[("tag", "dataset")]
    assert not row["breaching"] and row["detail"] == f"{3 + 9 + 0} of 300"
    shard(tmp_path, "b.parquet", rows=50, nsfw=40, seed=4)  # b's new version replaces v1
    ingest([b], store, alerts=plan)
    row = alerts(store)[("tag", "dataset")]
    assert row["breaching"] and row["detail"] == f"{3 + 40 + 0} of 250"
    assert row["observed"] == 43 / 250
    kinds = [n["kind"] for n in notices(store)]
    assert kinds == ["breach", "breach"]  # the first breach was never told: no recovery


def test_a_shard_without_the_tag_does_not_dilute_the_dataset_tag_rate(
    store: ResultStore, tmp_path: Path
) -> None:
    rule = Rule("tag", "nsfw_tag_rate", "warning", "dataset", max=0.05, min_support=10)
    tagged = shard(tmp_path, "tagged.parquet", rows=100, nsfw=8)
    bare = write_shard(tagged_table(300, 0, seed=5).select(["URL", "TEXT"]), tmp_path, "b.parquet")
    ingest([tagged, bare], store, alerts=AlertPlan((rule,), ("slack",)))
    row = alerts(store)[("tag", "dataset")]
    assert row["breaching"] and row["detail"] == "8 of 100"  # not 8 of 400


def test_claims_lease_notices_and_a_lost_relay_is_taken_over(
    store: ResultStore, tmp_path: Path
) -> None:
    ingest([shard(tmp_path, "a.parquet", rows=100, nsfw=20)], store, alerts=PLAN)
    outbox = Outbox(store.engine)
    start = t.utcnow()  # explicit clocks: no sleeping, no timing flakiness

    def at(seconds: float) -> Any:
        return start + timedelta(seconds=seconds)

    first = outbox.claim("relay-1", timedelta(seconds=60), at(0))
    assert len(first) == 4 and all(n.attempts == 1 for n in first)
    assert outbox.claim("relay-2", timedelta(seconds=30), at(59)) == []  # leased
    # relay-1 died without marking: at 61 s its lease has expired
    again = outbox.claim("relay-2", timedelta(seconds=30), at(61))
    assert sorted(n.id for n in again) == sorted(n.id for n in first)
    assert all(n.attempts == 2 for n in again)
    assert outbox.sent([n.id for n in first], "relay-1", t.utcnow()) == 0  # not its own now
    assert outbox.sent([n.id for n in again], "relay-2", t.utcnow()) == 4


def test_transient_failures_back_off_then_dead_letter_and_retry_requeues(
    store: ResultStore, tmp_path: Path
) -> None:
    ingest([shard(tmp_path, "a.parquet", rows=100, nsfw=20)], store, alerts=PLAN)
    outbox = Outbox(store.engine)
    start = t.utcnow()
    for attempt in (1, 2):
        now = start + timedelta(seconds=100 * (attempt - 1))
        claimed = outbox.claim("r", timedelta(seconds=30), now)
        assert len(claimed) == 4
        outbox.failed(
            [n.id for n in claimed], "r", "slack: HTTP 500", permanent=False,
            retry_at=now + timedelta(seconds=60), max_attempts=2,
        )
        if attempt == 1:
            assert {n["state"] for n in notices(store)} == {"pending"}
            backing_off = now + timedelta(seconds=59)
            assert outbox.claim("r", timedelta(seconds=30), backing_off) == []
    dead = notices(store, state="dead")
    assert len(dead) == 4 and {n["last_error"] for n in dead} == {"slack: HTTP 500"}
    later = start + timedelta(hours=1)
    assert outbox.claim("r", timedelta(seconds=30), later) == []  # dead stays dead
    views = outbox.alerts(include_resolved=False)
    assert {d.state for v in views for d in v.deliveries} == {"dead"}
    assert outbox.retry([dead[0]["id"]]) == 1
    (again,) = outbox.claim("r", timedelta(seconds=30), t.utcnow())
    assert again.id == dead[0]["id"] and again.attempts == 1
    assert outbox.retry() == 3


def test_a_permanent_failure_is_dead_at_once(store: ResultStore, tmp_path: Path) -> None:
    ingest([shard(tmp_path, "a.parquet", rows=100, nsfw=20)], store, alerts=PLAN)
    outbox = Outbox(store.engine)
    claimed = outbox.claim("r", timedelta(seconds=30), t.utcnow())
    outbox.failed(
        [n.id for n in claimed], "r", "smtp: 550 5.1.1 no such mailbox", permanent=True,
        retry_at=t.utcnow(), max_attempts=5,
    )
    assert {(n["state"], n["attempts"]) for n in notices(store)} == {("dead", 1)}
    assert outbox.counts() == {"dead": 4}


def test_postgres_claims_skip_rows_another_relay_has_locked(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    from shardwatch.store.database import make_engine, upgrade

    engine = make_engine(fresh_postgres_url)
    upgrade(engine)
    store = ResultStore(engine)
    ingest([shard(tmp_path, "a.parquet", rows=100, nsfw=20)], store, alerts=PLAN)
    ids = [n["id"] for n in notices(store)]
    other = create_engine(fresh_postgres_url.replace("postgresql://", "postgresql+psycopg2://"))
    with other.connect() as conn, conn.begin():
        conn.execute(
            text("SELECT id FROM alert_outbox WHERE id = :id FOR UPDATE"), {"id": ids[0]}
        )
        started = time.monotonic()
        claimed = Outbox(engine).claim("relay", timedelta(seconds=30), t.utcnow())
        assert time.monotonic() - started < 2  # skipped, not waited for
        assert sorted(n.id for n in claimed) == ids[1:]
    (last,) = Outbox(engine).claim("relay", timedelta(seconds=30), t.utcnow())
    assert last.id == ids[0]
    other.dispose()
    engine.dispose()


def test_no_alert_below_min_support_and_none_without_a_plan(
    store: ResultStore, tmp_path: Path
) -> None:
    strict = AlertPlan((TAG.replace(min_support=101),), ("slack",))
    ingest([shard(tmp_path, "a.parquet", rows=100, nsfw=50, seed=1)], store, alerts=strict)
    assert alerts(store) == {}  # 100 rows: neither the shard nor the dataset is judged
    ingest([shard(tmp_path, "b.parquet", rows=100, nsfw=50, seed=2)], store, alerts=strict)
    assert list(alerts(store)) == [("tag", "dataset")]  # only the dataset's 200 rows count
    assert alerts(store)[("tag", "dataset")]["detail"] == "100 of 200"
    ingest([shard(tmp_path, "c.parquet", rows=100, nsfw=0, seed=3)], store)  # no plan
    assert alerts(store)[("tag", "dataset")]["detail"] == "100 of 200"
    assert len(notices(store)) == 1
