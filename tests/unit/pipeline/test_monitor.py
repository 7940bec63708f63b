"""The monitor's stages without Prefect: discovery compares listings with the store (checksum,
ETag and size, size and mtime), copies are held back and quarantined, a bad shard is recorded
and settled, a failed download is retried, and only the cache's own files are deleted."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.builders import tagged_table, write_shard

from shardwatch.acquire.sources import RemoteShard
from shardwatch.pipeline.monitor import discover, is_settled, process
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import Settings, load_settings
from shardwatch.store.shard_versions import StoredShard, unfetched_hash

SHA = "a" * 64


def stored(
    status: str = "done",
    sha: str = SHA,
    size: int | None = 10,
    etag: str | None = None,
    mtime: datetime | None = None,
) -> StoredShard:
    return StoredShard("u", 1, status, sha, size, etag, mtime, None)


def listed(
    sha: str | None = None,
    size: int | None = 10,
    etag: str | None = None,
    mtime: datetime | None = None,
) -> RemoteShard:
    return RemoteShard("s", "u", "u.parquet", size, etag, sha, mtime)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("shard", "row", "settled"),
    [
        (listed(sha=SHA), None, False),  # never seen
        (listed(sha=SHA), stored(), True),
        (listed(sha="b" * 64), stored(), False),  # new content
        (listed(sha=SHA), stored("processing"), False),  # a crashed claim: retry
        (listed(sha=SHA), stored("failed"), True),  # failed on its own bytes: settled
        (listed(etag="e1"), stored(etag="e1"), True),
        (listed(etag="e2"), stored(etag="e1"), False),
        (listed(etag="e1", size=11), stored(etag="e1"), False),
        (
            listed(mtime=datetime(2026, 1, 1, tzinfo=UTC)),
            stored(mtime=datetime(2026, 1, 1)),
            True,
        ),  # SQLite hands back naive UTC
        (
            listed(mtime=datetime(2026, 1, 2, tzinfo=UTC)),
            stored(mtime=datetime(2026, 1, 1, tzinfo=UTC)),
            False,
        ),
        (listed(size=12), stored(), False),
        # a download refused for good stays settled while the listing is unchanged ...
        (listed(size=10), stored("quarantined", unfetched_hash("u", 10, None)), True),
        # ... a failed download is retried; a changed listing is tried again
        (listed(size=10), stored("failed", unfetched_hash("u", 10, None)), False),
        (listed(size=11), stored("quarantined", unfetched_hash("u", 10, None)), False),
    ],
)
def test_is_settled(shard: RemoteShard, row: StoredShard | None, settled: bool) -> None:
    assert is_settled(shard, row) is settled


def settings_for(tmp_path: Path, pattern: str, **extra: str) -> Settings:
    cfg = tmp_path / "shardwatch.toml"
    body = "\n".join(f"{k} = {v}" for k, v in extra.items())
    cfg.write_text(f"""
