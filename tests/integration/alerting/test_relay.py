"""The relay end to end, on SQLite and PostgreSQL, against real servers on loopback (a
Slack-like receiver and aiosmtpd with scripted faults): exactly one notice per alert key
across runs, one recovery, one message per channel per pass, Retry-After and timeouts,
dead letters, at most one duplicate after a kill, escaping, and no secret anywhere."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from support.builders import tagged_table, write_shard
from support.loopback import CANARY, SlackReceiver, decoded, mime_parts
from support.store_checks import TESTS, ingest, subprocess_env

from shardwatch.alerting.email import EmailChannel
from shardwatch.alerting.links import Links
from shardwatch.alerting.local import FileChannel
from shardwatch.alerting.message import Channel, Retry
from shardwatch.alerting.relay import RelayPolicy, RelayResult, relay
from shardwatch.alerting.slack import SlackChannel
from shardwatch.core.alerts import AlertPlan, Rule
from shardwatch.store import models as t
from shardwatch.store.outbox import Outbox
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

WORKER = TESTS / "support" / "relay_worker.py"

TAG = Rule("tag", "nsfw_tag_rate", "critical", "both", max=0.05, min_support=10)
HOSTILE = "<!channel> <http://evil.example|x> & <b>"
ITEM = re.compile(r"^\[(?P<head>[^\]]+)\] (?P<rule>\S+) on (?P<where>.+?): observed")
FAST = RelayPolicy(lease_seconds=30, max_attempts=3, retry_seconds=0.05, renotify_hours=0)


def shard(directory: Path, name: str, nsfw: int, seed: int = 0, rows: int = 100) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_shard(tagged_table(rows, nsfw, seed=seed), directory, name)


def slack_channel(receiver: SlackReceiver, **kwargs: Any) -> SlackChannel:
    options: dict[str, Any] = {"name": "team", "retry": Retry(attempts=1, base=0.05, cap=5)}
    options.update(kwargs)
    return SlackChannel(receiver.url, **options)


def email_channel(port: int, **kwargs: Any) -> EmailChannel:
    options: dict[str, Any] = {
        "host": "127.0.0.1", "port": port, "sender": "sw@example.org",
        "recipients": ["curators@example.org"], "timeout": 5.0, "name": "mail",
        "retry": Retry(attempts=1, base=0.05, cap=1),
    }
    options.update(kwargs)
    return EmailChannel(**options)


def plan(*channels: str) -> AlertPlan:
    return AlertPlan((TAG,), tuple(sorted(channels)))


def run(store: ResultStore, channels: dict[str, Channel], policy: RelayPolicy = FAST,
        at: float = 0.0, *, start: datetime | None = None, **kwargs: Any) -> RelayResult:
    """One relay pass; `at` seconds in the future (explicit clocks instead of sleeping): after
    `start` when given, a fixed instant, so that intervals are exact; else after now."""
    def now() -> datetime:
        return (start or t.utcnow()) + timedelta(seconds=at)

    return relay(Outbox(store.engine), channels, owner="relay", policy=policy, now=now, **kwargs)


def utc(at: datetime | None) -> datetime:
    """A stored instant as an aware UTC datetime (SQLite gives it back naive)."""
    assert at is not None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def slack_items(bodies: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(head, where) of every item in every Slack message received."""
    out = []
    for body in bodies:
        for block in body["blocks"][1:]:
            match = ITEM.match(block["text"]["text"])
            assert match, block
            out.append((match["head"], match["where"]))
    return out


