"""ingest.py against SQLite and PostgreSQL: idempotency, versions, failures, atomic writes, and
exactly-once processing across OS processes (a race, and a worker killed mid-transaction)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from support.builders import adversarial_table, write_shard
from support.clocks import LONG_LEASE, expire_lease
from support.store_checks import (
    DATASET,
    SHARD_RESULT_TABLES,
    as_utc,
    ingest,
    shard_result_counts,
    shard_state,
    shards,
    start_worker,
    table_counts,
    write_shards,
)

from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

NO_ROWS = dict.fromkeys(SHARD_RESULT_TABLES, 0)


def outcomes(results: list[Any]) -> list[str]:
    return [r.outcome for r in results]


# -- idempotency and versions ----------------------------------------------------------------


def test_reingesting_identical_content_changes_nothing(store: ResultStore, tmp_path: Path) -> None:
    paths = write_shards(tmp_path, 3)
    first = ingest(paths, store)
    assert outcomes(first) == ["done"] * 3
    before = table_counts(store.engine)
    assert before["shards"] == 3 and before["shard_metrics"] == 3 and before["term_metrics"] > 0

    second = ingest(paths, store)
    assert outcomes(second) == ["skipped"] * 3
    assert [(r.shard_id, r.version) for r in second] == [(r.shard_id, r.version) for r in first]
    assert table_counts(store.engine) == before
    assert [s["attempts"] for s in shards(store.engine)] == [1, 1, 1]


def test_force_reprocesses_and_keeps_one_row_set(store: ResultStore, tmp_path: Path) -> None:
    paths = write_shards(tmp_path, 2)
    first = ingest(paths, store)
    before = table_counts(store.engine)
    per_shard = {r.shard_id or 0: shard_result_counts(store.engine, r.shard_id or 0) for r in first}

    forced = ingest(paths, store, force=True)
    assert outcomes(forced) == ["done", "done"]
    assert [r.shard_id for r in forced] == [r.shard_id for r in first]
    assert table_counts(store.engine) == before
    for shard_id, counts in per_shard.items():
        assert shard_result_counts(store.engine, shard_id) == counts
        assert counts["shard_metrics"] == 1
    assert [s["attempts"] for s in shards(store.engine)] == [2, 2]


def test_changed_content_under_the_same_path_is_a_new_version(
    store: ResultStore, tmp_path: Path
) -> None:
    path = write_shard(adversarial_table(80, 1), tmp_path, "part-00000.parquet")
    (v1,) = ingest([path], store)
    v1_rows = shard_result_counts(store.engine, v1.shard_id or 0)

    write_shard(adversarial_table(95, 2), tmp_path, "part-00000.parquet")  # same path
    (v2,) = ingest([path], store)
    assert (v2.outcome, v2.version, v1.version) == ("done", 2, 1)
    assert v2.shard_id != v1.shard_id and v2.uri == v1.uri

    rows = shards(store.engine)
    assert [(r["version"], r["status"]) for r in rows] == [(1, "done"), (2, "done")]
    assert shard_result_counts(store.engine, v1.shard_id or 0) == v1_rows  # old version kept
    assert shard_result_counts(store.engine, v2.shard_id or 0)["shard_metrics"] == 1
    assert outcomes(ingest([path], store)) == ["skipped"]


# -- failures ---------------------------------------------------------------------------------


def test_unreadable_inputs_fail_with_a_reason_and_the_rest_are_done(
    store: ResultStore, tmp_path: Path
) -> None:
    good = write_shards(tmp_path / "good", 2)
    missing = tmp_path / "missing.parquet"
    directory = tmp_path / "a-directory.parquet"
    directory.mkdir()
    results = ingest([good[0], missing, directory, good[1]], store)
    assert outcomes(results) == ["done", "failed", "failed", "done"]
    assert results[1].reason == "no such file"
    assert results[2].reason and "directory" in results[2].reason
    # Without content there is no natural key: nothing is stored for them.
    assert [r["uri"] for r in shards(store.engine)] == [str(p.resolve()) for p in good]


def test_a_file_that_is_not_parquet_is_quarantined_before_decoding(
    store: ResultStore, tmp_path: Path
) -> None:
    good = write_shards(tmp_path, 1)[0]
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not a parquet file " * 40)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    results = ingest([garbage, good, truncated], store)
    assert outcomes(results) == ["quarantined", "done", "quarantined"]
    for result in (results[0], results[2]):
        state = shard_state(store.engine, result.shard_id or 0)
        assert state["status"] == "quarantined"
        assert state["reason"] == result.reason
        assert state["reason"].startswith("refused before decoding: not a parquet file")
        assert (state["attempts"], state["lease_owner"]) == (1, None)
        assert shard_result_counts(store.engine, result.shard_id or 0) == NO_ROWS

    again = ingest([garbage, good, truncated], store)  # unchanged content: not re-read
    assert outcomes(again) == ["quarantined", "skipped", "quarantined"]
    assert again[0].reason and "quarantined earlier" in again[0].reason
    assert shard_state(store.engine, results[0].shard_id or 0)["attempts"] == 1
    forced = ingest([garbage], store, force=True)  # --force checks it again
    assert outcomes(forced) == ["quarantined"]
    assert shard_state(store.engine, results[0].shard_id or 0)["attempts"] == 2


def test_without_the_footer_check_a_file_that_is_not_parquet_fails_when_read(
    store: ResultStore, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not a parquet file " * 40)
    results = ingest([garbage], store, footer=None)  # a caller that checked it already
    assert outcomes(results) == ["failed"]
    state = shard_state(store.engine, results[0].shard_id or 0)
    assert state["status"] == "failed" and "not a readable parquet file" in state["reason"]
    again = ingest([garbage], store, footer=None)  # failed shards are retried
    assert outcomes(again) == ["failed"]
    assert shard_state(store.engine, results[0].shard_id or 0)["attempts"] == 2


# -- atomicity --------------------------------------------------------------------------------


class Crash(Exception):
    pass


def test_an_error_inside_the_transaction_writes_nothing(store: ResultStore, tmp_path: Path) -> None:
    (path,) = write_shards(tmp_path, 1)

    def crash(session: Session) -> None:
        raise Crash("dies between the metric rows and the commit")

    with pytest.raises(Crash):
        ingest([path], store, before_commit=crash, owner="crasher", lease_seconds=LONG_LEASE)
    (row,) = shards(store.engine)
    assert shard_result_counts(store.engine, row["id"]) == NO_ROWS
    state = shard_state(store.engine, row["id"])
    assert (state["status"], state["lease_owner"], state["attempts"]) == (
        "processing",
        "crasher",
        1,
    )
    (busy,) = ingest([path], store, owner="retrier")
    assert busy.outcome == "busy"  # the crashed worker's lease still holds
    expire_lease(store.engine, row["id"])
    (retry,) = ingest([path], store, owner="retrier")
    assert retry.outcome == "done"
    state = shard_state(store.engine, row["id"])
    assert (state["status"], state["attempts"]) == ("done", 2)
    assert shard_result_counts(store.engine, row["id"])["shard_metrics"] == 1


# -- several OS processes ---------------------------------------------------------------------


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _wait_for(path: Path, procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"worker exited {proc.returncode} early:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def _reap(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_three_processes_race_over_50_shards_exactly_once(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL only: SQLite serialises writers and is documented as one process.

    The workers also judge alert rules: the dataset's alert, written by whichever worker
    committed last, holds the exact total over all 50 shards, and every alert key has
    exactly one notice."""
    url = fresh_postgres_url
    engine = make_engine(url)
    try:
        upgrade(engine)
        paths = write_shards(tmp_path / "shards", 50, rows=60)
        go = tmp_path / "go"
        owners = [f"racer-{i}" for i in range(3)]
        procs = [
            start_worker(
                url,
                paths,
                *("--owner", owner, "--seed", str(i), "--lease", "30"),
                *("--alerts", "--delay", "0.02"),
                *("--ready", str(tmp_path / f"{owner}.ready"), "--go", str(go)),
            )
            for i, owner in enumerate(owners)
        ]
        try:
            for owner in owners:
                _wait_for(tmp_path / f"{owner}.ready", procs)
            go.touch()  # all three start together
            outputs = [proc.communicate(timeout=120) for proc in procs]
        finally:
            _reap(procs)

        done_by: dict[str, list[int]] = {}
        kinds_by: dict[str, dict[str, int]] = {}
        for owner, proc, (out, err) in zip(owners, procs, outputs, strict=True):
            assert proc.returncode == 0, f"{owner}: {err}"
            results = [json.loads(line) for line in out.splitlines()]
            assert len(results) == 50, f"{owner}: {out}"
            kinds = Counter(r["outcome"] for r in results)
            assert set(kinds) <= {"done", "busy", "skipped"}, f"{owner}: {kinds}"
            kinds_by[owner] = dict(kinds)
            done_by[owner] = [r["shard_id"] for r in results if r["outcome"] == "done"]
        per_worker = {owner: len(ids) for owner, ids in done_by.items()}
        everything = [i for ids in done_by.values() for i in ids]
        note = f"per-worker processing counts {per_worker} (sum {sum(per_worker.values())})"
        print(f"\nrace: {note}; outcomes {kinds_by}")
        assert len(everything) == 50 and len(set(everything)) == 50, note

        rows = shards(engine)
        counts = table_counts(engine)
        per_shard = Counter(r["attempts"] for r in rows)
        print(f"race: processings per shard {dict(per_shard)} (attempts -> shards)")
        assert len(rows) == 50 and counts["shard_metrics"] == 50, (counts, note)
        assert {r["status"] for r in rows} == {"done"}, note
        assert per_shard == {1: 50}, note
        assert {r["id"] for r in rows} == set(everything)
        assert counts["datasets"] == 1

        tagged = [pq.read_table(p, columns=["NSFW"]).column(0).to_pylist() for p in paths]
        nsfw = [tags.count("NSFW") for tags in tagged]
        with engine.connect() as conn:
            alert_rows = conn.execute(text("SELECT scope, detail, breaching FROM alerts")).all()
            per_key = conn.execute(
                text("SELECT alert_id, count(*) FROM alert_outbox GROUP BY alert_id")
            ).all()
        details = {scope: (detail, breaching) for scope, detail, breaching in alert_rows}
        total_rows = sum(len(tags) for tags in tagged)
        assert details["dataset"] == (f"{sum(nsfw)} of {total_rows}", sum(nsfw) > 0)
        assert len(details) == 1 + sum(1 for n in nsfw if n)  # the dataset + breaching shards
        assert len(per_key) == len(details) and {n for _, n in per_key} == {1}, per_key
        # The sums the last pass kept cover all 50 shards, and the report reads them.
        store = ResultStore(engine)
        assert store.verify_total(DATASET)
        assert dataset_report(store, DATASET).total.rows == total_rows
    finally:
        engine.dispose()


