"""Scenario 6, crashes (docs/reliability.md): SIGKILLed workers, a database server stopped
with `-m immediate` mid-burst, and a backend terminated during COMMIT. Nothing acknowledged is
lost, nothing is half-written, and nothing is done twice.

1. SIGKILL mid-shard and mid-transaction (SQLite and PostgreSQL):
   tests/support/reliability/crash_worker.py forks one ingest worker per kill point, each on
   its own shard: mid-scan (claim committed), right after every statement of the results
   transaction that writes the shard's rows and every third one of its alert judging (all of
   them with SHARDWATCH_SLOW=1) on PostgreSQL, a sample on SQLite, and just before COMMIT;
   plus forced re-runs of done shards killed after their old rows were deleted and just
   before COMMIT.
   Each is SIGKILLed where it stopped. Then: no row of a killed transaction is visible (a
   forced shard keeps exactly its earlier result set), a second worker during the lease does
   nothing, and once the lease expired one re-run does every shard exactly once: one result
   set equal to a crash-free reference ingest's, attempts = claims, one notice per alert key.
2. `pg_ctlcluster ... stop -m immediate` during a write burst, then a restart: every commit
   the writer saw acknowledged is there and complete, nothing is half-written, the SAME
   engine works again at once (pool_pre_ping replaces the dead connections), and the shards
   in flight are done exactly once by a re-run.
3. `pg_terminate_backend` during COMMIT, both ways it can end: the commit is rolled back (held
   in a deferred trigger waiting for an advisory lock), or it committed but the reply was
   lost (held waiting for a synchronous standby that never comes); for the results
   transaction and for the claim. The store retries on a new connection, recognises its own
   commit, and every shard is done once: one claim, no duplicate rows or alert notices.

The cluster stopped in (2) and reconfigured in (3) is the one under test
(tests/support/reliability/crash_checks.py: SHARDWATCH_TEST_PG_CLUSTER must match
SHARDWATCH_TEST_PG_PORT); it is always restarted and reset in a `finally`, and the test waits
until it accepts connections again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from psycopg2 import sql
from sqlalchemy import Engine, event, text
from support.clocks import expire_lease
from support.ingest_worker import ALERTS
from support.reliability import FOLDER
from support.reliability.crash_checks import (
    RESULT_TABLES,
    Cluster,
    cluster,
    counts_by_uri,
    expected_counts,
    reference_counts,
)
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import (
    DATASET,
    LEXICON,
    as_utc,
    ingest,
    shards,
    subprocess_env,
    table_counts,
    write_shards,
)

from shardwatch.core.profiles import LAION400M
from shardwatch.scan.engine import scan_shard
from shardwatch.store import retry as store_retry
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

SCENARIO = "6 crashes"
WORKER = FOLDER / "crash_worker.py"
NO_ROWS = dict.fromkeys(RESULT_TABLES, 0)
KILL_LEASE = 8.0  # seconds: each killed worker is checked well within its lease
SHARD_ROWS = 40
VICTIM = "shardwatch-crash-victim"  # application_name of the connections the test terminates


def _with_query(url: str, **query: str) -> str:
    return url + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def _db_url(database_url: str, canaries: Canaries) -> str:
    """PostgreSQL with the canary password (trust auth ignores it); SQLite as it is."""
    if database_url.startswith("postgresql"):
        return canaries.postgres_url(database_url)
    return database_url


# -- 1. SIGKILL mid-shard and mid-transaction --------------------------------------------------


def _statements_of_one_complete(done_first: list[Path], probe: Path, folder: Path) -> int:
    """How many statements the results transaction of `probe` runs (alerts on) once
    `done_first` are done: the state every killed worker's transaction starts from."""
    engine = make_engine(f"sqlite:///{folder / 'calibrate.sqlite'}")
    seen = {"inside": False, "n": 0}

    @event.listens_for(engine, "after_cursor_execute")
    def _count(*_args: Any) -> None:
        seen["n"] += seen["inside"]

    class Counting(ResultStore):
        def complete(self, *args: Any, **kwargs: Any) -> bool:
            seen["inside"] = True
            try:
                return super().complete(*args, **kwargs)
            finally:
                seen["inside"] = False

    try:
        upgrade(engine)
        store = Counting(engine)
        ingest(done_first, store, alerts=ALERTS)
        seen["n"] = 0
        (result,) = ingest([probe], store, alerts=ALERTS)
        assert result.outcome == "done"
    finally:
        engine.dispose()
    return seen["n"]