dataset = "local"
database_url = "sqlite:///{tmp_path / "store.sqlite"}"
{body}
[validation]
enabled = false
[alerts]
enabled = false
[download]
cache_dir = "{tmp_path / "cache"}"
[sources.files]
type = "local"
path = "{pattern}"
""")
    return load_settings(cfg)


def run_pass(settings: Settings) -> list[str]:
    res = Resources(settings)
    found = discover(res)
    outcomes = [process(res, s, None) for s in (*found.new, *found.later)]
    res.close()
    return sorted(f"{Path(o.uri).name}:{o.outcome}" for o in outcomes)


@pytest.mark.unit
def test_local_pass_stores_skips_and_quarantines_without_touching_sources(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    a = write_shard(tagged_table(50, 5, seed=1), data, "a.parquet")
    shutil.copy(a, data / "copy.parquet")  # the same bytes under another name
    (data / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    settings = settings_for(tmp_path, str(data))
    assert run_pass(settings) == [
        "a.parquet:done",
        "bad.parquet:quarantined",
        "copy.parquet:quarantined",
    ]
    assert a.is_file() and (data / "copy.parquet").is_file()  # sources are never deleted
    found = discover(Resources(settings))
    assert found.new == () and found.later == () and found.unchanged == 3
    os.utime(a, (1_700_000_000, 1_700_000_000))  # touched: compared again, same content
    assert run_pass(settings) == ["a.parquet:skipped"]
    write_shard(tagged_table(60, 0, seed=2), data, "a.parquet")  # new content
    assert run_pass(settings) == ["a.parquet:done"]


@pytest.mark.unit
def test_a_failed_fetch_is_recorded_and_retried_next_pass(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    a = write_shard(tagged_table(50, 5, seed=1), data, "a.parquet")
    res = Resources(settings_for(tmp_path, str(data)))
    (shard,) = discover(res).new
    a.rename(data / "gone")  # listed, then vanished before the fetch
    outcome = process(res, shard, None)
    assert outcome.outcome == "failed" and "fetch failed" in (outcome.reason or "")
    (data / "gone").rename(a)
    (again,) = discover(res).new  # a failed fetch is not settled
    assert process(res, again, None).outcome == "done"


@pytest.mark.integration
def test_the_store_pool_fits_the_monitor_concurrency(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """Each shard in flight holds a connection while its transaction waits for the dataset's
    alert lock, so the pool is at least `monitor.concurrency` + 1 (the run's bookkeeping)."""
    for concurrency, expected in ((2, 5), (24, 25)):
        settings = settings_for(tmp_path, str(tmp_path))
        settings = settings.model_copy(
            update={
                "database_url": type(settings.database_url)(
                    f"{fresh_postgres_url}?application_name=c{concurrency}"
                ),
                "monitor": settings.monitor.model_copy(update={"concurrency": concurrency}),
            }
        )
        res = Resources(settings)
        assert res.store.engine.pool.size() == expected  # type: ignore[attr-defined]
        res.close()


@pytest.mark.unit
def test_a_monitor_pass_links_its_alerts_to_its_report_and_names_shards_by_file(
    tmp_path: Path,
) -> None:
    """The monitor pass writes `run-N.html`, so its notices link to it below
    `[alerts] reports_base_url` (`ingest`'s do not: tests/integration/cli/test_cli_alerts.py)."""
    import json

    from shardwatch.pipeline.monitor import judge, relay_alerts, start

    data = tmp_path / "data"
    data.mkdir()
    write_shard(tagged_table(100, 20, seed=1), data, "a.parquet")
    log = tmp_path / "alerts.jsonl"
    base = settings_for(tmp_path, str(data))
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(cfg.read_text().replace("[alerts]\nenabled = false\n", f"""[alerts]
reports_base_url = "https://example.org/sw/reports"
[alerts.channels.log]
type = "file"
path = "{log}"
[alerts.rules.nsfw-tag-rate]
min_support = 10
"""))
    settings = load_settings(cfg)
    assert settings.alerts.enabled and not base.alerts.enabled
    res = Resources(settings)
    run_id = start(res)
    (shard,) = discover(res).new
    outcome = process(res, shard, run_id)
    assert outcome.outcome == "done"
    assert "1 to log" in relay_alerts(res)  # the shard's: its commit judged it
    judge(res, run_id, [outcome])  # the dataset's rules, once per pass, as the flow does
    assert "1 to log" in relay_alerts(res)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["scope"] for r in rows} == {"shard a.parquet", "dataset (latest shard versions)"}
    assert {r["report"] for r in rows} == {f"https://example.org/sw/reports/run-{run_id}.html"}
    assert {r["link"] for r in rows} == {None}  # validation is off: no Data Docs page
    assert str(tmp_path) not in log.read_text()


@pytest.mark.unit
def test_the_footer_is_checked_once_per_shard_on_the_monitor_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetch stage reads the footer (and scans the pages); ingest reuses its verdict."""
    from shardwatch.acquire import footer
    from shardwatch.pipeline import ingest, monitor

    calls: list[Path] = []

    def counted(path: Path, limits: footer.FooterLimits) -> object:
        calls.append(path)
        return footer.check_footer(path, limits)

    monkeypatch.setattr(monitor, "check_footer", counted)
    monkeypatch.setattr(ingest, "check_footer", counted)
    data = tmp_path / "data"
    data.mkdir()
    write_shard(tagged_table(50, 5, seed=1), data, "a.parquet")
    res = Resources(settings_for(tmp_path, str(data)))
    (shard,) = discover(res).new
    assert process(res, shard, None).outcome == "done"
    assert [p.name for p in calls] == ["a.parquet"]
    res.close()


@pytest.mark.unit
def test_resources_sent_to_a_worker_become_its_one_resources_with_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each task's pickled `Resources` lands as its worker process's one `Resources` for
    those settings (one store, one validator per process), with paths that do not depend
    on the worker's folder."""
    import pickle

    monkeypatch.chdir(tmp_path)
    settings = settings_for(tmp_path, str(tmp_path)).model_copy(update={"state_dir": Path("s")})
    first = pickle.loads(pickle.dumps(Resources(settings)))
    second = pickle.loads(pickle.dumps(Resources(settings)))
    assert first is second
    assert first.settings.state_dir == tmp_path.resolve() / "s"
    other = settings.model_copy(update={"dataset": "other"})
    assert pickle.loads(pickle.dumps(Resources(other))) is not first
