"""Scenario 8, alert storms (docs/reliability.md): 1,000 breaches within a minute reach Slack,
email and a file aggregated, at most one message per second per channel, none lost, none
duplicated.

The breaches come through the real path: two `shardwatch ingest` processes share 50 small
shards on PostgreSQL (20 shard-level rules breach on each: 1,000 alert keys) and relay at the
end, while `shardwatch alerts relay` runs alongside again and again, as cron would; then relay
passes run until nothing is due. The receivers are real: a Slack-like HTTP server that
answers one request with 429 + Retry-After, and aiosmtpd requiring a login. Every secret is
a canary (webhook path, SMTP password, database password).

Checked per channel: consecutive messages at least 1 s apart (receiver clocks for Slack and
SMTP; the outbox's sent_at for the file); every alert key in exactly one message; each
message's stated aggregate ("N alert(s), K critical", "message i of n: items a-b") equal to
what the messages list; Slack messages within Slack's limits (50 blocks, 3000 characters a
section, 40,000 in all); emails of a sane size; no caption; the outbox 3 x 1,000 sent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr
from sqlalchemy import Engine, text
from support.builders import tagged_table, write_shard
from support.loopback import LoopbackController, SlackReceiver
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import DATASET as STORE_DATASET
from support.store_checks import ingest, subprocess_env

from shardwatch.alerting.relay import RelayPolicy, RelayResult, relay
from shardwatch.alerting.slack import SlackChannel
from shardwatch.core.alert_items import scope_label
from shardwatch.core.alerts import DEFAULT_RULES, AlertPlan, Rule
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.outbox import Outbox
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

SCENARIO = "8 alert storms"
DATASET = "laion-storm"
N_SHARDS = 50
ROWS, NSFW, KEYWORD = 40, 8, 12  # tag rate 0.2, keyword rate 0.3, 4 of 12 keyword rows UNLIKELY
# 20 rules, name -> (metric, severity, max, label); each breaches on every shard: 1,000 keys
RULES = {
    **{f"storm-tag-{i}": ("nsfw_tag_rate", "critical", 0.02 * i, "NSFW") for i in range(8)},
    **{f"storm-keyword-{i}": ("keyword_nsfw_rate", "warning", 0.02 * i, "NSFW") for i in range(10)},
    **{
        f"storm-unlikely-{i}": ("keyword_tag_disagreement", "warning", 0.1 * i, "UNLIKELY")
        for i in range(2)
    },
}
CHANNELS = ("log", "mail", "team")
CAPTIONS = ("a picture of a tree", "xxx poster")  # what the shards' captions say
ITEM = re.compile(r"^\[(?P<head>[^\]]+)\] (?P<rule>\S+) on (?P<where>.+?): observed")
TITLE = re.compile(
    r"^shardwatch: (?P<n>[\d,]+) alert\(s\)(?:, (?P<critical>[\d,]+) critical)? in [\w-]+"
    r"(?: \(message (?P<i>\d+) of (?P<of>\d+): items (?P<a>[\d,]+)-(?P<b>[\d,]+)\))?$"
)
MIN_GAP = 1.0 - 1e-3  # the default min_interval_seconds; 1 ms for clock granularity


# --- aiosmtpd with a login and arrival times ------------------------------------------------
@dataclass
class Mailbox:
    password: str
    messages: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    logins: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not session.authenticated:
            return "530 5.7.0 authentication required"
        self.times.append(time.monotonic())
        self.messages.append(envelope.content)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == self.password.encode()
        self.logins += ok
        return AuthResult(success=ok)


@pytest.fixture
def mailbox(canaries: Canaries) -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox(canaries.smtp_password)
    controller = LoopbackController(  # on port 0: the OS picks
        box, authenticator=box.authenticate, auth_require_tls=False
    )
    controller.start()
    port = controller.port
    yield box, port
    controller.stop()


# --- the service, as processes --------------------------------------------------------------
@dataclass
class Run:
    args: tuple[str, ...]
    started: float
    ended: float
    returncode: int
    stdout: str
    stderr: str


def shardwatch(config: Path, cwd: Path, *args: str) -> Run:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "shardwatch", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=subprocess_env(),
        timeout=300,
        check=False,
    )
    return Run(args, started, time.monotonic(), done.returncode, done.stdout, done.stderr)


class Cron(threading.Thread):
    """`shardwatch alerts relay` again and again until stopped, as a scheduler would."""

    def __init__(self, config: Path, cwd: Path, runs: list[Run]) -> None:
        super().__init__(daemon=True)
        self.config, self.cwd, self.runs = config, cwd, runs
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.runs.append(shardwatch(self.config, self.cwd, "alerts", "relay"))
            self.stop.wait(0.3)


def write_config(
    path: Path, url: str, webhook: str, smtp_port: int, password: str, log: Path
) -> None:
    lines = [
        f"database_url = {json.dumps(url)}",
        f"dataset = {json.dumps(DATASET)}",
        f"state_dir = {json.dumps(str(log.parent))}",  # the output folder, not the config's
        "[alerts]",
        "renotify_hours = 0",
        "[alerts.channels.team]",
        'type = "slack"',
        f"webhook_url = {json.dumps(webhook)}",
        "[alerts.channels.mail]",
        'type = "email"',
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'security = "none"',
        'sender = "shardwatch@example.org"',
        'recipients = ["curators@example.org"]',
        'username = "shardwatch"',
        f"password = {json.dumps(password)}",
        "[alerts.channels.log]",
        'type = "file"',
        f"path = {json.dumps(str(log))}",
    ]
    for rule in DEFAULT_RULES:  # only the storm's rules: exactly 10 keys per shard
        lines += [f"[alerts.rules.{rule.name}]", "enabled = false"]
    for name, (metric, severity, bound, label) in RULES.items():
        lines += [
            f"[alerts.rules.{name}]",
            f'metric = "{metric}"',
            f'severity = "{severity}"',
            'level = "shard"',
            f"max = {bound:.2f}",
            f'label = "{label}"',
        ]
    path.write_text("\n".join(lines) + "\n")


# --- what arrived ---------------------------------------------------------------------------
@dataclass
class Delivered:
    """One channel's messages: their titles, their items' keys, and when they arrived."""

    titles: list[str] = field(default_factory=list)
    items: list[list[tuple[str, str]]] = field(default_factory=list)  # (rule, where) per message
    times: list[float] = field(default_factory=list)  # seconds, per message

    def keys(self) -> Counter[tuple[str, str]]:
        return Counter(k for message in self.items for k in message)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def item_key(line: str) -> tuple[str, str]:
    match = ITEM.match(line)
    assert match, line
    assert match["head"] in ("CRITICAL", "WARNING"), line
    return match["rule"], match["where"]


def slack_messages(receiver: SlackReceiver) -> Delivered:
    """Every Slack body within Slack's limits; items read off every section, line by line."""
    out = Delivered(times=list(receiver.times))
    for body in receiver.bodies:
        blocks = body["blocks"]
        assert len(blocks) <= 50
        assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
        sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
        assert len(sections) == len(blocks) - 1  # no "... and N more": every item is listed
        assert all(len(s) <= 3000 for s in sections)
        assert len(body["text"]) + sum(len(s) for s in sections) <= 40_000
        out.titles.append(body["text"])
        out.items.append([item_key(line) for s in sections for line in s.split("\n")])
    return out