AFTER_DELETES = 1 + 7  # the lease check, then one DELETE per result table


ROW_WRITES = AFTER_DELETES + 6 + 1  # ...then one INSERT per non-empty table, the status UPDATE


def _kill_plan(backend: str, statements: int) -> list[tuple[str, bool]]:
    """(point, forced) per job; the forced jobs come last. PostgreSQL: after every statement
    that writes the shard's rows, then after every third statement of the alert judging
    (every one with SHARDWATCH_SLOW=1); SQLite: a sample (there each paused transaction holds
    the one write lock, so the workers reach their points one at a time)."""
    if backend == "postgresql":
        step = 1 if os.environ.get("SHARDWATCH_SLOW") == "1" else 3
        after = [*range(1, ROW_WRITES + 1), *range(ROW_WRITES + step, statements, step)]
        points = ["scan", *(f"sql:{k}" for k in [*after, statements]), "commit"]
        forced = [f"sql:{AFTER_DELETES}", "commit"]
    else:
        points = ["scan", "sql:1", f"sql:{AFTER_DELETES}", f"sql:{AFTER_DELETES + 3}", "commit"]
        forced = [f"sql:{AFTER_DELETES + 1}"]
    return [(p, False) for p in points] + [(p, True) for p in forced]


def _events(out: Path, kind: str) -> list[dict[str, Any]]:
    found = []
    for line in out.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if record.get("event") == kind:
                found.append(record)
    return found


