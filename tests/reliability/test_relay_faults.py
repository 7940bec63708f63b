"""Scenario 21, relay faults (docs/reliability.md), on SQLite and PostgreSQL, against the
loopback Slack-like receiver, aiosmtpd and a file channel:

1. A relay SIGKILLed around claiming, sending and marking sent
   (tests/support/reliability/relay_kill_worker.py: before its K-th COMMIT, before its K-th
   statement, after a channel accepted a message), pass after pass, then one clean pass:
   every notice reached every channel at least once, no more than once more per kill (the
   documented in-flight message), and nothing is left claimed: every notice is `sent`, no
   channel turn is held.
2. A Slack webhook answering 500 forever, over many passes hours apart with reminders due:
   each notice is tried `max_attempts` times with backoff, then dead-lettered with the reason
   (shown by `alerts list`); email is delivered all along; the outbox stays bounded (a dead
   channel gets no new reminder rows: its dead letter stands for the breach); `alerts retry`
   re-queues the dead letters and, once Slack answers again, nothing is lost.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from support.builders import tagged_table, write_shard
from support.reliability import FOLDER
from support.reliability.leaks import LeakWatch
from support.store_checks import ingest, subprocess_env

from shardwatch.alerting.email import EmailChannel
from shardwatch.alerting.local import FileChannel
from shardwatch.alerting.message import Channel, Retry
from shardwatch.alerting.relay import RelayPolicy, relay
from shardwatch.alerting.slack import SlackChannel
from shardwatch.core.alerts import AlertPlan, Rule
from shardwatch.store import models as t
from shardwatch.store.outbox import Outbox
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

SCENARIO = "12 relay faults"
WORKER = FOLDER / "relay_kill_worker.py"
TAG = Rule("tag", "nsfw_tag_rate", "critical", "both", max=0.05, min_support=10)
WHERE = re.compile(r"^\[[^\]]+\] \S+ on (?P<where>.+?): observed")
LEASE = 0.8  # seconds: short, so that the passes after a kill need not wait long
POINTS = ("commit:2", "sent:1", "statement:9", "commit:4", "sent:2")


def breaches(store: ResultStore, folder: Path, shards: int, *channels: str) -> int:
    """Ingest `shards` breaching shards; the notices enqueued per channel."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        write_shard(tagged_table(100, 20, seed=i), folder, f"s{i}.parquet") for i in range(shards)
    ]
    ingest(paths, store, alerts=AlertPlan((TAG,), tuple(sorted(channels))))
    return shards + 1  # one per shard, one for the dataset


