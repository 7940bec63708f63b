"""The `blocklisted-rows` alert end to end, on SQLite and PostgreSQL: shard results written
through the store's real claim/complete transaction, notices relayed to real servers on
loopback (a Slack-like receiver and aiosmtpd) and a file channel. A shard matching a list
breaches exactly once however often it is re-processed, a new version that matches nothing
sends exactly one recovery, and no message names an entry, URL or domain."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from support.loopback import decoded

from shardwatch.alerting.email import EmailChannel
from shardwatch.alerting.local import FileChannel
from shardwatch.alerting.message import Channel, Retry
from shardwatch.alerting.relay import RelayPolicy, relay
from shardwatch.alerting.slack import SlackChannel
from shardwatch.core.alerts import DEFAULT_RULES, AlertPlan, Rule
from shardwatch.core.blocklist import BlocklistStats, entry_id
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.validation import Check, ShardValidation
from shardwatch.store.outbox import Outbox
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

POLICY = RelayPolicy(
    lease_seconds=30, max_attempts=3, retry_seconds=0.05, renotify_hours=0, min_interval=0.0
)
ITEM = re.compile(r"^\[(?P<head>[^\]]+)\] (?P<rule>\S+) on (?P<where>.+?): observed (?P<obs>.+)$")
BLOCKED_URL = "https://cdn.blocked-host.example/abuse/0001.jpg"
ENTRY = entry_id("url", hashlib.sha256(BLOCKED_URL.encode()).digest())
DOMAIN_ENTRY = entry_id("domain", b"spam-host.example")
SECRET_DIR = "/srv/private-mirror"  # a local path: messages name the shard's file only


def metrics(csam: int, spam: int) -> ShardMetrics:
    """A shard's metrics as the engine gives them: two lists checked, `csam` and `spam`
    rows matching each."""
    return ShardMetrics(
        rows=1000,
        blocklists={
            "csam": BlocklistStats(
                "url_sha256", 2236, csam, frozenset({ENTRY} if csam else ()), {"a" * 64: 1}
            ),
            "spam": BlocklistStats(
                "domain", 40, spam, frozenset({DOMAIN_ENTRY} if spam else ()), {"b" * 64: 1}
            ),
        },
    )


def process(store: ResultStore, uri: str, content: str, m: ShardMetrics, plan: AlertPlan) -> None:
    """One shard version through register, claim (forced: a re-run) and complete."""
    sv = store.register("laion-test", uri, hashlib.sha256(content.encode()).hexdigest())
    assert store.claim(sv.id, "worker", lease_seconds=60, force=True)
    assert store.complete(
        sv.id, "worker", m, profile="laion400m", lexicon="precise2026", alerts=plan
    )


def items(bodies: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    out = []
    for body in bodies:
        for block in body["blocks"][1:]:
            match = ITEM.match(block["text"]["text"])
            assert match, block
            out.append((match["head"], match["where"], match["obs"]))
    return out


def loopback_channels(
    tmp_path: Path, slack: Any, smtp: Any
) -> tuple[Any, Any, Path, dict[str, Channel]]:
    """A Slack-like receiver, an SMTP server and a file channel, all real, on loopback."""
    receiver = slack()
    mailbox, port = smtp()
    log = tmp_path / "alerts.jsonl"
    fast = Retry(attempts=1, base=0.05, cap=1)
    channels: dict[str, Channel] = {
        "team": SlackChannel(receiver.url, name="team", retry=fast),
        "mail": EmailChannel(
            host="127.0.0.1",
            port=port,
            sender="sw@example.org",
            recipients=["curators@example.org"],
            timeout=5.0,
            name="mail",
            retry=fast,
        ),
        "log": FileChannel(log, name="log"),
    }
    return receiver, mailbox, log, channels


def test_blocklisted_rows_breach_once_and_recover_once(
    store: ResultStore, tmp_path: Path, slack: Any, smtp: Any
) -> None:
    receiver, mailbox, log, channels = loopback_channels(tmp_path, slack, smtp)
    plan = AlertPlan(
        DEFAULT_RULES,
        tuple(sorted(channels)),
        blocklists=(("csam", "critical"), ("spam", "warning")),
    )
    a, b = f"{SECRET_DIR}/part-00001.parquet", f"{SECRET_DIR}/part-00002.parquet"

    def send() -> int:
        return relay(Outbox(store.engine), channels, owner="relay", policy=POLICY).sent

    sent = []
    process(store, a, "a1", metrics(csam=3, spam=1), plan)  # critical: csam matches
    process(store, b, "b1", metrics(csam=0, spam=2), plan)  # warning: only the warning list
    sent.append(send())
    for _ in range(2):  # re-processed, still matching: nothing new
        process(store, a, "a1", metrics(csam=3, spam=1), plan)
        process(store, b, "b1", metrics(csam=0, spam=2), plan)
        sent.append(send())
    process(store, a, "a2", metrics(csam=0, spam=0), plan)  # new versions: clean
    process(store, b, "b2", metrics(csam=0, spam=0), plan)
    sent.append(send())
    process(store, a, "a2", metrics(csam=0, spam=0), plan)  # still clean
    sent.append(send())

    assert sent == [2 * 3, 0, 0, 2 * 3, 0]  # 2 keys x 3 channels, then their recoveries
    got = items(receiver.bodies)
    assert Counter((head, where) for head, where, _ in got) == {
        ("CRITICAL", "laion-test / shard part-00001.parquet"): 1,
        ("WARNING", "laion-test / shard part-00002.parquet"): 1,
        ("RECOVERED", "laion-test / shard part-00001.parquet"): 1,
        ("RECOVERED", "laion-test / shard part-00002.parquet"): 1,
    }
    observed = {(head, where.rsplit("-", 1)[1]): obs for head, where, obs in got}
    assert observed[("CRITICAL", "00001.parquet")] == (
        "4 (list csam: 3 rows (1 of 2,236 entries); list spam: 1 row (1 of 40 entries)), "
        "threshold &lt;= 0"  # as Slack shows `<`
    )
    assert observed[("RECOVERED", "00001.parquet")].startswith("0 (no row on lists csam, spam)")
    assert len(mailbox.messages) == 2
    assert len(log.read_text().splitlines()) == 4
    with store.engine.connect() as conn:
        states = Counter(conn.execute(text("SELECT kind, state FROM alert_outbox")).all())
        keys = conn.execute(text("SELECT rule, breaching FROM alerts")).all()
    assert states == {("breach", "sent"): 6, ("recovery", "sent"): 6}
    assert sorted(k for k in keys if k[0] == "blocklisted-rows") == [
        ("blocklisted-rows", False),
        ("blocklisted-rows", False),
    ]
    everything = (
        json.dumps(receiver.bodies)
        + log.read_text()
        + "".join(
            decoded(part).decode()
            for raw in mailbox.messages
            for part in message_from_bytes(raw).walk()
            if not part.is_multipart()
        )
    )
    for secret in (
        BLOCKED_URL,
        "blocked-host",
        "spam-host",
        ENTRY.hex(),
        DOMAIN_ENTRY.hex(),
        SECRET_DIR,
    ):
        assert secret not in everything


def test_a_failed_flag_check_raises_no_validation_alert(store: ResultStore) -> None:
    """The flag check validation adds per list fails with the matching rows; that is the
    blocklisted-rows alert's cause, so the validation rule stays quiet on the shard and the
    dataset (one cause, one alert), while another failed check still counts."""
    validation_rule = Rule("validation", "validation_failures", "warning", "both", max=0)
    (blocklisted,) = [r for r in DEFAULT_RULES if r.name == "blocklisted-rows"]
    plan = AlertPlan((validation_rule, blocklisted), ("log",))
    flag = Check(
        0,
        "expect_column_values_to_not_be_in_set",
        "blocklist_csam",
        None,
        "failed",
        {"unexpected_count": 3, "element_count": 1000},
        {"value_set": [True]},
    )
    other = Check(
        1,
        "expect_column_values_to_not_be_null",
        "id",
        None,
        "failed",
        {"unexpected_count": 1, "element_count": 1000},
        None,
    )

    def breaching() -> set[tuple[str, str]]:
        assert store.judge_dataset("laion-test", plan)
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT rule, scope FROM alerts WHERE breaching")).all()
        return {(rule, scope.split(":")[0]) for rule, scope in rows}

    sv = store.register("laion-test", "a.parquet", "a" * 64)
    assert store.claim(sv.id, "w", lease_seconds=60)
    assert store.complete(
        sv.id,
        "w",
        metrics(3, 0),
        profile="laion400m",
        lexicon="precise2026",
        validation=ShardValidation("s", "r", (flag,)),
        alerts=plan,
    )
    assert breaching() == {("blocklisted-rows", "shard")}
    sv = store.register("laion-test", "b.parquet", "b" * 64)
    assert store.claim(sv.id, "w", lease_seconds=60)
    assert store.complete(
        sv.id,
        "w",
        metrics(3, 0),
        profile="laion400m",
        lexicon="precise2026",
        validation=ShardValidation("s", "r", (flag, other)),
        alerts=plan,
    )
    assert breaching() == {
        ("blocklisted-rows", "shard"),
        ("validation", "shard"),
        ("validation", "dataset"),
    }


def test_a_rise_to_critical_is_told_at_once_and_a_fall_is_not(
    store: ResultStore, tmp_path: Path, slack: Any, smtp: Any
) -> None:
    """One shard key: a version on the warning list only breaches as a warning; a new version
    also on the critical list sends exactly one critical notice at once (not at the next
    reminder: reminders are off here); re-processing it sends nothing; a version back on the
    warning list only (a fall) sends nothing; a clean version sends exactly one recovery."""
    receiver, mailbox, log, channels = loopback_channels(tmp_path, slack, smtp)
    plan = AlertPlan(
        DEFAULT_RULES,
        tuple(sorted(channels)),
        blocklists=(("csam", "critical"), ("spam", "warning")),
    )
    uri = f"{SECRET_DIR}/part-00007.parquet"

    def send() -> int:
        return relay(Outbox(store.engine), channels, owner="relay", policy=POLICY).sent

    sent = []
    process(store, uri, "v1", metrics(csam=0, spam=2), plan)  # warning list only
    sent.append(send())
    process(store, uri, "v1", metrics(csam=0, spam=2), plan)  # re-processed: nothing
    sent.append(send())
    process(store, uri, "v2", metrics(csam=1, spam=2), plan)  # now on the critical list too
    sent.append(send())
    process(store, uri, "v2", metrics(csam=1, spam=2), plan)  # re-processed: nothing
    sent.append(send())
    process(store, uri, "v3", metrics(csam=0, spam=5), plan)  # a fall to warning: nothing
    sent.append(send())
    process(store, uri, "v4", metrics(csam=0, spam=0), plan)  # clean: one recovery
    sent.append(send())

    assert sent == [3, 0, 3, 0, 0, 3]
    got = items(receiver.bodies)
    assert [(head, where) for head, where, _ in got] == [
        ("WARNING", "laion-test / shard part-00007.parquet"),
        ("CRITICAL", "laion-test / shard part-00007.parquet"),
        ("RECOVERED", "laion-test / shard part-00007.parquet"),
    ]
    assert got[1][2].startswith("3 (list csam: 1 row (1 of 2,236 entries); list spam: 2 rows")
    assert len(mailbox.messages) == 3
    severities = [json.loads(line)["severity"] for line in log.read_text().splitlines()]
    assert severities == ["warning", "critical", "critical"]  # a recovery: the rule's own
    with store.engine.connect() as conn:
        states = Counter(conn.execute(text("SELECT kind, state FROM alert_outbox")).all())
        keys = conn.execute(text("SELECT severity, breaching FROM alerts")).all()
    assert states == {("breach", "sent"): 6, ("recovery", "sent"): 3}
    assert keys == [("critical", False)]
    everything = json.dumps(receiver.bodies) + log.read_text()
    for secret in (BLOCKED_URL, "blocked-host", "spam-host", ENTRY.hex(), SECRET_DIR):
        assert secret not in everything


def test_a_rise_before_the_warning_went_out_sends_one_critical_notice(
    store: ResultStore, tmp_path: Path, slack: Any, smtp: Any
) -> None:
    """The warning breach still waits in the outbox when the critical version arrives: the
    waiting notice carries the alert's current (critical) values, so each channel hears of
    the breach once, as critical."""
    receiver, mailbox, log, channels = loopback_channels(tmp_path, slack, smtp)
    plan = AlertPlan(
        DEFAULT_RULES,
        tuple(sorted(channels)),
        blocklists=(("csam", "critical"), ("spam", "warning")),
    )
    uri = f"{SECRET_DIR}/part-00008.parquet"
    process(store, uri, "v1", metrics(csam=0, spam=2), plan)
    process(store, uri, "v2", metrics(csam=4, spam=0), plan)
    assert relay(Outbox(store.engine), channels, owner="relay", policy=POLICY).sent == 3
    assert [head for head, _, _ in items(receiver.bodies)] == ["CRITICAL"]
    assert len(mailbox.messages) == 1
    assert [json.loads(line)["severity"] for line in log.read_text().splitlines()] == ["critical"]