def _kill_each_where_it_stops(
    url: str,
    plan: list[dict[str, Any]],
    folder: Path,
    parallel: int,
    on_kill: Callable[[int], None] | None,
) -> dict[int, dict[str, Any]]:
    """Run crash_worker.py on the plan; SIGKILL each child as soon as it reports its stop,
    then call `on_kill(job)`. Returns the reports per job."""
    pauses = folder / "pauses"
    pauses.mkdir()
    (folder / "plan.json").write_text(json.dumps(plan))
    out, err = folder / "worker.out", folder / "worker.err"
    command = [sys.executable, str(WORKER), "--url", url, "--plan", str(folder / "plan.json")]
    command += ["--pauses", str(pauses), "--parallel", str(parallel)]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=subprocess_env())
    reports: dict[int, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + 120
        while len(reports) < len(plan):
            for job in range(len(plan)):
                report_file = pauses / f"job-{job}.json"
                if job not in reports and report_file.exists():
                    reports[job] = json.loads(report_file.read_text())
                    os.kill(reports[job]["pid"], signal.SIGKILL)
                    if on_kill is not None:
                        on_kill(job)
            if proc.poll() is not None and len(reports) < len(plan):
                pytest.fail(f"crash worker ended early:\n{out.read_text()}\n{err.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"only {len(reports)} of {len(plan)} jobs stopped:\n{err.read_text()}")
            time.sleep(0.005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:  # a failure above: end the children this test started
            ended = {e["job"] for e in _events(out, "exit")}
            for child in _events(out, "child"):
                if child["job"] not in ended:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child["pid"], signal.SIGKILL)
            proc.kill()
            proc.wait(timeout=30)
    return reports


def _notices_per_alert(engine: Engine) -> Counter[int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT alert_id, count(*) FROM alert_outbox GROUP BY alert_id"))
        return Counter({int(a): int(n) for a, n in rows})


def _dataset_alert(engine: Engine) -> str:
    with engine.connect() as conn:
        query = text("SELECT detail FROM alerts WHERE scope = 'dataset'")
        return str(conn.execute(query).scalar_one())


def _nsfw_total(paths: list[Path]) -> str:
    """'NSFW-tagged rows of all rows' of the files, decoded with pyarrow (not the engine)."""
    tags = [pq.read_table(p, columns=["NSFW"]).column(0).to_pylist() for p in paths]
    return f"{sum(t.count('NSFW') for t in tags)} of {sum(len(t) for t in tags)}"


def test_sigkill_mid_shard_and_mid_transaction_leaves_no_partial_rows_and_redoes_once(
    database_url: str,
    tmp_path: Path,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Any,
) -> None:
    url = _db_url(database_url, canaries)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    engine = make_engine(url)
    try:
        upgrade(engine)
        store = ResultStore(engine)
        n_forced = 2 if backend == "postgresql" else 1
        calibration = write_shards(
            tmp_path / "calibration", 1 + n_forced, rows=SHARD_ROWS, seed=500
        )
        statements = _statements_of_one_complete(calibration[1:], calibration[0], tmp_path)
        jobs = _kill_plan(backend, statements)
        paths = write_shards(tmp_path / "shards", len(jobs), rows=SHARD_ROWS)
        uris = [str(p.resolve()) for p in paths]
        reference = reference_counts(paths, tmp_path)
        forced = {uris[i] for i, (_, force) in enumerate(jobs) if force}
        first = ingest([p for p in paths if str(p.resolve()) in forced], store, alerts=ALERTS)
        assert {r.outcome for r in first} == {"done"}
        before = table_counts(engine)

        def killed_shard_is_untouched_and_held(job: int) -> datetime:
            """Nothing of the killed transaction is visible (a forced shard keeps its
            earlier set), its lease is still held, and a second worker does nothing."""
            uri, path = uris[job], paths[job]
            assert counts_by_uri(engine)[uri] == (reference[uri] if uri in forced else NO_ROWS)
            (state,) = [row for row in shards(engine) if row["uri"] == uri]
            attempts = 2 if uri in forced else 1
            owner = f"doomed-{job}"
            assert (state["status"], state["lease_owner"], state["attempts"]) == (
                "processing",
                owner,
                attempts,
            ), job
            expires = as_utc(state["lease_expires_at"])
            since = (datetime.now(UTC) - expires).total_seconds() + KILL_LEASE
            assert since < KILL_LEASE, f"job {job} checked {since:.1f} s after its claim: too slow"
            (second,) = ingest([path], store, owner="second", alerts=ALERTS)
            assert second.outcome == "busy", job
            (state,) = [row for row in shards(engine) if row["uri"] == uri]
            assert (state["attempts"], state["lease_owner"]) == (attempts, owner)
            return expires

        expiries: dict[int, datetime] = {}
        plan = [
            {"shard": str(p), "owner": f"doomed-{i}", "pause": point, "force": force}
            | {"lease": KILL_LEASE}
            for i, (p, (point, force)) in enumerate(zip(paths, jobs, strict=True))
        ]
        if backend == "postgresql":  # check each shard the moment its worker is dead
            reports = _kill_each_where_it_stops(
                url,
                plan,
                tmp_path,
                3,
                lambda job: expiries.__setitem__(job, killed_shard_is_untouched_and_held(job)),
            )
        else:  # a check writes (register), so it waits until no worker holds the write lock
            reports = _kill_each_where_it_stops(url, plan, tmp_path, 1, None)
            for job in range(len(jobs)):
                expiries[job] = killed_shard_is_untouched_and_held(job)
        worker_err = (tmp_path / "worker.err").read_text()
        leaks.text("crash worker stdout", (tmp_path / "worker.out").read_text())
        leaks.text("crash worker stderr", worker_err)
        assert worker_err == ""  # no child failed or warned before its kill
        exits = {e["job"]: e for e in _events(tmp_path / "worker.out", "exit")}
        assert len(exits) == len(jobs)
        assert {e["signal"] for e in exits.values()} == {signal.SIGKILL}, exits

        inside = [reports[i]["uncommitted"] for i in range(len(jobs))]
        print(f"\nkill [{backend}]: {statements} statements in a results transaction")
        for i, (point, force) in enumerate(jobs):
            where = f"{reports[i]['point']} ({reports[i]['verb'] or '-'})"
            print(f"  job {i} {point}{' forced' if force else ''}: {where}, sees {inside[i]}")
        # The kills hit transactions before, amid and after their rows of every kind.
        assert any(c and c["shard_metrics"] == 0 for c in inside)
        assert any(c.get("shard_metrics") == 1 and c.get("term_metrics", 0) > 0 for c in inside)
        assert any(c.get("alert_outbox", 0) > before["alert_outbox"] for c in inside)
        assert table_counts(engine)["alerts"] == before["alerts"]
        assert table_counts(engine)["alert_outbox"] == before["alert_outbox"]

        # Once the leases expired, one re-run does every shard exactly once. Their time
        # passes explicitly, on the database's clock (support/clocks.py), not by sleeping.
        assert len(expiries) == len(jobs)  # every killed shard was checked while still held
        for row in shards(engine):
            if row["lease_owner"] is not None:
                expire_lease(engine, row["id"])
        third = ingest(paths, store, owner="third", alerts=ALERTS)
        assert [r.outcome for r in third] == ["done"] * len(paths), third
        final = counts_by_uri(engine)
        assert final == reference
        rows = shards(engine)
        assert len(rows) == len(paths) == table_counts(engine)["shard_metrics"]
        assert {(r["status"], r["lease_owner"]) for r in rows} == {("done", None)}
        assert {r["uri"]: r["attempts"] for r in rows} == {u: 3 if u in forced else 2 for u in uris}
        notices = _notices_per_alert(engine)
        assert notices and set(notices.values()) == {1}, notices
        assert _dataset_alert(engine) == _nsfw_total(paths)

        figure(SCENARIO, f"SIGKILL points [{backend}]", len(jobs))
        redone = sum(final[u] == reference[u] for u in uris)
        figure(
            SCENARIO,
            f"shards redone exactly once after the lease [{backend}]",
            f"{redone} of {len(uris)}",
        )
        leaks.database(f"kill store [{backend}]", url)
        if backend == "sqlite":
            leaks.tree("kill sqlite files", tmp_path)
    finally:
        engine.dispose()


# -- 2. stop -m immediate during a write burst --------------------------------------------------


@pytest.fixture
def crash_cluster(postgres_server: Any) -> Cluster:
    """The cluster under test, if this machine lets the test stop and restart it."""
    found = cluster()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"scenario 6 must restart PostgreSQL in CI: {found}", pytrace=False)
        pytest.skip(found)
    assert found.ready(), f"PostgreSQL {found} is not running"
    return found


BURST_LEASE = 2.0
BURST_OWNER = "burst"


def _sha(uri: str) -> str:
    import hashlib

    return hashlib.sha256(uri.encode()).hexdigest()


class BurstWriter(threading.Thread):
    """Commits small shards one after another through shardwatch's store (register, claim,
    complete), appending each URI whose commit was acknowledged (`complete` returned True)
    to `acked`; stops at the first error, leaving that URI in `in_flight`."""

    def __init__(self, store: ResultStore, metrics: list[Any], uris: list[str], first: int) -> None:
        super().__init__(daemon=True)
        self.store, self.metrics, self.uris, self.first = store, metrics, uris, first
        self.acked: list[str] = []
        self.acked_at: list[float] = []
        self.in_flight: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        for i, uri in enumerate(self.uris):
            self.in_flight = uri
            try:
                write_one(self.store, uri, self.metrics[(self.first + i) % len(self.metrics)])
            except Exception as exc:
                self.error = exc
                return
            self.acked.append(uri)
            self.acked_at.append(time.monotonic())
            self.in_flight = None


def write_one(store: ResultStore, uri: str, metrics: Any, *, wait: float = 0.0) -> str:
    """Register, claim and complete one shard (waiting up to `wait` s for a lease to expire).
    Returns what happened: done, or skipped (it already was)."""
    sv = store.register(DATASET, uri, _sha(uri))
    if sv.status == "done":
        return "skipped"
    deadline = time.monotonic() + wait
    while not store.claim(sv.id, BURST_OWNER, BURST_LEASE):
        assert time.monotonic() < deadline, f"{uri} could not be claimed"
        time.sleep(0.1)
    stored = store.complete(
        sv.id, BURST_OWNER, metrics, profile=LAION400M.name, lexicon=LEXICON.lexicon.name
    )
    assert stored, f"{uri}: the lease was lost"
    return "done"


@pytest.mark.exclusive  # stops and restarts the shared PostgreSQL
def test_immediate_stop_during_a_write_burst_keeps_every_acknowledged_commit(
    postgres_server: Any,
    fresh_postgres_url: str,
    crash_cluster: Cluster,
    tmp_path: Path,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store waits out a server that is down (scenario 22 tests that patience); here the
    # writer must give up while the server is down, so its patience is 1 s, not 30 s of wall
    # clock before the restart.
    monkeypatch.setattr(store_retry, "DISCONNECT_PATIENCE", 1.0)
    url = canaries.postgres_url(fresh_postgres_url)
    engine = make_engine(url)  # the writer's: used before, during and after the crash
    idle = make_engine(url)  # used before and after only: its connections go stale unseen
    new_connections = Counter[str]()
    event.listen(engine, "connect", lambda *_: new_connections.update(["writer"]))
    event.listen(idle, "connect", lambda *_: new_connections.update(["idle"]))
    try:
        upgrade(engine)
        store = ResultStore(engine)
        paths = write_shards(tmp_path / "shards", 3, rows=SHARD_ROWS)
        metrics = [scan_shard(p, LAION400M, LEXICON, workers=1) for p in paths]
        expected = [expected_counts(m) for m in metrics]
        uris = [f"burst/part-{i:05d}.parquet" for i in range(5000)]
        expect = {uri: expected[i % len(expected)] for i, uri in enumerate(uris)}
        for e in (engine, idle):  # several connections wait in each pool across the crash
            held = [e.connect() for _ in range(3)]
            for conn in held:
                conn.execute(text("SELECT 1"))
                conn.close()
        pool_before, idle_pool_before = engine.pool, idle.pool

        writer = BurstWriter(store, metrics, uris, 0)
        writer.start()
        deadline = time.monotonic() + 60
        while len(writer.acked) < 30:
            assert writer.is_alive(), f"the writer died before the crash: {writer.error!r}"
            assert time.monotonic() < deadline, "the burst is too slow"
            time.sleep(0.01)
        try:
            stopped = time.monotonic()
            crash_cluster.ctl("stop", "-m", "immediate")
            writer.join(timeout=60)
            assert not writer.is_alive()
        finally:
            if not crash_cluster.ready():
                crash_cluster.ctl("start")
            ready = crash_cluster.wait_ready()
        acked = list(writer.acked)
        in_flight = writer.in_flight
        assert writer.error is not None and in_flight is not None  # the crash hit the burst
        leaks.text("burst writer error", str(writer.error))
        print(f"\nburst: {len(acked)} acknowledged, then {type(writer.error).__name__}")

        # The SAME pools work again at once: their stale connections are replaced on checkout.
        idle_seen = idle.pool.checkedin()  # type: ignore[attr-defined]  # QueuePool's, not Pool's
        connections_before = dict(new_connections)
        with idle.connect() as conn:  # never saw the crash: pool_pre_ping finds it out
            assert conn.execute(text("SELECT count(*) FROM shards")).scalar_one() >= len(acked)
        reconnected = time.monotonic() - ready
        assert idle.pool is idle_pool_before and idle_seen >= 1
        assert new_connections["idle"] > connections_before.get("idle", 0)

        resume = len(acked) + 1
        resumed = BurstWriter(store, metrics, uris[resume : resume + 20], resume)
        resumed.start()
        resumed.join(timeout=60)
        assert resumed.error is None, resumed.error
        assert engine.pool is pool_before
        first_commit_after = resumed.acked_at[0] - ready
        outage = resumed.acked_at[0] - stopped

        # Every acknowledged commit is there and complete; nothing is half-written.
        counts = counts_by_uri(engine)
        states = {row["uri"]: row for row in shards(engine)}
        kept = [u for u in acked if states.get(u, {}).get("status") == "done"]
        assert kept == acked
        for uri in acked + resumed.acked:
            assert counts[uri] == expect[uri], uri
        for uri, state in states.items():
            assert counts[uri] == (expect[uri] if state["status"] == "done" else NO_ROWS), uri
        assert set(states) <= {*acked, in_flight, *resumed.acked}

        # The shard in flight: fully there or absent; a re-run does it exactly once.
        before = states.get(in_flight)
        print(f"burst: in flight at the crash {in_flight}: {before and before['status']}")
        redo = write_one(store, in_flight, metrics[uris.index(in_flight) % 3], wait=10)
        assert redo == ("skipped" if before and before["status"] == "done" else "done")
        state = {row["uri"]: row for row in shards(engine)}[in_flight]
        claims = (before["attempts"] if before else 0) + (redo == "done")
        assert (state["status"], state["attempts"]) == ("done", claims)
        assert counts_by_uri(engine)[in_flight] == expect[in_flight]
        assert table_counts(engine)["shard_metrics"] == len(acked) + 1 + len(resumed.acked)

        figure(
            SCENARIO,
            "acknowledged commits kept after stop -m immediate",
            f"{len(kept)} of {len(acked)}",
        )
        figure(SCENARIO, "seconds from restart to the idle pool's first query", reconnected)
        figure(
            SCENARIO,
            "seconds from restart to the writer's next commit (same pool)",
            first_commit_after,
        )
        figure(SCENARIO, "seconds of write outage (stop, restart, reconnect)", outage)
        figure(SCENARIO, "in-flight shards redone exactly once", "1 of 1")
        leaks.database("burst store", url)
        leaks.text("burst log", caplog.text)
    finally:
        engine.dispose()
        idle.dispose()


# -- 3. pg_terminate_backend during COMMIT --------------------------------------------------------

HOLD_KEY = 0x53574B31  # the advisory lock the deferred trigger waits on ("SWK1")
NOBODY = "shardwatch_crash_nobody"  # a synchronous standby that never connects

# A deferred trigger on the victim's shard updates to one status holds its COMMIT:
# `advisory`: waits for an advisory lock the test holds (terminated there: rolled back);
# `syncrep`: asks this transaction to wait for a synchronous standby that never comes
# (terminated there, it has committed locally, but the client never hears so).
HOLD_FUNCTION = """
CREATE FUNCTION crash_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = %(victim)s THEN
        IF TG_ARGV[0] = 'advisory' THEN
            PERFORM pg_advisory_xact_lock(%(key)s);
        ELSE
            PERFORM set_config('synchronous_commit', 'on', true);
        END IF;
    END IF;
    RETURN NULL;
END $$"""
HOLD_TRIGGER = """
CREATE CONSTRAINT TRIGGER crash_hold_commit AFTER UPDATE ON shards
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.status = {status})
EXECUTE FUNCTION crash_hold_commit({how})"""


def _victim_backend(admin: Any, wait_event: str, victim: threading.Thread) -> int:
    """The pid of the victim's backend once it waits on `wait_event` inside its COMMIT."""
    deadline = time.monotonic() + 60
    while True:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pid, query FROM pg_stat_activity"
                " WHERE application_name = %s AND wait_event = %s",
                (VICTIM, wait_event),
            )
            found = cur.fetchall()
        if found:
            (pid, query), *_ = found
            assert query.strip().upper() == "COMMIT", query
            return int(pid)
        assert victim.is_alive(), "the victim finished without waiting in a COMMIT"
        assert time.monotonic() < deadline, f"no victim backend waited on {wait_event}"
        time.sleep(0.01)


def _settings(admin: Any, names: tuple[str, ...]) -> dict[str, tuple[str, str | None]]:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT name, setting, sourcefile FROM pg_settings WHERE name = ANY(%s)", (list(names),)
        )
        return {name: (setting, sourcefile) for name, setting, sourcefile in cur.fetchall()}


def _reload_until(admin_factory: Any, name: str, value: str) -> None:
    """Reload the configuration and wait until new sessions see `name` = `value`."""
    deadline = time.monotonic() + 30
    while True:
        conn = admin_factory()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_reload_conf()")
                cur.execute("SELECT setting FROM pg_settings WHERE name = %s", (name,))
                if cur.fetchone()[0] == value:
                    return
        finally:
            conn.close()
        assert time.monotonic() < deadline, f"{name} did not become {value!r}"
        time.sleep(0.05)


@contextlib.contextmanager
def _no_standby_ever_answers(admin: Any, admin_factory: Any) -> Iterator[None]:
    """A synchronous standby is named, and never connects. Everyone else keeps
    synchronous_commit = local (no wait); only the held transaction asks for `on`. The
    settings are restored in a finally, which also releases any commit still waiting."""
    names = ("synchronous_commit", "synchronous_standby_names")
    original = _settings(admin, names)
    if original["synchronous_standby_names"][0]:
        pytest.skip("this cluster has synchronous standbys configured")
    try:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM SET synchronous_commit = 'local'")
            cur.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{NOBODY}'")
        _reload_until(admin_factory, "synchronous_standby_names", NOBODY)
        time.sleep(0.3)  # the checkpointer publishes the standby list after its own reload
        yield
    finally:
        with admin.cursor() as cur:
            for name, (setting, sourcefile) in original.items():
                if sourcefile and sourcefile.endswith("postgresql.auto.conf"):
                    value = sql.Literal(setting)
                    cur.execute(
                        sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), value)
                    )
                else:
                    cur.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
        _reload_until(admin_factory, "synchronous_standby_names", "")


