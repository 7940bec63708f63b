"""The user's journey, for real: shardwatch installed from its wheel (not editable), a folder
of the user's own (config + shards) outside the repository, `prefect server start` on
loopback, `shardwatch serve` on a short schedule, results in PostgreSQL, Data Docs built next
to the config, and a breach delivered to a loopback Slack receiver and to aiosmtpd with
messages a person can act on (formatted rates, public links, no local path, escaping, Date
and Message-ID)."""

from __future__ import annotations

import email
import email.policy
import json
import re
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from support.builders import tagged_table, write_shard
from support.installed import clean_env
from support.loopback import SlackReceiver, SmtpHandler
from support.prefect_server import PrefectServer, serve_until

from shardwatch.store.database import make_engine

pytestmark = pytest.mark.integration

PUBLIC = "https://audit.example.org/shardwatch"
DATASET = "laion_*x*"
# 2 shards, 120 of 6,000 rows tagged NSFW: 2% breaches the default nsfw-tag-rate rule (max 1%,
# judged from 1,000 rows on), per shard and for the dataset.
SHARDS = {"part_*a*.parquet": (3000, 60, 1), "part~b~.parquet": (3000, 60, 2)}
RATE = re.compile(r"\d+\.\d\d% \(\d{1,3}(?:,\d{3})* of \d{1,3}(?:,\d{3})*\)")


def _user_folder(root: Path, database_url: str, slack: SlackReceiver, smtp_port: int) -> Path:
    """The user's own folder: shardwatch.toml with RELATIVE paths, and a folder of shards."""
    shards = root / "shards"
    shards.mkdir(parents=True)
    for name, (rows, nsfw, seed) in SHARDS.items():
        write_shard(tagged_table(rows, nsfw, seed=seed), shards, name)
    config = root / "shardwatch.toml"
    config.write_text(
        f'dataset = "{DATASET}"\n'
        f'database_url = "{database_url}"\n'
        "[sources.mine]\n"
        'type = "local"\n'
        'path = "shards"\n'
        "[alerts]\n"
        f'docs_base_url = "{PUBLIC}/docs"\n'
        f'reports_base_url = "{PUBLIC}/reports"\n'
        "[alerts.channels.team]\n"
        'type = "slack"\n'
        f'webhook_url = "{slack.url.get_secret_value()}"\n'
        "[alerts.channels.oncall]\n"
        'type = "email"\n'
        'host = "127.0.0.1"\n'
        f"port = {smtp_port}\n"
        'security = "none"\n'
        'sender = "shardwatch@audit.example.org"\n'
        'recipients = ["oncall@audit.example.org"]\n'
    )
    return config


def _emails(handler: SmtpHandler) -> list[EmailMessage]:
    parsed = [email.message_from_bytes(m, policy=email.policy.default) for m in handler.messages]
    return [m for m in parsed if isinstance(m, EmailMessage)]


def _slack_texts(slack: SlackReceiver) -> str:
    return json.dumps(slack.bodies, ensure_ascii=False)


def test_scheduled_monitoring_from_an_installed_package(
    installed: Path,
    prefect_server: PrefectServer,
    fresh_postgres_url: str,
    slack: Any,
    smtp: Any,
    tmp_path: Path,
) -> None:
    receiver = slack()
    handler, smtp_port = smtp()
    user = tmp_path / "user-audit"
    config = _user_folder(user, fresh_postgres_url, receiver, smtp_port)
    elsewhere = tmp_path / "elsewhere"  # the shell's folder is not the config's
    elsewhere.mkdir()

    ended, output = serve_until(
        [str(installed / "shardwatch"), "serve", "--config", str(config), "--interval", "5"],
        server=prefect_server,
        config=config,
        cwd=elsewhere,
        env=clean_env(),
    )
    print(output[-4000:])

    # 1. Two scheduled runs ended, and completed: the first stored both shards, the second
    #    found nothing new.
    assert len(ended) >= 2, output[-4000:]
    first, second = sorted(ended, key=lambda r: r.expected_start_time)[:2]
    assert first.state.is_completed() and second.state.is_completed(), (first.state, second.state)
    assert first.state.message.startswith("run 1: 2 done, 0 unchanged"), first.state.message
    assert second.state.message.startswith("run 2: 2 unchanged"), second.state.message

    # 2. The results are in PostgreSQL, and equal the rows written.
    engine = make_engine(fresh_postgres_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                text(
                    "SELECT s.uri, m.rows FROM shards s JOIN shard_metrics m"
                    " ON m.shard_id = s.id WHERE s.status = 'done'"
                )
            ).all()
    finally:
        engine.dispose()
    assert sorted(Path(uri).name for uri, _ in stored) == sorted(SHARDS)
    assert sum(rows for _, rows in stored) == sum(r for r, _, _ in SHARDS.values())

    # 3. State lives beside the config, whatever the working folder: Data Docs and reports.
    state = user / ".shardwatch"
    index = state / "docs" / "index.html"
    assert index.is_file(), sorted(p.name for p in state.iterdir())
    assert (state / "reports" / "run-1.html").is_file()
    assert not (elsewhere / ".shardwatch").exists()
    assert "validations" in index.read_text()

    # 4. The breach reached Slack and email, once each, in words a person can act on.
    sent = _slack_texts(receiver)
    mails = _emails(handler)
    assert receiver.bodies and mails, output[-4000:]
    plain = [m.get_body(preferencelist=("plain",)) for m in mails]
    html = [m.get_body(preferencelist=("html",)) for m in mails]
    assert all(p is not None for p in plain) and all(h is not None for h in html)
    bodies = [p.get_content() for p in plain if p is not None]
    bodies += [h.get_content() for h in html if h is not None]
    assert "nsfw-tag-rate" in sent and any("nsfw-tag-rate" in b for b in bodies)
    assert "observed 2.00% (120 of 6,000), threshold &lt;= 1%" in sent, sent[:3000]
    assert "observed 2.00% (60 of 3,000)" in sent, sent[:3000]
    assert RATE.search(bodies[0]), bodies[0][:2000]
    assert not re.search(r"observed 0\.\d{4,}", sent + "".join(bodies))  # no raw floats
    # links: public URLs only, never a local path
    for where in [sent, *bodies, *(m.as_string() for m in mails)]:
        assert str(tmp_path) not in where and "file://" not in where
        assert str(Path.home()) + "/" not in where
    assert f"<{PUBLIC}/docs/" in sent and f"{PUBLIC}/reports/run-1.html" in sent
    assert any(f"{PUBLIC}/docs/" in b for b in bodies)
    # Slack mrkdwn control characters in names are neutralised
    # (U+02CD for "_", U+2217 for "*", U+223C for "~": Slack has no escape for them)
    assert "laion\u02cd\u2217x\u2217" in sent, sent[:3000]
    assert "part\u223cb\u223c.parquet" in sent, sent[:3000]
    assert "*x*" not in sent and "~b~" not in sent
    # email headers made by the standard library
    for mail in mails:
        assert parsedate_to_datetime(str(mail["Date"])).tzinfo is not None
        assert re.fullmatch(r"<[^<>@\s]+@audit\.example\.org>", str(mail["Message-ID"]).strip())