def notice_states(store: ResultStore) -> Counter[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, state FROM alert_outbox")).all()
    return Counter((r[0], r[1]) for r in rows)


def test_exactly_one_notice_per_key_across_runs_and_one_recovery(
    store: ResultStore, tmp_path: Path, slack: Any, smtp: Any
) -> None:
    receiver = slack()
    mailbox, port = smtp()
    log = tmp_path / "alerts.jsonl"
    channels: dict[str, Channel] = {
        "team": slack_channel(receiver),
        "mail": email_channel(port),
        "log": FileChannel(log, name="log"),
    }
    p = plan(*channels)
    a, b = shard(tmp_path, "a.parquet", 20, seed=1), shard(tmp_path, "b.parquet", 0, seed=2)
    per_run = []
    ingest([a], store, alerts=p)  # run 1: a breaches, and so does the dataset
    per_run.append(run(store, channels).sent)
    for _ in range(2):  # runs 2-3: the breach persists
        ingest([a], store, alerts=p, force=True)
        per_run.append(run(store, channels).sent)
    shard(tmp_path, "b.parquet", 30, seed=2)
    ingest([b], store, alerts=p)  # run 4: b breaches too; the dataset still does
    per_run.append(run(store, channels).sent)
    shard(tmp_path, "a.parquet", 0, seed=3)
    shard(tmp_path, "b.parquet", 1, seed=4)
    ingest([a, b], store, alerts=p)  # run 5: everything clears
    per_run.append(run(store, channels).sent)
    ingest([a, b], store, alerts=p, force=True)  # run 6: still clear
    per_run.append(run(store, channels).sent)

    assert per_run == [2 * 3, 0, 0, 1 * 3, 3 * 3, 0]  # notices x 3 channels
    items = slack_items(receiver.bodies)
    a_where, b_where = (f"laion-test / shard {p.name}" for p in (a, b))  # no local path
    dataset = "laion-test / dataset (latest shard versions)"
    expected = Counter(
        {("CRITICAL", w): 1 for w in (a_where, b_where, dataset)}
        | {("RECOVERED", w): 1 for w in (a_where, b_where, dataset)}
    )
    assert Counter(items) == expected  # exactly once each: 0 duplicates
    print(
        f"\nexactly-once: {len(items)} Slack items in {len(receiver.bodies)} messages, "
        f"{len(mailbox.messages)} emails, duplicates {len(items) - len(set(items))}"
    )
    assert len(receiver.bodies) == 3  # one message per pass that had notices
    assert len(mailbox.messages) == 3
    lines = log.read_text().splitlines()
    assert len(lines) == 6
    assert notice_states(store) == {("breach", "sent"): 9, ("recovery", "sent"): 9}


def test_many_breaches_in_one_run_are_one_message_per_channel(
    store: ResultStore, tmp_path: Path, slack: Any, smtp: Any
) -> None:
    receiver = slack()
    mailbox, port = smtp()
    channels: dict[str, Channel] = {"team": slack_channel(receiver), "mail": email_channel(port)}
    paths = [shard(tmp_path, f"s{i}.parquet", 10 + i, seed=i) for i in range(5)]
    run_id = store.start_run()
    ingest(paths, store, alerts=plan(*channels), run_id=run_id)
    result = run(store, channels)
    assert [(c.channel, c.notices, c.delivered) for c in result.channels] == [
        ("mail", 6, True), ("team", 6, True)
    ]
    (body,) = receiver.bodies
    assert len(body["blocks"]) == 1 + 6  # header + 5 shards + the dataset
    assert body["blocks"][0]["text"]["text"] == "shardwatch: 6 alert(s), 6 critical in laion-test"
    (raw,) = mailbox.messages
    text_part = decoded(mime_parts(raw)[0]).decode()
    assert text_part.count("[CRITICAL] tag on laion-test") == 6
    # every item carries observed vs threshold (a rate: a percentage with its counts), the run
    assert f"observed 14.00% (14 of 100), threshold <= 5% (run {run_id})" in text_part


def test_retry_after_is_honoured_between_relay_passes(
    store: ResultStore, tmp_path: Path, slack: Any
) -> None:
    receiver = slack("429:1")
    channels: dict[str, Channel] = {"team": slack_channel(receiver)}
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan("team"))
    start = t.utcnow()  # the relay's clock: passes at `start` + `at` seconds, no sleeping
    first = run(store, channels, start=start)
    assert first.failed == 2 and first.dead == 0 and "429" in (first.channels[0].error or "")
    # not due: Retry-After 1 s > retry_seconds 0.05 s
    assert run(store, channels, at=0.99, start=start).channels == ()
    assert run(store, channels, at=1.0, start=start).sent == 2  # due exactly 1 s later
    sent = [utc(d.sent_at) for v in Outbox(store.engine).alerts() for d in v.deliveries]
    assert len(receiver.times) == 2 and sent == [start + timedelta(seconds=1.0)] * 2
    assert len(receiver.bodies) == 1


