"""Scenario 2, schema drift (issue 8; docs/reliability.md).

A renamed, missing, retyped (similarity as text, the label tag as an integer) or extra
column on an otherwise valid shard is classified as schema drift: stored with the shard
version, reported by `report`, its checks errored (never failed), and exactly ONE alert
(`schema-drift`) per drifted shard reaches a real Slack-like receiver through the relay,
once, however often the shards are ingested again. A shard with the right columns and bad
values is a data failure (`validation`), and clean shards in the same run are unaffected.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select
from support.builders import int_tag_table
from support.reliability.drift_shards import (
    CASES,
    DRIFTED,
    ROWS,
    clean_table,
    extra,
    write_case_shards,
)
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import DATASET, SUITES, ingest, run_shardwatch

from shardwatch.alerting.relay import relay_configured
from shardwatch.core.profiles import LAION400M, DatasetProfile
from shardwatch.core.schema import check_schema
from shardwatch.core.validation import Check, ShardValidation, blame_drift
from shardwatch.scan.columns import resolve_columns
from shardwatch.settings.alerts import AlertSettings
from shardwatch.settings.config import load_settings
from shardwatch.store import models as t
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore
from shardwatch.validate.gx_adapter import GxPaths, GxValidator

pytestmark = pytest.mark.integration

SCENARIO = "2 schema drift"


def _canary_url(url: str, canaries: Canaries) -> str:
    return canaries.postgres_url(url) if url.startswith("postgresql") else url


def _alerts(port: int, canaries: Canaries) -> AlertSettings:
    team = {"type": "slack", "webhook_url": canaries.webhook_url(port)}
    return AlertSettings.model_validate({"channels": {"team": team}})


def _slack_lines(bodies: list[dict[str, Any]]) -> list[str]:
    """The item lines of every Slack message received (one section per item)."""
    lines = []
    for body in bodies:
        for block in body["blocks"]:
            if block["type"] == "section":
                lines += [line for line in block["text"]["text"].splitlines() if line.strip()]
    return lines


def _breaches(engine: Any) -> Counter[tuple[str, str]]:
    """(rule, scope) of every breach notice in the outbox, counted."""
    o, a = t.AlertOutbox, t.Alert
    with engine.connect() as conn:
        rows = conn.execute(
            select(a.rule, a.scope, o.state).join(a, a.id == o.alert_id).where(o.kind == "breach")
        ).all()
    assert {r.state for r in rows} <= {"sent"}, rows
    return Counter((r.rule, r.scope) for r in rows)


def test_drift_is_classified_stored_and_alerted_once(
    database_url: str,
    tmp_path: Path,
    slack: Any,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Any,
) -> None:
    url = _canary_url(database_url, canaries)
    paths = write_case_shards(tmp_path / "shards")
    receiver = slack()
    alerts = _alerts(receiver.server.server_address[1], canaries)
    engine = make_engine(url)
    try:
        upgrade(engine)
        store = ResultStore(engine)
        validator = GxValidator(GxPaths(tmp_path / "gx", tmp_path / "docs"), SUITES, "laion400m")
        started = time.monotonic()
        results = ingest(
            paths.values(), store, validator=validator, alerts=alerts.plan(str(tmp_path))
        )
        seconds = time.monotonic() - started
        first = relay_configured(engine, alerts)
        by_name = {name: r for name, r in zip(paths, results, strict=True)}

        # Every shard is stored, the drifted ones too: one bad shard never stops a run.
        assert [r.outcome for r in results] == ["done"] * len(paths)
        for name, result in by_name.items():
            v = result.validation
            assert v is not None and result.schema_drift is not None
            want = CASES[name][1] if name in CASES else None
            if want is None:  # clean columns: no drift; checks as the values deserve
                assert not result.schema_drift
                assert v.drift_errored == 0
                assert v.count("failed") == (1 if name == "data-failure" else 0), v.summary()
                assert v.count("errored") == 0, v.summary()
                continue
            assert result.schema_drift.describe() == want
            # drift is never a data failure: nothing failed; what could not run errored
            assert v.count("failed") == 0, (name, v.summary())
            assert all(c.by_drift for c in v.checks if c.status != "passed"), v.checks
            assert v.count("errored") == v.drift_errored
            if name == "extra":  # an extra column: every check ran and passed
                assert v.success, v.summary()
            else:  # the drift removed a column that checks need (and the column-set check)
                assert v.drift_errored >= 2, (name, v.summary())
                assert {c.reason for c in v.checks if c.by_drift} == {f"schema drift: {want}"}

        # Stored: the drift with its shard version, and in the report.
        with engine.connect() as conn:
            stored: dict[str, Any] = dict(
                conn.execute(select(t.Shard.uri, t.Shard.schema_drift)).all()
            )
        for name, path in paths.items():
            drift = stored[str(path.resolve())]
            want = CASES[name][1] if name in CASES else None
            assert (drift or {}).get("summary") == want
        report = dataset_report(store, DATASET)
        assert report.drifted == len(DRIFTED)
        drifts = {Path(e.uri).name: e.schema_drift for e in report.shards}
        assert drifts == {p.name: CASES[n][1] if n in CASES else None for n, p in paths.items()}
        document = report.to_dict()  # `shardwatch report --json`
        assert document["schema_drift"] == len(DRIFTED)
        assert {Path(e["uri"]).name: e.get("schema_drift") for e in document["shards"]} == drifts
        # A retyped column counts as unavailable, never as data: no similarity from the
        # shards without a usable one, no tag from the integer tag (not 200 x `other`).
        with_similarity = ("good", "extra", "data-failure")
        assert report.total.similarity is not None
        assert report.total.similarity.count == ROWS * len(with_similarity)
        assert report.total.nsfw_flag_counts == {
            "UNLIKELY": ROWS * (len(paths) - 1),
            "UNSURE": 0,
            "NSFW": 0,
            "other": 0,
            "null": 0,
        }
        assert report.total.rows == ROWS * len(paths)

        # ONE alert per drifted shard (schema-drift), one for the data failure (validation),
        # none for the clean shards; all in one Slack message, through the relay.
        breaches = _breaches(engine)
        expected = Counter(
            ("schema-drift" if name in DRIFTED else "validation", f"shard:{paths[name].resolve()}")
            for name in (*DRIFTED, "data-failure")
        )
        assert breaches == expected
        assert first.sent == len(expected) and first.failed == 0
        assert len(receiver.bodies) == 1
        lines = _slack_lines(receiver.bodies)
        assert len(lines) == len(expected), lines
        for name in DRIFTED:
            (line,) = [ln for ln in lines if paths[name].name in ln]
            # Slack mrkdwn: "_" is shown as its lookalike U+02CD, so it cannot italicise
            want = CASES[name][1]
            assert want is not None and "schema-drift" in line
            assert want.replace("_", "\u02cd") in line
        (line,) = [ln for ln in lines if paths["data-failure"].name in ln]
        assert "validation" in line and "schema" not in line
        assert receiver.paths == [f"/services/T000/B000/{canaries.webhook}"]

        # Again, forced (every shard re-read and re-judged): nothing new is sent.
        again = ingest(paths.values(), store, force=True, alerts=alerts.plan(str(tmp_path)))
        assert [r.outcome for r in again] == ["done"] * len(paths)
        assert [bool(r.schema_drift) for r in again] == [n in DRIFTED for n in paths]
        second = relay_configured(engine, alerts)
        assert second.sent == 0 and len(receiver.bodies) == 1
        after = _breaches(engine)
        assert after == expected
        assert dataset_report(store, DATASET).drifted == len(DRIFTED)
        per_drifted = {after[key] for key in expected if key[0] == "schema-drift"}
    finally:
        engine.dispose()

    backend = url.split(":", 1)[0]
    classified = sum(1 for name in DRIFTED if by_name[name].schema_drift)
    figure(
        SCENARIO,
        f"drift cases (renamed, missing, retyped, extra) classified as drift ({backend})",
        f"{classified}/{len(DRIFTED)}",
    )
    figure(
        SCENARIO,
        f"alerts per drifted shard, first run + forced rerun ({backend})",
        "/".join(str(n) for n in sorted(per_drifted)),
    )
    figure(SCENARIO, f"seconds to ingest and validate {len(paths)} shards ({backend})", seconds)
    leaks.database(f"schema drift store ({backend})", url)
    leaks.tree("schema drift GX project and Data Docs", tmp_path)
    leaks.text("schema drift Slack messages", json.dumps(receiver.bodies))


def test_cli_names_the_drift_instead_of_failed_checks(
    fresh_postgres_url: str,
    tmp_path: Path,
    slack: Any,
    canaries: Canaries,
    leaks: LeakWatch,
) -> None:
    """`shardwatch ingest` prints a `schema drift:` line (no pile of failed checks) and exits
    1; `report` lists the drifted shard; one alert for it reaches Slack."""
    url = canaries.postgres_url(fresh_postgres_url)
    paths = write_case_shards(tmp_path / "all")
    folder = tmp_path / "shards"
    folder.mkdir()
    for name in ("good", "renamed", "data-failure"):
        paths[name].rename(folder / paths[name].name)
    receiver = slack()
    env = {
        "SHARDWATCH_DATABASE_URL": url,
        "SHARDWATCH_ALERTS__CHANNELS__TEAM__TYPE": "slack",
        "SHARDWATCH_ALERTS__CHANNELS__TEAM__WEBHOOK_URL": canaries.webhook_url(
            receiver.server.server_address[1]
        ),
    }
    work = tmp_path / "work"
    work.mkdir()
    done = run_shardwatch("ingest", str(folder), "--dataset", "drift", cwd=work, **env)
    leaks.text("schema drift: ingest stdout", done.stdout)
    leaks.text("schema drift: ingest stderr", done.stderr)
    assert done.returncode == 1, done.stderr
    renamed = folder / paths["renamed"].name
    block = done.stdout.split(str(renamed), 1)[1].split("\ndone", 1)[0]
    assert "schema drift: missing: similarity; unexpected: simlarity" in block
    assert "FAILED" not in block
    assert "ERRORED 2 check(s) by the schema drift" in block
    assert "FAILED  expect_column_values_to_be_between on width" in done.stdout
    assert "alerts: 2 to team" in done.stderr

    shown = run_shardwatch("report", "--dataset", "drift", cwd=work, **env)
    leaks.text("schema drift: report stdout", shown.stdout)
    leaks.text("schema drift: report stderr", shown.stderr)
    assert shown.returncode == 0, shown.stderr
    assert "1 with schema drift" in shown.stdout
    assert f"schema drift: {renamed} v1: missing: similarity; unexpected: simlarity" in (
        shown.stdout
    )

    lines = _slack_lines(receiver.bodies)
    assert len(receiver.bodies) == 1 and len(lines) == 2, lines
    assert sorted(line.split("] ", 1)[1].split(" ", 1)[0] for line in lines) == [
        "schema-drift",
        "validation",
    ]
    leaks.text("schema drift: CLI Slack messages", json.dumps(receiver.bodies))
    leaks.tree("schema drift: CLI working folder", work)
    leaks.database("schema drift: CLI store", url)


@pytest.mark.parametrize("name", ["renamed", "retyped"])
def test_drift_without_validation_still_alerts_once(
    name: str, tmp_path: Path, slack: Any, canaries: Canaries, leaks: LeakWatch
) -> None:
    """With GX off (`--no-validate`) the drift is still found, stored and alerted."""
    paths = write_case_shards(tmp_path / "shards")
    receiver = slack()
    alerts = _alerts(receiver.server.server_address[1], canaries)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        store = ResultStore(engine)
        for _ in range(2):
            (result,) = ingest([paths[name]], store, force=True, alerts=alerts.plan())
            assert result.outcome == "done" and result.validation is None
            assert result.schema_drift is not None
            assert result.schema_drift.describe() == CASES[name][1]
            relay_configured(engine, alerts)
        assert _breaches(engine) == Counter({("schema-drift", f"shard:{paths[name].resolve()}"): 1})
        assert len(receiver.bodies) == 1
    finally:
        engine.dispose()
    leaks.database(f"schema drift without validation ({name})", url)


def test_what_counts_as_drift(tmp_path: Path, leaks: LeakWatch) -> None:
    """The edges of the classification, without GX: accepted layouts are not drift; hostile
    column names are shown on one short line; checks are blamed only for what drift removed."""
    clean = clean_table(3)
    assert not check_schema(clean.schema, LAION400M, _present(clean))[0]
    # Accepted as they are: float ids and sizes, float32 similarity, dictionary-encoded
    # tags, an all-null column, pandas' index column, other letter case.
    varied = pa.table(
        {
            "sample_id": pa.array([1.0, 2.0]),
            "URL": ["https://a.example/1", None],
            "TEXT": pa.array(["a", "b"]).dictionary_encode(),
            "HEIGHT": pa.array([1, 2], pa.int32()),
            "WIDTH": pa.array([None, None], pa.null()),
            "LICENSE": pa.array([b"?", b"?"]),
            "NSFW": pa.array(["UNLIKELY", "NSFW"]).dictionary_encode(),
            "similarity": pa.array([0.5, 0.6], pa.float32()),
            "__index_level_0__": [0, 1],
        }
    )
    assert not check_schema(varied.schema, LAION400M, _present(varied))[0]
    # Integer tags are fine where the labels are integers (and only there).
    table, int_profile = int_tag_table()
    assert not check_schema(table.schema, int_profile, _present(table, int_profile))[0]
    # CSV/TSV fields are all text by design: no type is judged there.
    as_text = pa.table(
        {n: pa.array([str(v).encode() for v in clean[n].to_pylist()]) for n in clean.column_names}
    )
    assert not check_schema(as_text.schema, LAION400M, _present(as_text), typed=False)[0]
    drift, usable = check_schema(as_text.schema, LAION400M, _present(as_text))
    assert {r.column for r in drift.retyped} == {"HEIGHT", "WIDTH", "similarity"}  # ids: text ok
    assert "similarity" not in usable and usable["nsfw_tag"] == "NSFW"

    # Hostile names: stored verbatim, shown quoted and cut, each list capped.
    names = ["<!channel>", "a\nb", "x" * 5000, *(f"extra_{i}" for i in range(20))]
    hostile = clean.drop_columns(["TEXT"])
    for name in names:
        hostile = hostile.append_column(name, pa.array([1] * hostile.num_rows))
    drift, _ = check_schema(hostile.schema, LAION400M, _present(hostile))
    assert drift.unexpected == tuple(names) and drift.missing == ("TEXT",)
    line = drift.describe()
    assert "\n" not in line and len(line) < 400 and "and 15 more" in line
    assert "'a\\nb'" in line and f"'{'x' * 64}'..." in line
    assert drift.to_dict()["unexpected"][:3] == names[:3] and drift.columns == 24
    leaks.text("schema drift: hostile column names", line)

    # A config profile inherits other_columns, or sets its own.
    config = tmp_path / "shardwatch.toml"
    config.write_text(
        '[profiles.mine]\nextends = "laion400m"\n'
        '[profiles.wide]\nextends = "laion400m"\nother_columns = ["caption_lang"]\n'
    )
    settings = load_settings(config)
    wide = extra(clean)
    assert check_schema(wide.schema, settings.dataset_profile("mine"), _present(wide))[0]
    assert not check_schema(wide.schema, settings.dataset_profile("wide"), _present(wide))[0]

    # Blame: errored checks on removed features (column or row condition) and the column
    # set missing only those; a data failure and GX's own crash stay what they were.
    drift, _ = check_schema(hostile.schema, LAION400M, _present(hostile))
    checks = (
        Check(0, "expect_table_columns_to_match_set", None, None, "failed",
              {"observed_value": ["id", "keyword_nsfw"]}, {"column_set": ["id", "term_desi"]}),
        Check(1, "expect_column_values_to_not_be_in_set", "keyword_nsfw", "term_desi == True",
              "errored", None, None, "column term_desi does not exist"),
        Check(2, "expect_column_values_to_be_between", "width", None, "failed", None, None),
        Check(3, "validation", None, None, "errored", None, None, "RuntimeError: boom"),
        Check(4, "expect_table_columns_to_match_set", None, None, "failed",
              {"observed_value": ["id"]}, {"column_set": ["id", "similarity"]}),
    )  # fmt: skip
    blamed = blame_drift(ShardValidation("laion400m", "run", checks), drift)
    assert [c.status for c in blamed.checks] == [
        "errored",
        "errored",
        "failed",
        "errored",
        "failed",
    ]
    assert [c.by_drift for c in blamed.checks] == [True, True, False, False, False]
    assert blamed.drift_errored == 2 and "(2 by schema drift)" in blamed.summary()


def _present(table: pa.Table, profile: DatasetProfile = LAION400M) -> dict[Any, str]:
    return dict(resolve_columns(table.column_names, profile).present)
