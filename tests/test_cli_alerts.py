"""`shardwatch alerts test --channel X` as a real subprocess against the loopback Slack-like
receiver and aiosmtpd; secrets from shardwatch.toml never appear in its output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from store_checks import run_shardwatch
from test_notify import CANARY, SlackReceiver, SmtpHandler, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Any]:
    made: list[SlackReceiver] = []

    def make(*script: str) -> SlackReceiver:
        made.append(SlackReceiver(list(script)))
        return made[-1]

    yield make
    for r in made:
        r.close()


def config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "shardwatch.toml"
    path.write_text(body)
    return path


def test_a_test_message_reaches_slack_and_the_webhook_is_never_printed(
    tmp_path: Path, receiver: Any
) -> None:
    slack = receiver("200")
    cfg = config(tmp_path, f"""
[alerts.channels.team]
type = "slack"
webhook_url = "{slack.url.get_secret_value()}"
""")
    done = run_shardwatch("alerts", "test", "--channel", "team", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent a test message to channel 'team' (slack)"
    (body,) = slack.bodies
    assert body["blocks"][0]["text"]["text"] == "shardwatch test message: this channel works"
    shown = run_shardwatch("config", "show", "--config", str(cfg))
    assert '"webhook_url": "**********"' in shown.stdout
    for out in (done.stdout, done.stderr, shown.stdout, shown.stderr):
        assert CANARY not in out


def test_an_undelivered_test_message_exits_4_with_the_reason(
    tmp_path: Path, receiver: Any
) -> None:
    slack = receiver("500", "500")
    cfg = config(tmp_path, f"""
[alerts.channels.team]
type = "slack"
webhook_url = "{slack.url.get_secret_value()}"
attempts = 2
""")
    done = run_shardwatch("alerts", "test", "--channel", "team", "--config", str(cfg))
    assert done.returncode == 4
    assert "channel 'team': not delivered (transient): slack: HTTP 500" in done.stderr
    assert len(slack.times) == 2 and CANARY not in done.stderr + done.stdout


def test_email_550_is_a_permanent_failure_and_the_password_stays_secret(tmp_path: Path) -> None:
    handler = SmtpHandler(["550"])
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        cfg = config(tmp_path, f"""
[alerts.channels.curators]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
sender = "sw@example.org"
recipients = ["curator@example.org"]
password = "{CANARY}"
""")
        done = run_shardwatch("alerts", "test", "--channel", "curators", "--config", str(cfg))
    finally:
        controller.stop()
    assert done.returncode == 4
    assert "not delivered (permanent): smtp: 550 5.1.1 no such mailbox" in done.stderr
    assert handler.attempts == 1 and CANARY not in done.stderr + done.stdout


def test_file_and_console_channels_and_an_unknown_channel(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    cfg = config(tmp_path, f"""
[alerts.channels.log]
type = "file"
path = "{out}"
[alerts.channels.screen]
type = "console"
""")
    logged = run_shardwatch("alerts", "test", "--channel", "log", "--config", str(cfg))
    assert logged.returncode == 0, logged.stderr
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["kind"] == "test"
    screen = run_shardwatch("alerts", "test", "--channel", "screen", "--config", str(cfg))
    assert "shardwatch test message" in screen.stdout
    unknown = run_shardwatch("alerts", "test", "--channel", "nope", "--config", str(cfg))
    assert unknown.returncode == 2
    assert "no alert channel 'nope' (configured: log, screen)" in unknown.stderr