def test_within_one_pass_retry_after_is_waited_out(
    store: ResultStore, tmp_path: Path, slack: Any
) -> None:
    receiver = slack("429:1", "reset")
    waits: list[float] = []  # the channel's clock: it records its waits instead of sleeping
    channel = slack_channel(receiver, retry=Retry(attempts=3, base=0.05, cap=5), sleep=waits.append)
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan("team"))
    assert run(store, {"team": channel}).sent == 2
    assert len(receiver.times) == 3 and waits == [1.0, 0.1]  # Retry-After, then backoff 2 x 0.05
    assert len(receiver.bodies) == 1  # the 429 and the reset delivered nothing


def test_a_hang_is_cut_off_and_retried_later(
    store: ResultStore, tmp_path: Path, slack: Any
) -> None:
    receiver = slack("hang:5")
    channels: dict[str, Channel] = {"team": slack_channel(receiver, read_timeout=0.5)}
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan("team"))
    started = time.monotonic()
    first = run(store, channels)
    assert time.monotonic() - started < 3
    assert first.failed == 2 and "timed out" in (first.channels[0].error or "")
    assert notice_states(store) == {("breach", "pending"): 2}
    assert run(store, channels, at=0.1).sent == 2  # a pass 0.1 s later: the retry is due
    assert len(receiver.bodies) == 1


def test_a_permanent_smtp_error_is_dead_lettered_with_its_reason(
    store: ResultStore, tmp_path: Path, smtp: Any
) -> None:
    mailbox, port = smtp("550")
    channels: dict[str, Channel] = {"mail": email_channel(port)}
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan("mail"))
    result = run(store, channels)
    assert result.dead == 2 and result.channels[0].permanent
    assert mailbox.attempts == 1 and mailbox.messages == []
    views = Outbox(store.engine).alerts(include_resolved=False)
    dead = [d for v in views for d in v.deliveries]
    assert [(d.state, d.last_error) for d in dead] == [
        ("dead", "smtp: 550 5.1.1 no such mailbox")
    ] * 2
    assert run(store, channels).channels == ()  # dead: never retried by itself
    assert Outbox(store.engine).retry() == 2
    assert run(store, channels).sent == 2  # the script is spent: the server now accepts
    assert len(mailbox.messages) == 1
    print(f"\nsmtp 550: 2 notices dead after {mailbox.attempts - 1} attempt, retried: "
          f"{dict(notice_states(store))}")


def test_transient_smtp_errors_retry_then_dead_letter(
    store: ResultStore, tmp_path: Path, smtp: Any
) -> None:
    mailbox, port = smtp("451", "drop", "250", "421", "421", "421")
    channel = email_channel(port, retry=Retry(attempts=3, base=0.05, cap=1))
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan("mail"))
    assert run(store, {"mail": channel}).sent == 2  # 451, drop during DATA, then 250
    assert len(mailbox.messages) == 1
    ingest([shard(tmp_path, "b.parquet", 20, seed=2)], store, alerts=plan("mail"))
    once = email_channel(port)  # one try per pass: 421, 421, 421 over three passes
    start = t.utcnow()  # the passes, 1 s apart on the relay's clock: every retry is due
    for attempt in range(1, 4):
        result = run(store, {"mail": once}, at=attempt - 1.0, start=start)
        assert result.failed == 1 and result.dead == (1 if attempt == 3 else 0)
    assert notice_states(store) == {("breach", "sent"): 2, ("breach", "dead"): 1}
    assert len(mailbox.messages) == 1
    print(f"\nsmtp 451/drop/250 then 421x3: {dict(notice_states(store))}, "
          f"DATA attempts {mailbox.attempts}, delivered {len(mailbox.messages)}")