def email_messages(box: Mailbox) -> Delivered:
    out = Delivered(times=list(box.times))
    for raw in box.messages:
        assert len(raw) <= 512 * 1024  # a sane size
        mail: Any = message_from_bytes(raw, policy=policy.default)
        plain = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        lines = plain.splitlines()
        out.titles.append(lines[0])
        assert mail["Subject"] == lines[0][:200]
        out.items.append([item_key(line.removeprefix("- ")) for line in lines[1:]])
        assert html.count("<li>") == len(lines) - 1
    return out


def file_messages(log: Path, engine: Engine) -> Delivered:
    """The file channel's JSON lines (one per item), grouped into messages by the outbox's
    sent_at of each item's notice (one per message), which are also the times."""
    with engine.connect() as conn:
        marks = conn.execute(
            text(
                "SELECT a.rule, a.scope, o.sent_at FROM alert_outbox o "
                "JOIN alerts a ON a.id = o.alert_id WHERE o.channel = 'log'"
            )
        ).all()
    when = {
        (rule, f"{DATASET} / {scope_label(scope)}"): at for rule, scope, at in marks
    }
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    groups: dict[datetime, list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["rule"], f"{row['dataset']} / {row['scope']}")
        groups.setdefault(when[key], []).append({**row, "key": key})
    out = Delivered()
    for at in sorted(groups):
        (title,) = {row["title"] for row in groups[at]}  # one message, one title
        out.titles.append(title)
        out.items.append([row["key"] for row in groups[at]])
        out.times.append(at.timestamp())
    assert sum(len(i) for i in out.items) == len(rows)
    return out


