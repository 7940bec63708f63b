"""Scenario 9: canary secrets in a pass of their own appear in none of its outputs, nor in
its DEBUG log; and every other scenario module searches its outputs with `leaks`.

The pass here depends on no other module and on no order: it stores breaching shards in
PostgreSQL through a URL whose password is the database canary, relays their notices to a
Slack-like receiver whose webhook path is the webhook canary (first answering 500) and to an
SMTP server that refuses the SMTP canary as a password, and opens the store through an
unreachable port with the same URL. Then it searches what that produced: the DEBUG log, every
table, every file under its folder, the Slack bodies and paths, the relay's result and the
errors. Each other scenario searches its own outputs as it goes (conftest.py checks, when a
module ends, that it searched something, and searches each test's DEBUG log)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from support.builders import tagged_table, write_shard
from support.reliability.leaks import SUITE, Canaries, LeakWatch
from support.store_checks import ingest

from shardwatch.alerting.email import EmailChannel
from shardwatch.alerting.message import Channel, Retry
from shardwatch.alerting.relay import RelayPolicy, relay
from shardwatch.alerting.slack import SlackChannel
from shardwatch.core.alerts import AlertPlan, Rule
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.outbox import Outbox
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

S = "9 secrets"
TAG = Rule("tag", "nsfw_tag_rate", "critical", "both", max=0.05, min_support=10)


def test_every_scenario_module_hands_its_outputs_to_leaks() -> None:
    """Each scenario module has a test that takes the `leaks` fixture (conftest.py then
    checks, when the module ends, that it searched something)."""
    without = []
    for path in sorted(SUITE.glob("test_*.py")):
        if path.name == "test_secrets.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        takes = {
            arg.arg
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
            for arg in node.args.args
        }
        if "leaks" not in takes:
            without.append(path.name)
    assert len(list(SUITE.glob("test_*.py"))) > 1
    assert without == []


def test_a_pass_with_canary_secrets_leaves_them_in_none_of_its_outputs(
    fresh_postgres_url: str,
    slack: Any,
    smtp: Any,
    tmp_path: Path,
    canaries: Canaries,
    leaks: LeakWatch,
    debug_log: Path,
    figure: Any,
) -> None:
    url = canaries.postgres_url(fresh_postgres_url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        store = ResultStore(engine)
        (tmp_path / "shards").mkdir()
        paths = [
            write_shard(tagged_table(100, 20, seed=i), tmp_path / "shards", f"s{i}.parquet")
            for i in range(2)
        ]
        ingest(paths, store, alerts=AlertPlan((TAG,), ("mail", "team")))
        receiver = slack("500")
        webhook = canaries.webhook_url(receiver.server.server_address[1])
        _, smtp_port = smtp()  # offers no AUTH: the login with the canary password fails
        channels: dict[str, Channel] = {
            "team": SlackChannel(SecretStr(webhook), name="team", retry=Retry(2, 0.0, 0.0)),
            "mail": EmailChannel(
                host="127.0.0.1",
                port=smtp_port,
                sender="shardwatch@example.org",
                recipients=["oncall@example.org"],
                username="shardwatch",
                password=SecretStr(canaries.smtp_password),
                name="mail",
                retry=Retry(1, 0.0, 0.0),
                timeout=2.0,
            ),
        }
        policy = RelayPolicy(lease_seconds=30, renotify_hours=0, min_interval=0.0)
        result = relay(Outbox(engine), channels, owner="secrets", policy=policy)
        with engine.connect() as conn:
            reasons = [r[0] for r in conn.execute(text("SELECT last_error FROM alert_outbox"))]
        rows = leaks.database("results (canary password)", url)
    finally:
        engine.dispose()
    unreachable = make_url(url).set(port=9).render_as_string(hide_password=False)
    refused = make_engine(unreachable)  # nothing listens on port 9: connection refused
    try:
        with pytest.raises(SQLAlchemyError) as error, refused.connect():
            pass
    finally:
        refused.dispose()
    logging.getLogger("shardwatch.reliability").debug("secrets pass log probe")

    # what the pass did, so the search below is over real outputs
    assert len(receiver.bodies) > 0 and receiver.paths[0].endswith(canaries.webhook)
    assert any(r for r in reasons), reasons  # the refused SMTP login left a reason
    assert rows > 0
    log = debug_log.read_bytes()
    assert b"secrets pass log probe" in log

    leaks.texts("slack bodies", [repr(body) for body in receiver.bodies])
    leaks.text("relay result", repr(result))
    leaks.texts("delivery reasons", [r for r in reasons if r])
    leaks.text("database error", str(error.value))
    files = leaks.tree("the pass's folder", tmp_path)
    leaks.debug_log(debug_log)
    figure(S, "items searched (own pass)", leaks.checked["secrets"])
    figure(S, "files searched", files)
    figure(S, "rows searched", rows)
    figure(S, "DEBUG log (bytes)", len(log))
    figure(S, "canary hits", len(leaks.hits))
    assert leaks.hits == []
    assert leaks.checked["secrets"] >= 5 + files