KILL_LEASE = LONG_LEASE


def test_a_worker_killed_mid_transaction_leaves_no_partial_rows(
    migrated_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    engine = migrated_engine
    (path,) = write_shards(tmp_path / "shards", 1, rows=150)
    hang = tmp_path / "in-transaction.json"
    proc = start_worker(
        database_url, [path], "--owner", "doomed", "--lease", str(KILL_LEASE), "--hang", str(hang)
    )
    try:
        _wait_for(hang, [proc])
        inside = json.loads(hang.read_text())["uncommitted"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _reap([proc])
    assert proc.returncode == -signal.SIGKILL

    (row,) = shards(engine)
    after_kill = shard_result_counts(engine, row["id"])
    state = shard_state(engine, row["id"])
    backend = engine.dialect.name
    print(f"\nkill [{backend}]: rows in the transaction {inside}; after SIGKILL {after_kill}")
    assert inside["shard_metrics"] == 1 and inside["term_metrics"] > 0  # it was mid-write
    assert after_kill == NO_ROWS
    assert table_counts(engine)["alert_outbox"] == 0
    assert (state["status"], state["lease_owner"], state["attempts"]) == (
        "processing",
        "doomed",
        1,
    )

    store = ResultStore(engine)
    expires = as_utc(state["lease_expires_at"])
    assert datetime.now(UTC) < expires, "the lease ran out before the check: machine too slow"
    (second,) = ingest([path], store, owner="second")
    assert second.outcome == "busy"
    assert shard_state(engine, row["id"])["attempts"] == 1

    expire_lease(engine, row["id"])
    (third,) = ingest([path], store, owner="third")
    assert third.outcome == "done"
    state = shard_state(engine, row["id"])
    assert (state["status"], state["attempts"], state["lease_owner"]) == ("done", 2, None)
    final = shard_result_counts(engine, row["id"])
    print(f"kill [{backend}]: after the lease expired and a new worker ran {final}")
    assert final == inside  # the same rows, written once
    assert table_counts(engine)["shards"] == 1


# -- validation in the shard's transaction ----------------------------------------------------


def _validator(tmp_path: Path) -> Any:
    from shardwatch.validate.gx_adapter import GxPaths, GxValidator

    suites = Path(__file__).resolve().parents[3] / "expectations"
    return GxValidator(GxPaths(tmp_path / "gx", tmp_path / "docs"), suites, "laion400m")


def _validation_rows(engine: Engine, shard_id: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from shardwatch.store.models import ValidationResult

    query = select(ValidationResult).where(ValidationResult.shard_id == shard_id)
    with Session(engine) as s:
        rows = s.scalars(query.order_by(ValidationResult.position)).all()
        return [{c.name: getattr(r, c.key) for c in r.__mapper__.columns} for r in rows]


def test_validation_checks_are_stored_with_the_shard(store: ResultStore, tmp_path: Path) -> None:
    source = adversarial_table(600, 21, int_ids=True).drop_columns(["similarity"])
    path = write_shard(source, tmp_path)
    validator = _validator(tmp_path)
    (result,) = ingest([path], store, validator=validator)
    assert result.outcome == "done" and result.validation is not None
    v = result.validation
    rows = _validation_rows(store.engine, result.shard_id or 0)
    assert len(rows) == len(v.checks) > 20
    by_status = Counter(
        "errored" if r["errored"] else ("passed" if r["success"] else "failed") for r in rows
    )
    assert by_status == Counter(c.status for c in v.checks)
    # The missing column is schema drift: the checks it kept from running (on similarity,
    # and the column-set check) are errored with the drift as the reason, never failed.
    assert by_status["errored"] == 2 and by_status["failed"] >= 1
    errored = [r for r in rows if r["errored"]]
    assert sorted(str(r["column"]) for r in errored) == ["None", "similarity"]
    assert all(r["success"] is None for r in errored)
    assert {r["error_message"] for r in errored} == {"schema drift: missing: similarity"}
    assert result.schema_drift is not None and result.schema_drift.missing == ("similarity",)
    failed = next(r for r in rows if r["success"] is False and r["column"] == "nsfw_tag")
    assert failed["observed_value"]["unexpected_count"] > 0
    assert failed["threshold"]["value_set"]
    term = next(r for r in rows if r["condition"] == "term_desi == True")
    assert term["threshold"] == {"mostly": 0.75, "value_set": [True]}
    state = shard_state(store.engine, result.shard_id or 0)
    assert state["docs_page"] == v.docs_page and Path(v.docs_page or "").is_file()


def test_a_crash_before_commit_stores_no_checks_and_publishes_no_page(
    store: ResultStore, tmp_path: Path
) -> None:
    (path,) = write_shards(tmp_path, 1)
    validator = _validator(tmp_path)

    def crash(session: Session) -> None:
        raise Crash("dies after the validation rows were added")

    with pytest.raises(Crash):
        ingest([path], store, validator=validator, before_commit=crash, lease_seconds=LONG_LEASE)
    (row,) = shards(store.engine)
    assert shard_result_counts(store.engine, row["id"]) == NO_ROWS
    assert shard_state(store.engine, row["id"])["docs_page"] is None
    index = validator.build_docs(clean=True)
    assert not list((index.parent / "validations").rglob("*.html"))
    expire_lease(store.engine, row["id"])
    (retry,) = ingest([path], store, validator=validator)
    assert retry.outcome == "done"
    assert retry.validation is not None
    assert len(_validation_rows(store.engine, row["id"])) == len(retry.validation.checks)
    assert len(list((index.parent / "validations").rglob("*.html"))) == 1


def test_a_validator_crash_is_one_errored_check_and_the_run_goes_on(
    store: ResultStore, tmp_path: Path
) -> None:
    paths = write_shards(tmp_path, 2)

    class Broken:
        suite = "laion400m"

        def validate(self, *args: Any) -> Any:
            raise RuntimeError("GX exploded")

        def publish(self, validation: Any) -> None:
            pass

        def discard(self, validation: Any) -> None:
            pass

    results = ingest(paths, store, validator=Broken())
    assert outcomes(results) == ["done", "done"]
    for r in results:
        (row,) = _validation_rows(store.engine, r.shard_id or 0)
        assert row["errored"] and row["success"] is None  # errored, not a failed check
        assert row["error_message"] == "validation could not run: RuntimeError: GX exploded"
        assert r.validation is not None and r.validation.not_run == row["error_message"]
