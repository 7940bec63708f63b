"""`prefect-secret:<block>` settings read from Prefect Secret blocks saved on a real
`prefect server start`; a missing block, or no Prefect API, is a one-line config error that
never shows a secret."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr
from support.loopback import CANARY
from support.prefect_server import PrefectServer
from support.store_checks import run_shardwatch_child as run_shardwatch

from shardwatch.settings.config import ConfigError, load_settings

pytestmark = pytest.mark.integration


def save_secret(server: PrefectServer, value: str) -> str:
    from prefect.blocks.system import Secret

    name = f"sw-test-{uuid.uuid4().hex[:10]}"
    with server.settings():
        Secret(value=SecretStr(value)).save(name)
    return name


def test_secret_settings_come_from_prefect_secret_blocks(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url = f"postgresql://shardwatch:{CANARY}@db.example.org:5432/shardwatch"
    webhook = f"https://hooks.slack.com/services/T000/B000/{CANARY}"
    db, hook, smtp = (save_secret(prefect_server, v) for v in (db_url, webhook, "123456"))
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(
        f'database_url = "prefect-secret:{db}"\n'
        f'[alerts.channels.team]\ntype = "slack"\nwebhook_url = "prefect-secret:{hook}"\n'
        '[alerts.channels.mail]\ntype = "email"\nhost = "127.0.0.1"\n'
        'sender = "a@example.org"\nrecipients = ["b@example.org"]\n'
        f'password = "prefect-secret:{smtp}"\n'
    )
    with prefect_server.settings():
        settings = load_settings(cfg)
    assert settings.database_url.get_secret_value() == db_url
    channels = settings.alerts.channels
    assert channels["team"].webhook_url.get_secret_value() == webhook  # type: ignore[union-attr]
    password = channels["mail"].password  # type: ignore[union-attr]
    assert password is not None and password.get_secret_value() == "123456"  # not the int
    assert CANARY not in repr(settings) and CANARY not in str(settings.model_dump())

    # the environment variable may refer to a block too, and plain values stay plain
    monkeypatch.setenv("SHARDWATCH_DATABASE_URL", f"prefect-secret:{hook}")
    with prefect_server.settings():
        assert load_settings(cfg).database_url.get_secret_value() == webhook
    monkeypatch.setenv("SHARDWATCH_DATABASE_URL", "sqlite:///plain.sqlite")
    with prefect_server.settings():
        assert load_settings(cfg).database_url.get_secret_value() == "sqlite:///plain.sqlite"


def test_a_missing_block_is_a_one_line_config_error_exit_2(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text('database_url = "prefect-secret:no-such-block"\n')
    with prefect_server.settings(), pytest.raises(ConfigError) as raised:
        load_settings(cfg)
    assert str(raised.value).startswith(
        "database_url: the Prefect Secret block 'no-such-block' does not exist"
    )
    data = tmp_path / "data"
    data.mkdir()
    with cfg.open("a") as fh:
        fh.write(f'[sources.files]\ntype = "local"\npath = "{data}"\n')
    done = run_shardwatch("run", "--config", str(cfg), cwd=tmp_path, **prefect_server.env())
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {raised.value}"]


def test_without_a_prefect_api_a_block_reference_is_a_config_error(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text('[alerts.channels.team]\ntype = "slack"\nwebhook_url = "prefect-secret:x"\n')
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "alerts.channels.team.webhook_url refers to the Prefect Secret block 'x'" in str(e.value)
    assert "no Prefect API is configured" in str(e.value)
