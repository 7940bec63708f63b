"""Read snapshots and the 'latest done version of each shard URI' query the reports sum over."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.sql.selectable import CTE, Subquery

from shardwatch.store import tables as t
from shardwatch.store.database import is_sqlite


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only snapshot for all of the report's queries, so they see the same shards."""
    if is_sqlite(engine):
        with engine.connect() as conn:
            # pysqlite emits no BEGIN before a SELECT: without one each query would see the
            # database as of its own start. In WAL mode a read transaction is a snapshot.
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.rollback()
    else:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn


def newest(dataset_id: int, *conditions: Any) -> Subquery:
    """Each URI's versions meeting `conditions`, the most recently seen first (`rank` 1):
    content A -> B -> A makes A current again.

    A window function, not a join on MAX(version): one sort whatever the planner believes
    about the table sizes (a freshly filled, never-analysed PostgreSQL table otherwise gets
    a quadratic nested loop)."""
    rank = func.row_number().over(
        partition_by=t.shards.c.uri,
        order_by=(t.shards.c.last_seen_at.desc(), t.shards.c.version.desc()),
    )
    return (
        select(
            t.shards.c.id,
            t.shards.c.uri,
            t.shards.c.version,
            t.shards.c.status,
            t.shards.c.reason,
            t.shards.c.history,
            rank.label("rank"),
        )
        .where(t.shards.c.dataset_id == dataset_id, *conditions)
        .subquery()
    )


def latest_done(dataset_id: int) -> CTE:
    """(id, uri, version) of the current (most recently seen) done version of each URI."""
    ranked = newest(dataset_id, t.shards.c.status == "done")
    return (
        select(ranked.c.id, ranked.c.uri, ranked.c.version)
        .where(ranked.c.rank == 1)
        .cte("latest_done")
    )
