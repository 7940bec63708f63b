"""Scenario 19, names shown and never obeyed (issue 17, Build 6; docs/reliability.md).

Shard files are named with a newline and a fake `[CRITICAL] all clear` line, an ANSI
clear-screen, an OSC set-window-title, C1 controls, a line separator and a right-to-left
override (U+202E); the dataset name holds bidi controls too, and watched terms start with
spreadsheet formula prefixes. `shardwatch ingest` stores them (names are kept verbatim) and
alerts through the console, a Slack-like receiver and aiosmtpd; then `report` (text,
markdown, CSV, JSON, drift), `alerts list` and the pass report (HTML, Markdown) run. In
every output: the fake line never starts a line, no ESC, BEL, C1 or bidi character is
left raw, the escaped forms (`\\n`, `\\x1b`, `\\u202e`) are visible, and Table 1's CSV
neutralises formulas.
"""

from __future__ import annotations

import email
import json
import time
from email.message import EmailMessage
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import pytest
from support.builders import tagged_table, write_shard
from support.reliability.leaks import LeakWatch
from support.store_checks import run_shardwatch

from shardwatch.pipeline.monitor import PassSummary, ShardOutcome
from shardwatch.pipeline.resources import Resources
from shardwatch.present.artifacts import build_report
from shardwatch.settings.config import load_settings

pytestmark = pytest.mark.integration

S = "12 forged names"
FAKE = "[CRITICAL] all clear"
TRAP = f"\n{FAKE}\r\n- {FAKE}\x1b[2J\x1b]0;pwned\x07\x85\u2028{FAKE}\u202egnp"
GOOD_NAME = f"good{TRAP}.parquet"
BAD_NAME = f"bad{TRAP}.parquet"  # not parquet: quarantined, named in the reason line
DATASET = "ds\u202eevil\u2066x\u2069"
TERMS = ("=1+2", "+cmd", "-x", "@sum")
OBEYED = {chr(c) for c in range(0x20)} - {"\n", "\r", "\t"}  # line breaks: see _forged
OBEYED |= {"\x7f", *map(chr, range(0x80, 0xA0)), "\u061c", "\u200e", "\u200f"}
OBEYED |= {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


def _forged(text: str) -> list[str]:
    """Lines of `text` (any line break: \\n, \\r, \\x85, U+2028...) that start with the fake
    alert, once list markers and indentation are set aside."""
    return [line for line in text.splitlines() if line.lstrip(" -*>\u2022").startswith(FAKE)]


def _raw(text: str) -> set[str]:
    return {c for c in text if c in OBEYED}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_hostile_names_are_escaped_visibly_in_every_output(
    slack: Any, smtp: Any, canaries: Any, leaks: LeakWatch, figure: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    write_shard(tagged_table(60, 30, seed=1), folder, GOOD_NAME)
    (folder / BAD_NAME).write_bytes(b"not parquet at all")
    receiver = slack()
    mail, smtp_port = smtp()
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"""
dataset = {json.dumps(DATASET)}
lexicon = "formulas"
workers = 1
[lexicons.formulas]
extends = "birhane2021"
terms = {json.dumps(list(TERMS))}
[alerts.channels.team]
type = "slack"
webhook_url = {json.dumps(canaries.webhook_url(receiver.server.server_address[1]))}
attempts = 1
[alerts.channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "sw@example.org"
recipients = ["curators@example.org"]
attempts = 1
[alerts.channels.screen]
type = "console"
[alerts.rules.nsfw-tag-rate]
min_support = 1
""")
    outputs: dict[str, str] = {}

    def sw(label: str, *args: str) -> Any:
        done = run_shardwatch(*args, "--config", str(cfg), cwd=tmp_path)
        outputs[f"{label} stdout"], outputs[f"{label} stderr"] = done.stdout, done.stderr
        return done

    started = time.monotonic()
    ingested = sw("ingest", "ingest", str(folder), "--no-validate")
    figure(S, "ingest seconds (2 shards, console + Slack + email)", time.monotonic() - started)
    assert ingested.returncode == 3, ingested.stdout + ingested.stderr  # the bad one
    assert "1 done, 1 quarantined" in ingested.stdout, ingested.stdout
    assert receiver.bodies and mail.messages, "no alert was delivered"
    for fmt in ("text", "markdown", "csv", "json"):
        done = sw(f"report {fmt}", "report", "--dataset", DATASET, "--format", fmt)
        assert done.returncode == 0, done.stderr
    assert sw("report drift", "report", "--drift", "--dataset", DATASET).returncode == 0
    assert sw("alerts list", "alerts", "list").returncode in (0, 1)

    # the pass report (HTML and Markdown), as `shardwatch run` writes it; JSON keeps the
    # names exact (escaped by JSON itself, `\u202e` included: nothing raw there either)
    stored = [s["uri"] for s in json.loads(outputs["report json stdout"])["shards"]]
    assert len(stored) == 2 and all(TRAP in uri for uri in stored)
    outcomes = tuple(
        ShardOutcome("files", uri, "quarantined" if "bad" in uri else "done", reason=uri)
        for uri in stored
    )
    summary = PassSummary(1, outcomes, 0, (f"source 'files': {BAD_NAME}",), "alerts: 1", None)
    res = Resources(load_settings(cfg))
    markdown, page, _ = build_report(res.settings, summary, res.store)
    res.close()
    outputs["pass report markdown"], outputs["pass report html"] = markdown, page

    texts = dict(outputs)
    texts |= {f"slack {i}": s for i, b in enumerate(receiver.bodies) for s in _strings(b)}
    for i, raw in enumerate(mail.messages):
        mail_msg = email.message_from_bytes(raw, policy=email_policy)
        assert isinstance(mail_msg, EmailMessage)
        texts[f"email {i} subject"] = str(mail_msg["Subject"])
        for kind in ("plain", "html"):
            part = mail_msg.get_body((kind,))
            assert part is not None
            texts[f"email {i} {kind}"] = part.get_content()

    forged = {k: _forged(v) for k, v in texts.items() if _forged(v)}
    raw = {k: sorted(map(hex, map(ord, _raw(v)))) for k, v in texts.items() if _raw(v)}
    figure(S, "outputs searched", len(texts))
    figure(S, "forged lines", sum(map(len, forged.values())))
    figure(S, "outputs with a raw control or bidi character", len(raw))
    assert forged == {}, forged
    assert raw == {}, raw
    visible = "\\n[CRITICAL] all clear\\r\\n- [CRITICAL] all clear\\x1b[2J\\x1b]0;pwned\\x07"
    assert visible in outputs["ingest stdout"]
    assert "\\u202egnp.parquet" in outputs["ingest stdout"]
    assert "ds\\u202eevil\\u2066x\\u2069" in outputs["report text stdout"]
    slack_text = "\n".join(v for k, v in texts.items() if k.startswith("slack"))
    mail_text = "\n".join(v for k, v in texts.items() if k.startswith("email"))
    for text in (slack_text, mail_text):  # the shard is named, its escapes shown
        assert "all clear\\x1b[2J\\x1b]0;pwned\\x07\\x85\\u2028" in text
        assert "\\u202egnp.parquet" in text
    # Table 1 as CSV: every formula prefix neutralised
    cells = [row.split(",")[1] for row in outputs["report csv stdout"].splitlines()[1:]]
    for term in TERMS:
        assert f"'{term}" in cells, cells
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    for where, text in outputs.items():  # the session's secret canaries, as every scenario
        leaks.text(where, text)
    leaks.texts("slack", [json.dumps(b) for b in receiver.bodies])
    leaks.texts("email", mail.messages)
