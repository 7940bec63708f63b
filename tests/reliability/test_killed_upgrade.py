"""Scenario 20, a killed `db upgrade` (docs/reliability.md): `shardwatch db upgrade` on a
fresh database (SQLite and PostgreSQL) is SIGKILLed at several points of its migrations:
before its first statement, at points spread over every migration's DDL, before its last
statement and just before its COMMIT. Each killed database then holds no half-applied
migration (its schema is exactly a clean upgrade's to the revision it reports, i.e. nothing:
the upgrade is one transaction), and `db upgrade` run again completes with the schema of a
clean upgrade: the same tables, columns, indexes, constraints and views.

tests/support/reliability/upgrade_worker.py forks the CLI once per kill point; concurrent
upgrades are tests/unit/store/test_database.py's and the concurrency scenario's.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect
from support.reliability import FOLDER
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import subprocess_env

from shardwatch.store.database import current, heads, make_engine

pytestmark = pytest.mark.integration

SCENARIO = "11 killed upgrade"
WORKER = FOLDER / "upgrade_worker.py"
POINTS = 4  # kill points spread over the statements, plus "commit"


def schema(engine: Engine) -> dict[str, Any]:
    """Tables with their columns, primary key, indexes, unique and foreign keys; views."""
    insp = inspect(engine)
    out: dict[str, Any] = {"views": sorted(insp.get_view_names())}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), bool(c["nullable"])) for c in insp.get_columns(table)
            ),
            "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(
                (i["name"] or "", tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted(
                tuple(str(c) for c in u["column_names"]) for u in insp.get_unique_constraints(table)
            ),
            "fks": sorted(
                (f["referred_table"], tuple(f["constrained_columns"]))
                for f in insp.get_foreign_keys(table)
            ),
        }
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A factory of empty databases of the backend: SQLite files, or on PostgreSQL empty
    schemas of one fresh database, each URL with its own `search_path` (a CREATE and a
    DROP DATABASE per kill point would cost seconds)."""
    base = None if request.param == "sqlite" else str(request.getfixturevalue("fresh_postgres_url"))
    server = request.getfixturevalue("postgres_server") if base is not None else None
    canaries: Canaries = request.getfixturevalue("canaries")  # the password: trust auth

    def make() -> str:
        name = f"upgrade_{uuid.uuid4().hex[:10]}"
        if base is None or server is None:
            return f"sqlite:///{tmp_path / name}.sqlite"
        conn = server.connect(base.rsplit("/", 1)[1])
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE SCHEMA {name}")
        finally:
            conn.close()
        return f"{canaries.postgres_url(base)}?options=-csearch_path%3D{name}"

    return make


def _run_worker(jobs: list[dict[str, Any]], folder: Path, leaks: LeakWatch) -> list[dict[str, Any]]:
    plan = folder / f"jobs-{uuid.uuid4().hex[:6]}.json"
    plan.write_text(json.dumps(jobs))
    done = subprocess.run(
        [sys.executable, str(WORKER), str(plan)],
        env=subprocess_env(),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    leaks.text("db upgrade output", done.stdout + done.stderr)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_a_killed_db_upgrade_leaves_no_half_migration_and_a_rerun_completes(
    new_database: Callable[[], str],
    tmp_path: Path,
    leaks: LeakWatch,
    figure: Callable[[str, str, object], None],
) -> None:
    first, urls = new_database(), [new_database() for _ in range(POINTS + 2)]
    fractions = [{"fraction": k / POINTS} for k in range(POINTS)] + [{"fraction": 1.0}, "commit"]
    jobs: list[dict[str, Any]] = [{"url": first, "stop": None}]
    jobs += [{"url": u, "stop": f} for u, f in zip(urls, fractions, strict=True)]
    counted, *killed = _run_worker(jobs, tmp_path, leaks)
    total = counted["statements"][-1]  # the CLI's statements up to the upgrade's COMMIT
    reference = make_engine(first)
    clean, backend = schema(reference), reference.dialect.name
    reference.dispose()
    assert total > 20 and len(clean) > 10, (total, sorted(clean))
    stops = [r["stop"] for r in killed]
    assert [r["signal"] for r in killed] == [signal.SIGKILL] * len(stops), killed

    half: list[str] = []
    for url, stop in zip(urls, stops, strict=True):
        engine = make_engine(url)
        try:
            at, left = current(engine), schema(engine)
            if at is None:
                if left != {"views": []}:
                    half.append(f"kill at {stop}: no revision but {sorted(left)}")
            elif at != heads()[0]:
                half.append(f"kill at {stop}: at {at}")  # only a whole upgrade may commit
        finally:
            engine.dispose()
    assert not half, half

    reruns = _run_worker([{"url": u, "stop": None} for u in urls], tmp_path, leaks)
    assert [(r["signal"], r["code"]) for r in reruns] == [(0, 0)] * len(urls), reruns
    differ = []
    for url, stop in zip(urls, stops, strict=True):
        engine = make_engine(url)
        try:
            assert current(engine) == heads()[0]
            if schema(engine) != clean:
                differ.append(stop)
        finally:
            engine.dispose()
    assert not differ, f"schema differs from a clean upgrade after a kill at {differ}"
    figure(SCENARIO, f"kill points [{backend}]", len(stops))
    figure(SCENARIO, f"statements in a clean upgrade [{backend}]", total)
    figure(SCENARIO, f"reruns equal to a clean upgrade [{backend}]", f"{len(urls)}/{len(urls)}")
