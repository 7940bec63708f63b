"""Alert delivery against real servers on loopback: a Slack-like HTTP receiver and aiosmtpd,
both with scripted faults (429 + Retry-After, 5xx, a hang, a reset; 421, 451, 550, a drop
during DATA)."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from email import message_from_bytes
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from support.loopback import CANARY, decoded, refused_port

from shardwatch.alerting.email import EmailChannel
from shardwatch.alerting.links import Links
from shardwatch.alerting.local import ConsoleChannel, FileChannel
from shardwatch.alerting.message import DeliveryError, Message, Retry
from shardwatch.alerting.slack import SlackChannel, slack_payload
from shardwatch.alerting.text import slack_escape
from shardwatch.core.alert_items import AlertItem, scope_label

pytestmark = pytest.mark.integration

HOSTILE = "<!channel> <http://evil.example|click> & <script>alert(1)</script>"


def message(n: int = 2) -> Message:
    items = tuple(
        AlertItem(rule="nsfw_tag_rate", severity="critical", dataset=HOSTILE,
                  scope=f"shard-{i}.parquet", observed=0.03, threshold=0.01, run_id=7,
                  link=f"/docs/validations/shard-{i}.html")
        for i in range(n)
    )
    return Message(title=f"shardwatch: {n} breaches", items=items)


# --- a Slack-like receiver with scripted faults --------------------------------------------

def fast(attempts: int = 4) -> Retry:
    return Retry(attempts=attempts, base=0.05, cap=2.0)


def test_slack_delivers_block_kit_with_every_hostile_string_escaped(slack: Any) -> None:
    receiver = slack("200")
    SlackChannel(receiver.url, retry=fast()).send(message(3))
    (body,) = receiver.bodies
    raw = json.dumps(body)
    assert "<!channel>" not in raw and "<http://evil" not in raw and "<script>" not in raw
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert len(sections) == 3
    assert slack_escape(HOSTILE) in sections[0]
    assert "&lt;!channel&gt; &lt;http://evil.example|click&gt; &amp;" in sections[0]
    assert sections[0].endswith("observed 0.03, threshold 0.01 (run 7)")
    assert "/docs/" not in raw  # a local path is never a link


def test_slack_honours_retry_after(slack: Any) -> None:
    receiver = slack("429:1", "200")
    start = time.monotonic()
    SlackChannel(receiver.url, retry=fast()).send(message())
    assert len(receiver.times) == 2 and len(receiver.bodies) == 1
    assert receiver.times[1] - receiver.times[0] >= 1.0  # waited as told
    assert time.monotonic() - start < 5


def test_slack_retries_5xx_with_bounded_backoff_then_gives_up(slack: Any) -> None:
    receiver = slack("500", "500", "200")
    SlackChannel(receiver.url, retry=fast()).send(message())
    assert len(receiver.times) == 3 and len(receiver.bodies) == 1
    always = slack(*["500"] * 10)
    with pytest.raises(DeliveryError) as info:
        SlackChannel(always.url, retry=fast(attempts=3)).send(message())
    assert not info.value.permanent and info.value.reason == "slack: HTTP 500"
    assert len(always.times) == 3  # bounded


def test_slack_cuts_a_hang_off_with_the_read_timeout(slack: Any) -> None:
    receiver = slack("hang:5")
    start = time.monotonic()
    with pytest.raises(DeliveryError) as info:
        SlackChannel(receiver.url, read_timeout=0.5, retry=fast(attempts=1)).send(message())
    elapsed = time.monotonic() - start
    assert elapsed < 2.0, elapsed
    assert not info.value.permanent and "timed out" in info.value.reason


def test_slack_reset_is_transient_and_a_4xx_is_permanent(slack: Any) -> None:
    reset = slack("reset", "reset")
    with pytest.raises(DeliveryError) as info:
        SlackChannel(reset.url, retry=fast(attempts=2)).send(message())
    assert not info.value.permanent and "reset" in info.value.reason
    bad = slack("400")
    with pytest.raises(DeliveryError) as info:
        SlackChannel(bad.url, retry=fast()).send(message())
    assert info.value.permanent and len(bad.times) == 1


def test_slack_errors_and_logs_never_carry_the_webhook(
    slack: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs requests at DEBUG
    errors = []
    for script in (["reset"], ["hang:3"], ["404"], ["500"]):
        receiver = slack(*script)
        channel = SlackChannel(receiver.url, read_timeout=0.3, retry=fast(attempts=1))
        with pytest.raises(DeliveryError) as info:
            channel.send(message())
        errors.append(info.value)
        assert CANARY not in repr(channel)
    port = refused_port()  # bound, never listening: connection refused
    url = SecretStr(f"http://127.0.0.1:{port}/hooks/{CANARY}")
    with pytest.raises(DeliveryError) as info:
        SlackChannel(url, retry=fast(attempts=1)).send(message())
    errors.append(info.value)
    for error in errors:
        assert CANARY not in str(error) and CANARY not in repr(error)
        assert error.__cause__ is None or CANARY not in str(error.__cause__)
    assert CANARY not in caplog.text


# --- aiosmtpd with scripted faults ---------------------------------------------------------

def email(port: int, **kwargs: Any) -> EmailChannel:
    options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "sender": "sw@example.org",
                               "recipients": ["curator@example.org"], "timeout": 5.0,
                               "retry": fast(attempts=3)}
    options.update(kwargs)
    return EmailChannel(**options)


def test_email_has_a_text_part_and_an_escaped_html_part(smtp: Any) -> None:
    handler, port = smtp("250", auth=True)
    email(port, username="sw", password=SecretStr(CANARY)).send(message())
    (raw,) = handler.messages
    mail = message_from_bytes(raw)
    parts = {p.get_content_type(): decoded(p).decode() for p in mail.walk()
             if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert HOSTILE in parts["text/plain"]  # plain text is shown as text
    assert "<script>" not in parts["text/html"] and "&lt;script&gt;" in parts["text/html"]
    assert "&lt;!channel&gt;" in parts["text/html"]
    assert CANARY.encode() not in raw


def test_email_4xx_is_retried_and_a_drop_during_data_too(smtp: Any) -> None:
    handler, port = smtp("451", "drop", "250")
    email(port).send(message())
    assert handler.attempts == 3 and len(handler.messages) == 1


def test_email_4xx_that_persists_is_transient_after_bounded_attempts(smtp: Any) -> None:
    handler, port = smtp("421", "421", "421", "421")
    with pytest.raises(DeliveryError) as info:
        email(port).send(message())
    assert not info.value.permanent and info.value.reason.startswith("smtp: 421")
    assert handler.attempts == 3 and handler.messages == []


def test_email_5xx_is_permanent_at_once_with_its_reason(smtp: Any) -> None:
    handler, port = smtp("550")
    with pytest.raises(DeliveryError) as info:
        email(port).send(message())
    assert info.value.permanent
    assert info.value.reason == "smtp: 550 5.1.1 no such mailbox"
    assert handler.attempts == 1


def test_email_bad_password_never_appears_in_the_error(smtp: Any) -> None:
    handler, port = smtp(auth=True)
    wrong = SecretStr(CANARY + "-wrong")
    channel = email(port, username="sw", password=wrong, timeout=1.0, retry=fast(attempts=1))
    with pytest.raises(DeliveryError) as info:  # aiosmtpd stalls a failed AUTH: timeout
        channel.send(message())
    assert CANARY not in str(info.value) and CANARY not in repr(channel)
    assert handler.messages == []


# --- demo channels ---------------------------------------------------------------------------

def test_file_channel_appends_one_json_line_per_item(tmp_path: Path) -> None:
    path = tmp_path / "alerts" / "alerts.jsonl"
    FileChannel(path).send(message(2))
    FileChannel(path).send(message(1))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 3 and lines[0]["dataset"] == HOSTILE and lines[0]["observed"] == 0.03


def test_console_channel_writes_plain_text() -> None:
    out: list[str] = []
    ConsoleChannel(out.append).send(message(1))
    assert out == [message(1).text() + "\n"]
    assert "[CRITICAL] nsfw_tag_rate on " in out[0]


# --- a storm: split to each platform's limits ------------------------------------------------

def test_a_storm_is_split_into_slack_and_email_messages_within_their_limits() -> None:
    """1,000 items (one with a 5,000-character scope): every Slack message of the split has
    at most 50 blocks, sections of at most 3000 characters and 40,000 in all, and lists
    every item once; emails hold at most 500 items."""
    items = [
        AlertItem(rule=f"rule-{i % 7}", severity="critical" if i % 3 else "warning",
                  dataset=HOSTILE, scope=("s" * 5000 if i == 3 else f"shard-{i:04d}.parquet"),
                  observed=0.5, threshold=0.01, run_id=1, link=f"/docs/{i}.html")
        for i in range(1000)
    ]
    slack = SlackChannel(SecretStr("http://127.0.0.1:9/hook"))
    rest, shown = list(items), []
    while rest:
        n = slack.capacity(rest)
        assert 1 <= n <= len(rest)
        body = slack_payload(Message(title="storm", items=tuple(rest[:n])))
        blocks = body["blocks"]
        sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
        assert len(blocks) <= 50 and len(sections) == len(blocks) - 1  # no "... and N more"
        assert max(len(s) for s in sections) <= 3000
        assert sum(len(s) for s in sections) <= 40_000
        shown += [line for s in sections for line in s.split("\n")]
        rest = rest[n:]
    assert len(shown) == 1000 and "<!channel>" not in "".join(shown)
    assert sum(1 for line in shown if line.endswith("\u2026")) == 1  # the 5,000-char line
    mail = EmailChannel(host="127.0.0.1", port=9, sender="a@example.org",
                        recipients=["b@example.org"])
    assert mail.capacity(items) == 500 and mail.capacity(items[:10]) == 10
    few = slack_payload(message(3))  # a small message keeps one section per item
    assert len(few["blocks"]) == 4


# --- what a recipient reads: numbers, links, escaping, headers ------------------------------

MARKDOWN = "*bold* _it_ ~s~ <!channel> & `code`"
LINKS = Links("https://docs.example.org/sw", "https://reports.example.org/sw")
SLACK_LINK = re.compile(r"<https://[^|<>]+\|[^<>]+>")


def as_stored(local: Path) -> tuple[AlertItem, ...]:
    """Items as the outbox hands them over: a site-relative Data Docs link, and local paths
    where an older store or a reason may hold them (an absolute link, a suite file)."""
    return (
        AlertItem(rule="term-keyword-nsfw-rate", severity="critical", dataset=MARKDOWN,
                  scope=scope_label(f"shard:{local}/{MARKDOWN}.parquet|term:{MARKDOWN}"),
                  observed=731 / 59812, threshold="<= 0.25", run_id=7, detail="731 of 59812",
                  link="validations/laion400m/run-7/20261205T001500.000000Z/p.html",
                  report="run-7.html"),
        AlertItem(rule="validation", severity="warning", dataset=MARKDOWN,
                  scope=scope_label(f"shard:{local}/cache/b.parquet"), observed=1.0,
                  threshold="<= 0", run_id=7, link=str(local / ".shardwatch/docs/index.html"),
                  detail=f"validation could not run: {local}/expectations/x.json: no suite",
                  report="run-7.html"),
        AlertItem(rule="new-high-risk-domain", severity="warning", dataset=MARKDOWN,
                  scope=scope_label(f"shard:{local}/c.parquet|domain:{MARKDOWN}.com"),
                  observed=0.5, threshold="<= 0.5", detail="40 of 80", run_id=None),
    )


@pytest.mark.parametrize("links", [LINKS, Links()], ids=["base-urls", "no-base-urls"])
def test_slack_shows_rates_public_links_only_and_escapes_every_field(
    slack: Any, tmp_path: Path, links: Links
) -> None:
    receiver = slack("200")
    items = tuple(links.resolve(i) for i in as_stored(tmp_path))
    SlackChannel(receiver.url, retry=fast()).send(Message(f"shardwatch: {MARKDOWN}", items))
    (body,) = receiver.bodies
    raw = json.dumps(body, ensure_ascii=False)
    assert str(tmp_path) not in raw and "/tmp/" not in raw and ".shardwatch" not in raw
    sections = [b["text"] for b in body["blocks"] if b["type"] == "section"]
    assert all(s["type"] == "mrkdwn" and s["verbatim"] is True for s in sections)
    first, second, third = (s["text"] for s in sections)
    assert "observed 1.22% (731 of 59,812), threshold &lt;= 25% (run 7)" in first
    assert "observed 50.00% (40 of 80), threshold &lt;= 50%" in third
    assert "observed 1 (validation could not run: x.json: no suite)" in second
    for text in [body["text"], body["blocks"][0]["text"]["text"], first, second, third]:
        shown = SLACK_LINK.sub("", text)  # our own <url|label> links aside
        assert not set("*_~`<>") & set(shown), shown
        assert re.sub("&(amp|lt|gt);", "", shown).count("&") == 0
        assert "&lt;!channel&gt; &amp;" in shown
    if links.docs_base_url:
        assert first.endswith(
            " | <https://docs.example.org/sw/validations/laion400m/run-7/"
            "20261205T001500.000000Z/p.html|Data Docs> "
            "| <https://reports.example.org/sw/run-7.html|report>"
        )
        assert second.endswith("(run 7) | <https://reports.example.org/sw/run-7.html|report>")
    else:
        assert "http" not in first + second + third and "Data Docs" not in raw


@pytest.mark.parametrize("links", [LINKS, Links()], ids=["base-urls", "no-base-urls"])
def test_email_has_date_message_id_plain_text_and_no_local_path(
    smtp: Any, tmp_path: Path, links: Links
) -> None:
    import socket

    handler, port = smtp("250")
    items = tuple(links.resolve(i) for i in as_stored(tmp_path))
    before = datetime.now(UTC).replace(microsecond=0)
    email(port, sender="Shardwatch <alerts@example.org>").send(Message("shardwatch: 3", items))
    (raw,) = handler.messages
    mail = message_from_bytes(raw)
    sent = parsedate_to_datetime(mail["Date"])
    assert sent.utcoffset() is not None and before <= sent <= datetime.now(UTC)
    message_id = mail["Message-ID"]
    assert re.fullmatch(r"<[^<>@\s]+@example\.org>", message_id), message_id
    fqdn = socket.getfqdn()
    assert "." not in fqdn or fqdn not in message_id  # not the machine's name
    parts = {p.get_content_type(): decoded(p).decode() for p in mail.walk()
             if not p.is_multipart()}
    assert mail.get_content_type() == "multipart/alternative"
    assert set(parts) == {"text/plain", "text/html"}
    text, page = parts["text/plain"], parts["text/html"]
    for blob in (text, page, raw.decode("utf-8", "replace")):
        assert str(tmp_path) not in blob and "/tmp/" not in blob, blob
        assert ".shardwatch/" not in blob
    assert "observed 1.22% (731 of 59,812), threshold <= 25% (run 7)" in text
    assert f"on {MARKDOWN} / shard {MARKDOWN}.parquet, term {MARKDOWN!r}" in text  # as text
    assert "<!channel>" not in page and "&lt;!channel&gt; &amp;" in page
    assert "threshold &lt;= 25% (run 7)" in page
    if links.docs_base_url:
        url = "https://docs.example.org/sw/validations/laion400m/run-7/20261205T001500.000000Z/p.html"
        assert f"Data Docs: {url}" in text and f'<a href="{url}">Data Docs</a>' in page
        assert text.count("report: https://reports.example.org/sw/run-7.html") == 2
    else:
        assert "http" not in text and "<a " not in page