def test_a_relay_killed_after_the_200_sends_at_most_one_duplicate(
    store: ResultStore, tmp_path: Path, slack: Any, database_url: str
) -> None:
    receiver = slack()
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan("team"))
    doomed = subprocess.run(
        [sys.executable, str(WORKER), "--url", database_url, "--lease", "60"],
        env=subprocess_env(SHARDWATCH_TEST_WEBHOOK=receiver.url.get_secret_value()),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert doomed.returncode == 17, doomed.stderr
    assert len(receiver.bodies) == 1  # delivered, never marked
    assert notice_states(store) == {("breach", "sending"): 2}
    channels: dict[str, Channel] = {"team": slack_channel(receiver)}
    assert run(store, channels).channels == ()  # the dead relay's lease still holds
    assert run(store, channels, at=61).sent == 2  # once the lease has expired
    assert run(store, channels, at=62).channels == ()
    assert len(receiver.bodies) == 2
    first, second = (slack_items([b]) for b in receiver.bodies)
    assert first == second  # the one duplicate: the same two items, once more
    print(f"\nkill after 200: {len(receiver.bodies)} messages for 1 message's notices "
          f"(1 duplicate of {len(first)} items)")
    assert notice_states(store) == {("breach", "sent"): 2}


def test_hostile_names_arrive_escaped(
    store: ResultStore, tmp_path: Path, slack: Any, smtp: Any
) -> None:
    receiver = slack()
    mailbox, port = smtp()
    channels: dict[str, Channel] = {"team": slack_channel(receiver), "mail": email_channel(port)}
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan(*channels), dataset=HOSTILE)
    assert run(store, channels).sent == 4
    (body,) = receiver.bodies
    texts = [b["text"]["text"] for b in body["blocks"][1:]] + [body["text"]]
    for shown in texts:
        assert "<!channel>" not in shown and "<http://evil.example|x>" not in shown
    assert any("&lt;!channel&gt; &lt;http://evil.example|x&gt; &amp; &lt;b&gt;" in s
               for s in texts)
    html = decoded(mime_parts(mailbox.messages[0])[1])
    assert b"<!channel>" not in html and b"&lt;!channel&gt;" in html and b"<b>" not in html


def test_a_persisting_breach_is_reminded_once_per_interval(
    store: ResultStore, tmp_path: Path, slack: Any
) -> None:
    receiver = slack()
    channels: dict[str, Channel] = {"team": slack_channel(receiver)}
    # a 2 s interval on a fixed simulated clock; min_interval 0: pacing would sleep for real
    policy = RelayPolicy(renotify_hours=2 / 3600, retry_seconds=0.05, min_interval=0)
    # the shard's key only: the dataset's is judged after the commit, at another instant
    shard_only = AlertPlan((TAG.replace(level="shard"),), ("team",))
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=shard_only)
    # passes at `start` + `at` seconds, `start` being when the breach was last notified
    (start,) = {utc(v.last_notified_at) for v in Outbox(store.engine).alerts()}
    assert run(store, channels, policy, start=start).sent == 1
    assert run(store, channels, policy, at=1.99, start=start).sent == 0  # within the interval
    assert run(store, channels, policy, at=2.0, start=start).sent == 0  # not longer ago yet
    reminded = run(store, channels, policy, at=2.001, start=start)
    assert reminded.reminded == 1 and reminded.sent == 1
    assert run(store, channels, policy, at=2.8, start=start).sent == 0
    assert run(store, channels, policy, at=4.001, start=start).sent == 0  # one interval after
    assert run(store, channels, policy, at=4.002, start=start).sent == 1  # the next interval
    heads = [head for head, _ in slack_items(receiver.bodies)]
    assert heads == ["CRITICAL"] + ["CRITICAL, STILL"] * 2


def test_canary_secrets_appear_in_no_log_row_or_file(
    store: ResultStore, tmp_path: Path, slack: Any, smtp: Any, caplog: pytest.LogCaptureFixture,
    database_url: str,
) -> None:
    from support.store_checks import SUITES

    from shardwatch.validate.gx_adapter import GxPaths, GxValidator

    receiver = slack("500", "reset", "hang:2", "200")
    mailbox, port = smtp("550", auth=True)
    work = tmp_path / ".shardwatch"
    channels: dict[str, Channel] = {
        "team": slack_channel(receiver, read_timeout=0.5),
        "mail": email_channel(port, username="sw", password=SecretStr(CANARY)),
        "log": FileChannel(work / "alerts.jsonl", name="log"),
    }
    validator = GxValidator(GxPaths(work / "gx", work / "docs"), SUITES, "laion400m")
    caplog.set_level(logging.DEBUG)
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan(*channels),
           validator=validator)
    start = t.utcnow()  # the passes, 1 s apart on the relay's clock: every retry is due
    for i in range(5):
        run(store, channels, RelayPolicy(retry_seconds=0.05, max_attempts=5), at=i, start=start)
    assert len(receiver.bodies) == 1 and mailbox.attempts == 1  # the faults really happened
    assert "slack: HTTP 500" in caplog.text and "550" in caplog.text
    assert CANARY not in caplog.text
    dumped = []
    with store.engine.connect() as conn:
        for table in t.Base.metadata.sorted_tables:
            dumped += [repr(tuple(row)) for row in conn.execute(select(table))]
    assert any("550 5.1.1" in row for row in dumped)  # the dead letter's reason is stored
    assert not [row for row in dumped if CANARY in row]
    files = [p for p in work.rglob("*") if p.is_file()]
    assert len(files) > 5  # GX project, Data Docs pages, alerts.jsonl
    if database_url.startswith("sqlite:///"):
        files += list(Path(database_url.removeprefix("sqlite:///")).parent.glob("store.sqlite*"))
    assert not [p for p in files if CANARY.encode() in p.read_bytes()]