def slack_where(bodies: list[dict[str, Any]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for body in bodies:
        for block in body["blocks"][1:]:
            for line in block["text"]["text"].splitlines():
                match = WHERE.match(line)
                if match:
                    out[match["where"]] += 1
    return out


def states(store: ResultStore) -> Counter[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT channel, state FROM alert_outbox")).all()
    return Counter((r[0], r[1]) for r in rows)


def test_a_relay_killed_around_claim_send_and_mark_loses_nothing_and_holds_nothing(
    store: ResultStore,
    database_url: str,
    tmp_path: Path,
    slack: Any,
    leaks: LeakWatch,
    figure: Callable[[str, str, object], None],
) -> None:
    receiver = slack()
    log = tmp_path / "alerts.jsonl"
    notices = breaches(store, tmp_path / "shards", 5, "team", "log")
    done = subprocess.run(
        [
            sys.executable,
            str(WORKER),
            "--url",
            database_url,
            "--file",
            str(log),
            "--lease",
            str(LEASE),
            *POINTS,
        ],
        env=subprocess_env(SHARDWATCH_TEST_WEBHOOK=receiver.url.get_secret_value()),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    leaks.text("killed relays' output", done.stdout + done.stderr)
    passes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [p["signal"] for p in passes] == [9] * len(POINTS), done.stdout
    channels: dict[str, Channel] = {
        "team": SlackChannel(receiver.url, name="team", retry=Retry(attempts=1)),
        "log": FileChannel(log, name="log"),
    }
    policy = RelayPolicy(lease_seconds=30, renotify_hours=0, min_interval=0.0)

    def later() -> datetime:  # the survivor's clock: past the last kill's leases, no sleeping
        return t.utcnow() + timedelta(seconds=LEASE + 0.2)

    relay(Outbox(store.engine), channels, owner="survivor", policy=policy, now=later)

    assert states(store) == {("team", "sent"): notices, ("log", "sent"): notices}
    with store.engine.connect() as conn:
        held = conn.execute(
            text("SELECT count(*) FROM alert_channels WHERE holder IS NOT NULL")
        ).scalar()
    assert held == 0
    on_slack = slack_where(receiver.bodies)
    in_file = Counter(json.loads(line)["scope"] for line in log.read_text().splitlines())
    for name, got in (("team", on_slack), ("log", in_file)):
        assert len(got) == notices, (name, got)  # every notice at least once
        assert all(n <= 1 + len(POINTS) for n in got.values()), (name, got)
    duplicates = sum(on_slack.values()) + sum(in_file.values()) - 2 * notices
    assert 1 <= duplicates <= len(POINTS), (on_slack, in_file)
    leaks.texts("Slack bodies", [json.dumps(b) for b in receiver.bodies])
    leaks.tree("file channel", log)
    leaks.database("relay store", database_url)
    backend = store.engine.dialect.name
    figure(SCENARIO, f"relay kills, notices x channels [{backend}]", f"{len(POINTS)}, {notices}x2")
    figure(SCENARIO, f"duplicates after the kills (at most one per kill) [{backend}]", duplicates)


def test_slack_answering_500_forever_dead_letters_keeps_email_and_stays_bounded(
    store: ResultStore,
    database_url: str,
    tmp_path: Path,
    slack: Any,
    smtp: Any,
    leaks: LeakWatch,
    figure: Callable[[str, str, object], None],
) -> None:
    receiver = slack(*["500"] * 10_000)
    mailbox, port = smtp()
    notices = breaches(store, tmp_path / "shards", 3, "team", "mail")
    channels: dict[str, Channel] = {
        "team": SlackChannel(receiver.url, name="team", retry=Retry(attempts=1)),
        "mail": EmailChannel(
            host="127.0.0.1",
            port=port,
            sender="sw@example.org",
            recipients=["curators@example.org"],
            timeout=5.0,
            name="mail",
            retry=Retry(attempts=1),
        ),
    }
    attempts = 3
    policy = RelayPolicy(
        lease_seconds=30,
        max_attempts=attempts,
        retry_seconds=60,
        renotify_hours=1,
        min_interval=0.0,
    )
    outbox = Outbox(store.engine)
    rows: list[int] = []
    for hour in range(0, 40, 2):  # 20 passes, two hours apart: reminders due at each

        def clock(hour: int = hour) -> datetime:
            return t.utcnow() + timedelta(hours=hour)

        relay(outbox, channels, owner="relay", policy=policy, now=clock)
        rows.append(sum(outbox.counts().values()))

    posts = len(receiver.times)  # every POST (bodies: the accepted ones)
    assert posts == attempts  # bounded: every notice went out in each of its 3 attempts
    counts = states(store)
    assert counts[("team", "dead")] == notices and counts[("team", "pending")] == 0
    assert counts[("team", "sent")] == 0
    dead = [d for v in outbox.alerts() for d in v.deliveries if d.state == "dead"]
    assert len(dead) == notices and all("500" in (d.last_error or "") for d in dead)
    assert counts[("mail", "sent")] >= notices and len(mailbox.messages) >= 1  # email flows
    team_rows = sum(n for (channel, _), n in counts.items() if channel == "team")
    assert team_rows == notices, counts  # a dead channel gets no new rows per reminder
    waiting = sum(n for (_, state), n in counts.items() if state in ("pending", "sending"))
    assert waiting <= notices * 2, counts  # at most one waiting notice per key and channel
    assert counts[("mail", "sent")] <= notices * len(rows)  # at most one per key per pass

    receiver.script.clear()  # Slack is back
    assert outbox.retry() == notices

    def later() -> datetime:
        return t.utcnow() + timedelta(hours=41)

    relay(outbox, channels, owner="relay", policy=policy, now=later)
    assert len(slack_where(receiver.bodies)) == notices  # nothing lost
    assert states(store)[("team", "sent")] == notices

    leaks.texts("emails", [repr(m) for m in mailbox.messages])
    leaks.database("dead-letter store", database_url)
    backend = store.engine.dialect.name
    figure(SCENARIO, f"Slack 500 forever: POSTs over 20 passes [{backend}]", posts)
    figure(
        SCENARIO, f"Slack rows after 20 passes (notices) [{backend}]", f"{team_rows} ({notices})"
    )
    figure(
        SCENARIO,
        f"outbox rows after passes 1, 10, 20 (email reminders included) [{backend}]",
        f"{rows[0]}, {rows[9]}, {rows[19]}",
    )