@pytest.mark.parametrize(
    ("held", "status", "how"),
    [
        ("results COMMIT, rolled back", "done", "advisory"),
        ("results COMMIT, committed but reply lost", "done", "syncrep"),
        ("claim COMMIT, committed but reply lost", "processing", "syncrep"),
    ],
)
@pytest.mark.exclusive  # names a synchronous standby cluster-wide (ALTER SYSTEM)
def test_pg_terminate_backend_during_commit_creates_no_duplicates(
    held: str,
    status: str,
    how: str,
    postgres_server: Any,
    fresh_postgres_database: str,
    tmp_path: Path,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = postgres_server.url(fresh_postgres_database)
    url = _with_query(canaries.postgres_url(plain), application_name=VICTIM)
    engine = make_engine(url)
    admin = postgres_server.connect(fresh_postgres_database)
    try:
        upgrade(engine)
        store = ResultStore(engine)
        paths = write_shards(tmp_path / "shards", 3, rows=SHARD_ROWS)
        reference = reference_counts(paths, tmp_path)
        with admin.cursor() as cur:
            cur.execute(HOLD_FUNCTION, {"victim": VICTIM, "key": HOLD_KEY})
            trigger = sql.SQL(HOLD_TRIGGER).format(status=sql.Literal(status), how=sql.Literal(how))
            cur.execute(trigger)

        results: list[Any] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                results.extend(ingest(paths, store, owner="victim", alerts=ALERTS))
            except Exception as exc:  # reported below, not as an unhandled thread error
                errors.append(exc)

        victim = threading.Thread(target=run, daemon=True)
        hold = contextlib.ExitStack()
        with caplog.at_level(logging.WARNING, logger="shardwatch.store.retry"), hold:
            if how == "advisory":
                with admin.cursor() as cur:
                    cur.execute("SELECT pg_advisory_lock(%s)", (HOLD_KEY,))
                hold.callback(lambda: admin.cursor().execute("SELECT pg_advisory_unlock_all()"))
                wait_event = "advisory"
            else:
                hold.enter_context(_no_standby_ever_answers(admin, postgres_server.connect))
                wait_event = "SyncRep"
            victim.start()
            pid = _victim_backend(admin, wait_event, victim)
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
                assert cur.fetchone()[0] is True
        victim.join(timeout=60)  # the hold is released: the retries go through
        assert not victim.is_alive()
        assert not errors, errors
        assert "database connection lost" in caplog.text  # the terminate hit; the store retried

        # Every shard done once: one claim, one result set, one notice per alert key.
        assert [r.outcome for r in results] == ["done"] * 3, results
        assert counts_by_uri(engine) == reference
        rows = shards(engine)
        assert [(r["status"], r["attempts"]) for r in rows] == [("done", 1)] * 3
        notices = _notices_per_alert(engine)
        assert notices and set(notices.values()) == {1}, notices
        assert _dataset_alert(engine) == _nsfw_total(paths)
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            assert cur.fetchone()[0] == 0  # that backend is gone; the pool uses new ones
        again = ingest(paths, store, owner="rerun", alerts=ALERTS)
        assert [r.outcome for r in again] == ["skipped"] * 3
        assert counts_by_uri(engine) == reference
        assert _notices_per_alert(engine) == notices

        figure(SCENARIO, f"duplicate rows after pg_terminate_backend in a {held}", 0)
        leaks.database(f"terminate store ({held})", url)
        leaks.text(f"terminate log ({held})", caplog.text)
    finally:
        admin.close()
        engine.dispose()
