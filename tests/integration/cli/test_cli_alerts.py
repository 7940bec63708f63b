"""`shardwatch alerts test|list|relay|retry` and `ingest`'s relay, as real subprocesses
against the loopback Slack-like receiver and aiosmtpd; secrets from shardwatch.toml never
appear in their output, the database or any file under ./.shardwatch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.builders import tagged_table, write_shard
from support.loopback import (
    CANARY,
    LoopbackController,
    SlackReceiver,
    SmtpHandler,
    decoded,
    mime_parts,
)
from support.store_checks import run_shardwatch, run_shardwatch_child

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
    controller = LoopbackController(handler)  # on port 0: the OS picks
    controller.start()
    port = controller.port
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


def alerting_config(tmp_path: Path, slack_url: str, smtp_port: int) -> Path:
    """Slack, email (with a password) and file channels; NSFW-tag rule judged from 10 rows."""
    return config(tmp_path, f"""
[alerts.channels.team]
type = "slack"
webhook_url = "{slack_url}"
attempts = 1
[alerts.channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "sw@example.org"
recipients = ["curators@example.org"]
username = "sw"
password = "{CANARY}"
attempts = 1
[alerts.channels.log]
type = "file"
path = ".shardwatch/alerts.jsonl"
[alerts.rules.nsfw-tag-rate]
min_support = 10
""")


def test_ingest_relays_and_a_dead_letter_is_listed_then_retried(
    tmp_path: Path, slack: Any, smtp: Any
) -> None:
    receiver = slack()
    mailbox, port = smtp("550", auth=True)
    cfg = alerting_config(tmp_path, receiver.url.get_secret_value(), port)
    path = write_shard(tagged_table(100, 20), tmp_path, "a.parquet")
    outputs = []

    def sw(*args: str) -> Any:
        done = run_shardwatch(*args, "--config", str(cfg), cwd=tmp_path)
        outputs.extend([done.stdout, done.stderr])
        return done

    done = sw("ingest", str(path), "--dataset", "d", "--no-validate")
    assert done.returncode == 0, done.stderr
    assert (
        "alerts: 2 to log; 2 NOT delivered to mail (dead-lettered: smtp: 550 5.1.1 no such "
        "mailbox); 2 to team"
    ) in done.stderr
    assert len(receiver.bodies) == 1 and mailbox.attempts == 1 and mailbox.messages == []

    listed = sw("alerts", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("BREACHING critical nsfw-tag-rate on d /") == 2
    assert "observed 0.2 (20 of 100), threshold <= 0.01" in listed.stdout
    assert listed.stdout.count("-> mail: DEAD, 1 attempt(s): smtp: 550 5.1.1 no such mailbox") == 2
    assert listed.stdout.count("-> team: SENT") == 2
    assert "notices: 2 dead, 4 sent" in listed.stdout
    as_json = json.loads(sw("alerts", "list", "--json").stdout)
    assert as_json["notices"] == {"dead": 2, "sent": 4}

    retried = sw("alerts", "retry")
    assert retried.returncode == 0, retried.stderr
    assert "re-queued 2 dead notice(s)" in retried.stdout and "alerts: 2 to mail" in retried.stderr
    assert len(mailbox.messages) == 1 and len(receiver.bodies) == 1  # slack not resent
    assert "notices: 6 sent" in sw("alerts", "list").stdout

    for out in outputs:
        assert CANARY not in out
    files = [p for p in (tmp_path / ".shardwatch").rglob("*") if p.is_file()]
    assert any(p.name == "shardwatch.sqlite" for p in files)
    assert any(p.name == "alerts.jsonl" for p in files)
    assert not [p for p in files if CANARY.encode() in p.read_bytes()]


def test_configured_base_urls_become_the_links_and_no_local_path_leaves(
    tmp_path: Path, slack: Any, smtp: Any
) -> None:
    """`[alerts] docs_base_url` from shardwatch.toml reaches the relay of `ingest`: the
    shard's Data Docs page is linked below it (`ingest` writes no report, so no report link);
    the messages name the shard by its file name and hold no local path."""
    import re
    from email import message_from_bytes
    from email.utils import parsedate_to_datetime

    receiver = slack()
    mailbox, port = smtp(auth=True)
    cfg = alerting_config(tmp_path, receiver.url.get_secret_value(), port)
    cfg.write_text(cfg.read_text().replace("[alerts.channels.team]", (
        "[alerts]\ndocs_base_url = 'https://docs.example.org/sw/'\n"
        "reports_base_url = 'https://docs.example.org/reports'\n[alerts.channels.team]")))
    (tmp_path / "data").mkdir()
    path = write_shard(tagged_table(100, 20), tmp_path / "data", "a.parquet")
    done = run_shardwatch("ingest", str(path), "--dataset", "d", "--config", str(cfg),
                          cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr  # 1: the suite's NSFW-tag check fails
    assert "3 to team" in done.stderr and "3 to mail" in done.stderr, done.stderr  # + validation
    (body,) = receiver.bodies
    (raw,) = mailbox.messages
    for blob in (json.dumps(body), raw.decode()):
        assert str(tmp_path) not in blob and "/tmp/" not in blob
    shard_line = next(b["text"]["text"] for b in body["blocks"][1:]
                      if "shard a.parquet" in b["text"]["text"])
    assert "observed 20.00% (20 of 100), threshold &lt;= 1%" in shard_line
    page = re.search(r"<https://docs\.example\.org/sw/([^|>]+)\|Data Docs>", shard_line)
    assert page is not None and (tmp_path / ".shardwatch" / "docs" / page[1]).is_file()
    assert "|report>" not in shard_line  # `ingest` writes no report: nothing to link to
    mail = message_from_bytes(raw)
    assert parsedate_to_datetime(mail["Date"]).utcoffset() is not None
    assert mail["Message-ID"].endswith("@example.org>")
    text = decoded(mime_parts(mail)[0]).decode()
    assert f"Data Docs: https://docs.example.org/sw/{page[1]}" in text


def test_alerts_relay_exits_4_while_a_channel_fails_and_json_stdout_stays_clean(
    tmp_path: Path, slack: Any
) -> None:
    receiver = slack("500", "500")
    cfg = config(tmp_path, f"""
[alerts.channels.team]
type = "slack"
webhook_url = "{receiver.url.get_secret_value()}"
attempts = 1
[alerts.channels.screen]
type = "console"
[alerts.rules.nsfw-tag-rate]
min_support = 10
[alerts]
retry_seconds = 0.01
""")
    path = write_shard(tagged_table(100, 20), tmp_path, "a.parquet")
    done = run_shardwatch_child(  # a real child process: its stdout as a user sees it
        "ingest", str(path), "--no-validate", "--json", "--config", str(cfg), cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)  # the console channel wrote to stderr, not stdout
    assert payload["alerts"]["sent"] == 2 and payload["alerts"]["failed"] == 2
    assert "[CRITICAL] nsfw-tag-rate" in done.stderr
    failing = run_shardwatch("alerts", "relay", "--config", str(cfg), cwd=tmp_path)
    assert failing.returncode == 4, failing.stderr
    assert "2 NOT delivered to team (will retry: slack: HTTP 500)" in failing.stderr
    ok = run_shardwatch("alerts", "relay", "--config", str(cfg), cwd=tmp_path)
    assert ok.returncode == 0 and "alerts: 2 to team" in ok.stderr
    assert len(receiver.bodies) == 1


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("[alerts.rules.mine]\nmax = 0.1\n", "alert rule 'mine' needs a metric"),
        ('[alerts.rules.mine]\nmetric = "caption_length"\nmax = 1\n', "alerts.rules.mine.metric"),
        ('[alerts.rules.mine]\nmetric = "keyword_nsfw_rate"\n', "alert rule 'mine': set max"),
        ('[alerts.rules."Bad Name"]\nmetric = "keyword_nsfw_rate"\nmax = 1\n', "must match"),
    ],
)
def test_bad_rules_are_config_errors(tmp_path: Path, rules: str, message: str) -> None:
    cfg = config(tmp_path, rules)
    done = run_shardwatch("alerts", "list", "--config", str(cfg), cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
