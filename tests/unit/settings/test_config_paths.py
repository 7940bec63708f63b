"""Config paths: `state_dir` and everything below it, and relative paths in a config file
resolved against the file's folder (the environment's against the current directory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shardwatch.present.artifacts import report_path
from shardwatch.settings.config import load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run in an empty directory with no SHARDWATCH_* variables."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in [n for n in os.environ if n.startswith("SHARDWATCH_")]:
        monkeypatch.delenv(name)


def test_without_a_config_file_everything_is_below_dot_shardwatch_here() -> None:
    s = load_settings()
    state = Path(".shardwatch")
    assert s.state_dir == state
    assert s.database_url.get_secret_value() == "sqlite:///.shardwatch/shardwatch.sqlite"
    assert s.download.cache_dir == state / "cache"
    assert (s.validation.gx_dir, s.validation.docs_dir) == (state / "gx", state / "docs")
    assert s.reports_dir == state / "reports"
    assert report_path(s, 4) == state / "reports" / "run-4.html"
    assert s.validation.suites_dir is None  # the packaged default suites only


def test_state_dir_moves_every_default_and_explicit_settings_stay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHARDWATCH_STATE_DIR", "/srv/sw")
    monkeypatch.setenv("SHARDWATCH_VALIDATION__DOCS_DIR", "site")
    s = load_settings(alerts={"channels": {"log": {"type": "file"}}})
    assert s.state_dir == Path("/srv/sw")
    assert s.database_url.get_secret_value() == "sqlite:////srv/sw/shardwatch.sqlite"
    assert s.download.cache_dir == Path("/srv/sw/cache")
    assert s.validation.gx_dir == Path("/srv/sw/gx")
    assert s.validation.docs_dir == Path("site")  # set on its own: relative to the cwd
    log = s.alerts.channels["log"]
    assert log.type == "file" and log.path == Path("/srv/sw/alerts.jsonl")


def test_relative_paths_in_a_config_file_resolve_against_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "shardwatch.toml").write_text(
        'database_url = "sqlite:///db/results.sqlite"\n'
        "[validation]\n"
        'suites_dir = "my-suites"\n'
        'docs_dir = "/abs/docs"\n'
        "[download]\n"
        'cache_dir = "../cache"\n'
        "[sources.here]\n"
        'type = "local"\n'
        'path = "shards/*.parquet"\n'
        "[alerts.channels.log]\n"
        'type = "file"\n'
        'path = "log/alerts.jsonl"\n'
        "[alerts.channels.other]\n"
        'type = "file"\n'
    )
    # a relative --config: the folder is taken from where the file is, not from the cwd
    s = load_settings(os.path.relpath(folder / "shardwatch.toml"))
    assert s.state_dir == folder / ".shardwatch"  # the default sits beside the file
    assert s.database_url.get_secret_value() == f"sqlite:///{folder}/db/results.sqlite"
    assert s.validation.suites_dir == folder / "my-suites"
    assert s.validation.docs_dir == Path("/abs/docs")
    assert s.validation.gx_dir == folder / ".shardwatch" / "gx"
    assert s.download.cache_dir == folder / ".." / "cache"
    assert s.reports_dir == folder / ".shardwatch" / "reports"
    source = s.sources["here"]
    assert source.type == "local" and source.path == str(folder / "shards" / "*.parquet")
    channels = s.alerts.channels
    assert channels["log"].type == "file" and channels["log"].path == folder / "log/alerts.jsonl"
    assert channels["other"].type == "file"
    assert channels["other"].path == folder / ".shardwatch" / "alerts.jsonl"


def test_a_state_dir_in_the_file_is_resolved_and_the_environment_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text('state_dir = "state"\ndatabase_url = "sqlite:///:memory:"\n')
    s = load_settings(cfg)
    assert s.state_dir == tmp_path / "state"
    assert s.download.cache_dir == tmp_path / "state" / "cache"
    assert s.database_url.get_secret_value() == "sqlite:///:memory:"  # not a file: unchanged

    monkeypatch.setenv("SHARDWATCH_STATE_DIR", "elsewhere")
    s = load_settings(cfg)
    assert s.state_dir == Path("elsewhere")  # the environment is relative to the cwd
    assert s.validation.gx_dir == Path("elsewhere") / "gx"


def test_server_urls_and_absolute_sqlite_urls_are_left_alone(tmp_path: Path) -> None:
    cfg = tmp_path / "shardwatch.toml"
    for url in ("postgresql://u:p@db:5432/x", "sqlite:////var/x.sqlite"):
        cfg.write_text(f'database_url = "{url}"\n')
        assert load_settings(cfg).database_url.get_secret_value() == url


def test_settings_sent_to_a_worker_carry_absolute_paths(tmp_path: Path) -> None:
    """A worker started in another folder sees the same state, GX project, Data Docs, suites,
    cache and SQLite file as the process that loaded the settings."""
    os.environ["SHARDWATCH_VALIDATION__SUITES_DIR"] = "my-suites"  # removed by the fixture
    s = load_settings(state_dir="rel", database_url="sqlite:///rel/db.sqlite")
    here = Path.cwd().resolve()
    sent = s.anchored()
    assert s.state_dir == Path("rel")  # the loaded settings themselves are unchanged
    assert sent.state_dir == here / "rel"
    assert sent.validation.gx_dir == here / "rel" / "gx"
    assert sent.validation.docs_dir == here / "rel" / "docs"
    assert sent.validation.suites_dir == here / "my-suites"
    assert sent.download.cache_dir == here / "rel" / "cache"
    assert sent.database_url.get_secret_value() == f"sqlite:///{here}/rel/db.sqlite"
    assert sent.anchored(tmp_path) == sent  # already absolute: nothing moves


def test_sqlite_is_refused_with_a_remote_dask_cluster() -> None:
    from shardwatch.settings.config import ConfigError

    remote = {"task_runner": "dask", "dask_address": "tcp://10.0.0.1:8786"}
    with pytest.raises(ConfigError) as err:
        load_settings(monitor=remote)
    message = str(err.value)
    assert "\n" not in message
    assert "SQLite cannot be shared by the workers of monitor.dask_address" in message
    pg = "postgresql://u:secret@db/sw"
    assert load_settings(monitor=remote, database_url=pg).remote_runner
    assert not load_settings(monitor={"task_runner": "dask"}).remote_runner  # a LocalCluster


def test_concurrency_has_no_cap_but_must_be_at_least_one() -> None:
    from shardwatch.settings.config import ConfigError

    assert load_settings(monitor={"concurrency": 500}).monitor.concurrency == 500
    with pytest.raises(ConfigError, match=r"monitor\.concurrency"):
        load_settings(monitor={"concurrency": 0})
    with pytest.raises(ConfigError, match="lease_seconds"):
        load_settings(lease_seconds=0.5)