def check_aggregates(name: str, got: Delivered) -> None:
    """Each message's title states its batch's totals and its item range; the batch's
    messages list exactly that many items, in order, critical first."""
    batch: list[tuple[re.Match[str], list[tuple[str, str]]]] = []
    for title, items in zip(got.titles, got.items, strict=True):
        match = TITLE.match(title)
        assert match, (name, title)
        if match["i"] is None:
            assert int(match["n"].replace(",", "")) == len(items), (name, title)
            continue
        i, of = int(match["i"]), int(match["of"])
        a, b = (int(match[k].replace(",", "")) for k in ("a", "b"))
        assert b - a + 1 == len(items), (name, title)
        assert i == len(batch) + 1, (name, title)  # the parts of a batch arrive in order
        batch.append((match, items))
        if i == of:
            total = int(match["n"].replace(",", ""))
            listed = [k for _, part in batch for k in part]
            assert len(listed) == total == b, (name, title)
            critical = sum(1 for rule, _ in listed if RULES[rule][1] == "critical")
            assert critical == int((match["critical"] or "0").replace(",", "")), (name, title)
            order = [RULES[rule][1] != "critical" for rule, _ in listed]
            assert order == sorted(order), (name, "critical first")
            batch = []
    assert batch == [], (name, "a batch's last message is missing")