def test_a_notice_for_a_channel_no_longer_configured_is_dead_with_the_reason(
    store: ResultStore, tmp_path: Path
) -> None:
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan("gone"))
    result = run(store, {})
    assert result.dead == 2 and "no longer configured" in (result.channels[0].error or "")
    assert notice_states(store) == {("breach", "dead"): 2}


def test_claims_after_the_lease_is_expired_only(store: ResultStore, tmp_path: Path) -> None:
    """A slow relay is not raced by a second one while its lease holds."""
    ingest([shard(tmp_path, "a.parquet", 20)], store, alerts=plan("team"))
    outbox = Outbox(store.engine)
    held = outbox.claim("slow", timedelta(seconds=60), t.utcnow())
    assert len(held) == 2
    assert run(store, {}).channels == ()


def test_links_point_at_the_published_data_docs_and_reports_never_at_local_files(
    store: ResultStore, tmp_path: Path, slack: Any, smtp: Any
) -> None:
    """A validated shard's breach: with base URLs, each link is the base plus the page's
    path inside the site (so it resolves once the site folder is published there) and the
    run's report; without, no link. Never a local path, in Slack or either email part."""
    from support.store_checks import SUITES

    from shardwatch.validate.gx_adapter import GxPaths, GxValidator

    work = tmp_path / ".shardwatch"
    paths = GxPaths(work / "gx", work / "docs")
    validator = GxValidator(paths, SUITES, "laion400m")
    run_id = store.start_run()
    channels = ("mail", "team")
    alerts = AlertPlan((TAG,), channels, docs_index=str(paths.index), reports=True)
    ingest([shard(tmp_path / "data", "a.parquet", 20)], store, alerts=alerts,
           validator=validator, run_id=run_id)
    docs = "https://docs.example.org/sw/docs"
    for links in (Links(docs, "https://docs.example.org/sw/reports"), Links()):
        receiver = slack()
        mailbox, port = smtp()
        sent = run(store, {"team": slack_channel(receiver), "mail": email_channel(port)},
                   links=links)
        assert sent.sent == 4  # the shard and the dataset, on two channels
        (body,) = receiver.bodies
        (raw,) = mailbox.messages
        mail = message_from_bytes(raw)
        text_part, html_part = (decoded(p).decode() for p in mime_parts(mail))
        blobs = [repr(body), text_part, html_part, raw.decode()]
        for blob in blobs:
            assert str(tmp_path) not in blob and "/tmp/" not in blob
        shard_line, dataset_line = sorted(
            (b["text"]["text"] for b in body["blocks"][1:]), key=lambda x: "dataset" in x
        )
        assert "laion-test / shard a.parquet: observed 20.00% (20 of 100)" in shard_line
        if links.docs_base_url is None:
            assert "http" not in shard_line + dataset_line + text_part
            continue
        page = re.search(rf"<{re.escape(docs)}/([^|>]+)\|Data Docs>", shard_line)
        assert page is not None and (paths.docs / page[1]).is_file()  # the site's own page
        assert page[1].startswith("validations/") and page[1].endswith(".html")
        assert f"<{docs}/index.html|Data Docs>" in dataset_line and paths.index.is_file()
        report = f"https://docs.example.org/sw/reports/run-{run_id}.html"
        assert f"<{report}|report>" in shard_line
        assert f"Data Docs: {docs}/{page[1]}" in text_part and f'href="{report}"' in html_part
        with store.engine.begin() as conn:  # sent again on the next pass, without links
            conn.execute(text("UPDATE alert_outbox SET state = 'pending', next_attempt_at = NULL"))