def outbox_rows(engine: Engine) -> tuple[Counter[tuple[str, str]], dict[str, list[datetime]]]:
    """Notices per (channel, state), and each channel's distinct sent_at (one per message)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT channel, state, sent_at FROM alert_outbox")).all()
    states = Counter((r[0], r[1]) for r in rows)
    sent: dict[str, set[datetime]] = {}
    for channel, _, at in rows:
        if at is not None:
            sent.setdefault(channel, set()).add(at)
    return states, {c: sorted(v) for c, v in sent.items()}


def test_a_storm_of_1000_breaches_is_aggregated_paced_and_nothing_is_lost(
    postgres_server: Any,
    fresh_postgres_database: str,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Callable[[str, str, object], None],
    mailbox: tuple[Mailbox, int],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    box, smtp_port = mailbox
    receiver = SlackReceiver(["200", "200", "429:2"])  # the 3rd request is rate limited
    url = canaries.postgres_url(postgres_server.url(fresh_postgres_database))
    work, etc = tmp_path / "work", tmp_path / "etc"
    work.mkdir()
    etc.mkdir()
    log = work / ".shardwatch" / "alerts.jsonl"
    config = etc / "shardwatch.toml"  # holds the canaries: outside the output folder
    webhook = canaries.webhook_url(receiver.server.server_address[1])
    write_config(config, url, webhook, smtp_port, canaries.smtp_password, log)
    shards = tmp_path / "shards"
    shards.mkdir()
    paths = [
        write_shard(tagged_table(ROWS, NSFW, seed=i, keyword=KEYWORD), shards, f"s-{i:04d}.parquet")
        for i in range(N_SHARDS)
    ]
    expected = {(rule, f"{DATASET} / shard {p.name}") for p in paths for rule in RULES}
    assert len(expected) == 1000

    engine = make_engine(url)
    runs: list[Run] = []
    crons = [Cron(config, work, runs)]
    try:
        started = time.monotonic()
        for cron in crons:
            cron.start()
        ingests: list[Run] = []
        workers = [
            threading.Thread(
                target=lambda: ingests.append(
                    shardwatch(config, work, "ingest", str(shards), "--no-validate")
                )
            )
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=240)
        for cron in crons:
            cron.stop.set()
        for cron in crons:
            cron.join(timeout=120)
        passes = 0
        while passes < 5:  # repeated passes until nothing is due
            states, _ = outbox_rows(engine)
            if set(states) <= {(c, "sent") for c in CHANNELS}:
                break
            runs.append(shardwatch(config, work, "alerts", "relay"))
            passes += 1
        elapsed = time.monotonic() - started

        # --- the processes -------------------------------------------------------------------
        for r in ingests + runs:
            leaks.text(f"{' '.join(r.args[:2])} stdout", r.stdout)
            leaks.text(f"{' '.join(r.args[:2])} stderr", r.stderr)
        assert len(ingests) == 2
        for r in ingests:
            assert r.returncode == 0, r.stderr[-2000:]
        for r in runs:
            assert r.returncode == 0, r.stderr[-2000:]  # nothing failed, nothing dead
            assert "NOT delivered" not in r.stderr
        done = Counter(
            line.split()[1]
            for r in ingests
            for line in r.stdout.splitlines()
            if line.startswith("done ")
        )
        assert done == Counter({str(p.resolve()): 1 for p in paths})  # each shard once
        relays = [r for r in ingests + runs if re.search(r"alerts: .*\d+ to ", r.stderr)]
        overlapping = sum(
            1
            for i, a in enumerate(relays)
            for b in relays[i + 1 :]
            if a.started < b.ended and b.started < a.ended
        )

        # --- the outbox and the alerts ---------------------------------------------------------
        states, sent_at = outbox_rows(engine)
        assert states == {(c, "sent"): 1000 for c in CHANNELS}  # 0 pending, sending or dead
        assert Outbox(engine).counts() == {"sent": 3000}
        with engine.connect() as conn:
            first_breach, last_breach, keys = conn.execute(
                text("SELECT min(opened_at), max(opened_at), count(*) FROM alerts WHERE breaching")
            ).one()
            last_sent = conn.execute(text("SELECT max(sent_at) FROM alert_outbox")).scalar_one()
        assert keys == 1000
        storm_seconds = (last_breach - first_breach).total_seconds()
        assert storm_seconds < 60  # 1,000 breaches within a minute

        # --- what each channel received ---------------------------------------------------------
        got = {
            "team": slack_messages(receiver),
            "mail": email_messages(box),
            "log": file_messages(log, engine),
        }
        assert len(receiver.times) == len(receiver.bodies) + 1  # the 429, then its retry
        assert receiver.times[3] - receiver.times[2] >= 2.0  # Retry-After: 2 was honoured
        assert box.logins >= len(box.messages) > 0  # every email after a login (the canary)
        for name, delivered in got.items():
            assert delivered.keys() == Counter(dict.fromkeys(expected, 1)), name  # once each
            check_aggregates(name, delivered)
            assert min(delivered.gaps(), default=MIN_GAP) >= MIN_GAP, (name, delivered.gaps())
            if name != "team":  # one arrival per message (Slack also saw the 429)
                assert len(delivered.times) == len(delivered.items), name
            assert len(sent_at[name]) == len(delivered.items), name  # one mark per message
            gaps = [
                (b - a).total_seconds()
                for a, b in zip(sent_at[name], sent_at[name][1:], strict=False)
            ]
            assert min(gaps, default=MIN_GAP) >= MIN_GAP, (name, gaps)

        # --- no captions, no secrets -----------------------------------------------------------
        bodies = [json.dumps(b) for b in receiver.bodies]
        emails = [m.decode("utf-8", "replace") for m in box.messages]
        for blob in [*bodies, *emails, log.read_text()]:
            assert not any(c in blob for c in CAPTIONS)
        leaks.texts("slack body", bodies)
        leaks.texts("email", box.messages)
        leaks.text("caplog", caplog.text)
        leaks.database("results store", url)
        leaks.tree("work folder", work)

        # --- figures ---------------------------------------------------------------------------
        figure(SCENARIO, "alert keys breached", keys)
        figure(SCENARIO, "seconds from first to last breach", storm_seconds)
        figure(
            SCENARIO,
            "relay runs (ingest + alerts relay), overlapping pairs",
            f"{len(relays)}, {overlapping}",
        )
        for name, label in (("team", "slack"), ("mail", "email"), ("log", "file")):
            delivered = got[name]
            figure(SCENARIO, f"{label}: messages", len(delivered.items))
            figure(
                SCENARIO,
                f"{label}: most items in one message",
                max(len(i) for i in delivered.items),
            )
            figure(
                SCENARIO,
                f"{label}: min seconds between messages",
                min(delivered.gaps(), default=float("nan")),
            )
        figure(SCENARIO, "largest Slack body (bytes)", max(len(b) for b in bodies))
        figure(SCENARIO, "largest email (bytes)", max(len(m) for m in box.messages))
        figure(
            SCENARIO,
            "seconds from first breach to last delivery",
            (last_sent - first_breach).total_seconds(),
        )
        figure(SCENARIO, "test wall seconds", elapsed)
    finally:
        for cron in crons:
            cron.stop.set()
        engine.dispose()
        receiver.close()


def test_relays_racing_for_one_channel_take_turns_and_a_pass_defers_what_it_cannot_pace(
    postgres_server: Any,
    fresh_postgres_database: str,
    canaries: Canaries,
    leaks: LeakWatch,
    figure: Callable[[str, str, object], None],
    tmp_path: Path,
) -> None:
    """Three relays start at the same instant on a 200-notice backlog for one Slack channel:
    one takes the channel's turn and sends two paced messages, the others wait for the turn
    and find nothing left; no item twice, none lost. Then a pass whose wait budget is shorter
    than the interval sends what it may and leaves the rest, undamaged, for the next pass."""
    url = canaries.postgres_url(postgres_server.url(fresh_postgres_database))
    engine = make_engine(url)
    receiver = SlackReceiver([])
    webhook = SecretStr(canaries.webhook_url(receiver.server.server_address[1]))
    rules = tuple(
        Rule(name, metric, severity, "shard", max=bound, label=label)  # type: ignore[arg-type]
        for name, (metric, severity, bound, label) in RULES.items()
    )
    plan = AlertPlan(rules, ("team",))
    try:
        upgrade(engine)
        store = ResultStore(engine)

        def breach(first: int) -> set[tuple[str, str]]:
            paths = [
                write_shard(
                    tagged_table(ROWS, NSFW, seed=i, keyword=KEYWORD),
                    tmp_path,
                    # long names: 200 items need two Slack messages (30,000 characters)
                    f"r-{i:04d}-{'a-long-shard-file-name-' * 4}.parquet",
                )
                for i in range(first, first + 10)
            ]
            ingest(paths, store, alerts=plan)
            return {(r, f"{STORE_DATASET} / shard {p.name}") for p in paths for r in RULES}

        expected = breach(0)
        go = threading.Barrier(3)
        results: list[RelayResult] = []

        def race(i: int) -> None:
            channel = SlackChannel(webhook, name="team")
            go.wait()
            results.append(
                relay(
                    Outbox(engine),
                    {"team": channel},
                    owner=f"racer-{i}",
                    policy=RelayPolicy(renotify_hours=0),
                )
            )

        racers = [threading.Thread(target=race, args=(i,)) for i in range(3)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=120)
        got = slack_messages(receiver)
        assert got.keys() == Counter(dict.fromkeys(expected, 1))
        check_aggregates("team", got)
        assert len(got.items) == 2 and min(got.gaps()) >= MIN_GAP
        assert sorted(r.sent for r in results) == [0, 0, 200]  # one turn; the others waited
        race_gap, race_messages = min(got.gaps()), len(got.items)

        more = breach(10)  # the channel's next turn is at most 1 s away
        short = RelayPolicy(renotify_hours=0, max_wait=0.05)
        channel = SlackChannel(webhook, name="team")
        deferred = relay(Outbox(engine), {"team": channel}, owner="hasty", policy=short)
        assert deferred.failed == 0 and deferred.dead == 0
        assert deferred.sent + deferred.deferred == 200 and deferred.deferred > 0
        assert "wait for the next pass" in deferred.summary()
        assert Outbox(engine).counts() == {
            "sent": 200 + deferred.sent,
            "pending": deferred.deferred,
        }
        rest = relay(
            Outbox(engine), {"team": channel}, owner="patient", policy=RelayPolicy(renotify_hours=0)
        )
        assert rest.sent == deferred.deferred and rest.failed == 0
        got = slack_messages(receiver)
        assert got.keys() == Counter(dict.fromkeys(expected | more, 1))
        assert min(got.gaps()) >= MIN_GAP
        assert Outbox(engine).counts() == {"sent": 400}

        leaks.texts("racing slack body", [json.dumps(b) for b in receiver.bodies])
        leaks.text("deferred summary", deferred.summary())
        leaks.database("racing relays' store", url)
        figure(
            SCENARIO,
            "3 racing relays: messages, min seconds between them",
            f"{race_messages}, {race_gap:.3f}",
        )
    finally:
        engine.dispose()
        receiver.close()
