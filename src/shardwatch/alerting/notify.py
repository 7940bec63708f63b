"""Notify: deliver one grouped alert message to a channel (Slack, email, console, file).

Every channel either returns (delivered) or raises `DeliveryError`, which says whether the
failure is permanent (dead-letter it) or transient (retry later) and carries a reason that
never contains a secret: Slack webhook URLs and SMTP passwords are `SecretStr`, read only at
the moment of sending, and exception texts (requests embeds the URL in them) are replaced by
their type and a fixed description. What an item says, and how each medium escapes it
(Slack mrkdwn, HTML in email), is alert_text.py's: formatted numbers, no local paths, public
links only. Raw captions never reach a message: alert items carry rule names, numbers, names
and links only. Emails carry `Date` and `Message-ID` headers and a plain-text part.
"""

from __future__ import annotations

import html
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import SecretStr

from shardwatch.alerting.text import (
    html_line,
    message_id_domain,
    plain_line,
    slack_line,
    slack_text,
)
from shardwatch.alerting.text import slack_escape as slack_escape  # re-exported (was defined here)
from shardwatch.alerting.text import subject_line as _subject

Severity = Literal["warning", "critical"]
Kind = Literal["breach", "reminder", "recovery", "test"]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class AlertItem:
    """One breach (or recovery) inside a message: what, where, observed vs threshold."""

    rule: str
    severity: Severity
    dataset: str
    scope: str  # `shard <file name or URL>` or `dataset (...)`, and the term or domain
    observed: float | int | str | None
    threshold: float | int | str | None
    kind: Kind = "breach"
    run_id: int | None = None
    link: str | None = None  # Data Docs: a site-relative path when stored, a URL when sent
    detail: str | None = None  # e.g. "12 of 351" or the failing checks' names
    report: str | None = None  # the run's report: `run-N.html` when stored, a URL when sent


@dataclass(frozen=True)
class Message:
    """What one channel receives for one relay pass: many items, one message."""

    title: str
    items: tuple[AlertItem, ...] = field(default=())

    def text(self) -> str:
        """Plain text (email's text part, console)."""
        return "\n".join([_subject(self.title), *(f"- {plain_line(i)}" for i in self.items)])


class DeliveryError(Exception):
    """A message was not delivered. `permanent`: do not retry (dead-letter it)."""

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    """A destination for messages."""

    name: str

    def send(self, message: Message) -> None:
        """Deliver, or raise DeliveryError."""
        ...


@dataclass(frozen=True)
class Retry:
    """Bounded retries with exponential backoff (seconds), capped."""

    attempts: int = 4
    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** (attempt - 1)))


# ------------------------------------------------------------------------------------ Slack
class _DropSecrets(logging.Filter):
    """Drops log records that would print a registered secret (urllib3 logs every request
    line, webhook path included, at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(secret in text for secret in self.secrets)


_DROP_SECRETS = _DropSecrets()
logging.getLogger("urllib3.connectionpool").addFilter(_DROP_SECRETS)


def _guard(url: str) -> None:
    """Register the secret parts of a webhook URL (its path and query) with the filter."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    for secret in (parts.path, parts.query, url):
        if len(secret) > 1:
            _DROP_SECRETS.secrets.add(secret)


SLACK_MAX_BLOCKS = 50  # Slack's limit per message
SLACK_MAX_SECTION = 3000  # characters in one section's text (Slack's limit)
SLACK_MAX_TEXT = 30_000  # item text per message, well inside Slack's 40,000 characters


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _slack_lines(items: Sequence[AlertItem]) -> list[str]:
    return [_clip(slack_line(i), SLACK_MAX_SECTION) for i in items]


def slack_capacity(items: Sequence[AlertItem]) -> int:
    """How many of `items`, in order, fit in one Slack message (at least 1): at most 48
    sections (a header and a footer take the other 2 blocks) of at most 3000 characters,
    and at most SLACK_MAX_TEXT characters in all."""
    room = SLACK_MAX_BLOCKS - 2
    sections = size = total = 0
    for n, line in enumerate(_slack_lines(items)):
        total += len(line) + 1
        if sections and size + 1 + len(line) <= SLACK_MAX_SECTION:
            size += 1 + len(line)
        else:
            sections, size = sections + 1, len(line)
        if sections > room or total > SLACK_MAX_TEXT:
            return max(1, n)
    return len(items)


def _slack_sections(lines: list[str]) -> list[str]:
    """One section per item while they fit in the blocks; beyond, several item lines per
    section (one per line), each section at most 3000 characters."""
    if len(lines) <= SLACK_MAX_BLOCKS - 2:
        return lines
    sections: list[str] = []
    for line in lines:
        if sections and len(sections[-1]) + 1 + len(line) <= SLACK_MAX_SECTION:
            sections[-1] += "\n" + line
        else:
            sections.append(line)
    return sections


def slack_payload(message: Message) -> dict[str, Any]:
    """Block Kit within Slack's limits: a header, then the items (one per section, or
    several per section when there are more than the blocks allow), all text escaped. Items
    beyond one message's capacity are only counted; the relay splits messages so that none
    are (`slack_capacity`)."""
    title = slack_text(_subject(message.title))  # the title holds dataset names
    header = _clip(title, 150)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}}
    ]
    shown = slack_capacity(message.items)
    for text in _slack_sections(_slack_lines(message.items[:shown])):
        # verbatim: Slack does not turn bare URLs, domains or #names into links
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
        )
    if len(message.items) > shown:
        more = len(message.items) - shown
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"... and {more} more"}]}
        )
    return {"text": _clip(title, SLACK_MAX_SECTION), "blocks": blocks}


class SlackChannel:
    """An incoming webhook. Connect and read timeouts are always set; retries are bounded,
    honour `429 Retry-After` (capped) and back off on 5xx, timeouts and resets; other 4xx
    replies are permanent."""

    def __init__(
        self,
        webhook_url: SecretStr,
        *,
        name: str = "slack",
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        retry: Retry | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.name = name
        self._url = webhook_url
        _guard(webhook_url.get_secret_value())
        self.timeout = (connect_timeout, read_timeout)
        self.retry = retry or Retry()
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the URL
        return f"SlackChannel(name={self.name!r}, webhook_url=SecretStr('**********'))"

    def capacity(self, items: Sequence[AlertItem]) -> int:
        """How many of `items` fit in one message (Slack's block and text limits)."""
        return slack_capacity(items)

    def send(self, message: Message) -> None:
        import requests

        body = json.dumps(slack_payload(message))
        last = DeliveryError("not attempted", permanent=False)
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = requests.post(
                    self._url.get_secret_value(),
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.Timeout:
                last = DeliveryError(f"slack: timed out after {self.timeout} s", permanent=False)
            except requests.ConnectionError:
                last = DeliveryError("slack: connection failed or was reset", permanent=False)
            except requests.RequestException as exc:  # the text would carry the URL
                last = DeliveryError(f"slack: {type(exc).__name__}", permanent=True)
                break
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return
                if status == 429:
                    wait = _retry_after(response.headers.get("Retry-After"), self.retry.cap)
                    last = DeliveryError(
                        "slack: 429 rate limited", permanent=False, retry_after=wait
                    )
                    if attempt < self.retry.attempts:
                        self._sleep(wait)
                    continue
                if status >= 500:
                    last = DeliveryError(f"slack: HTTP {status}", permanent=False)
                else:
                    reason = response.text[:200].strip() or "no body"
                    raise DeliveryError(f"slack: HTTP {status} ({reason})", permanent=True)
            if attempt < self.retry.attempts:
                self._sleep(self.retry.delay(attempt))
        raise last


def _retry_after(value: str | None, cap: float) -> float:
    """Seconds from a Retry-After header (delta-seconds form), capped; 1 s if unusable."""
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        seconds = 1.0
    return float(min(cap, max(0.0, seconds)))


# ------------------------------------------------------------------------------------ email
Security = Literal["none", "starttls", "ssl"]
EMAIL_MAX_ITEMS = 500  # items per email
EMAIL_MAX_TEXT = 100_000  # characters of item text per email (twice that with the HTML part)


class EmailChannel:
    """SMTP with a timeout, optional STARTTLS or SSL and optional auth. A 4xx reply or a
    dropped connection is transient (retried, bounded); a 5xx reply is permanent."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: SecretStr | None = None,
        security: Security = "none",
        timeout: float = 10.0,
        name: str = "email",
        retry: Retry | None = None,
        sleep: Sleep = time.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("email channel needs at least one recipient")
        self.name = name
        self.host, self.port, self.sender = host, port, sender
        self.recipients = list(recipients)
        self.username = username
        self._password = password
        self.security = security
        self.timeout = timeout
        self.retry = retry or Retry(attempts=3)
        self._sleep = sleep
        self._ssl = ssl_context

    def __repr__(self) -> str:
        return f"EmailChannel(name={self.name!r}, host={self.host!r}, port={self.port})"

    def capacity(self, items: Sequence[AlertItem]) -> int:
        """How many of `items` fit in one email of a sane size (at least 1)."""
        total = 0
        for n, item in enumerate(items):
            total += len(plain_line(item)) + 3
            if n >= EMAIL_MAX_ITEMS or total > EMAIL_MAX_TEXT:
                return max(1, n)
        return len(items)

    def build(self, message: Message) -> EmailMessage:
        """A text part and an escaped HTML part, with `Date` (UTC) and a `Message-ID` on
        the sender's domain (not this machine's name)."""
        mail = EmailMessage()
        subject = _subject(message.title)
        mail["Subject"] = subject[:200]
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid("shardwatch", domain=message_id_domain(self.sender))
        mail.set_content(message.text())
        rows = "".join(f"<li>{html_line(i)}</li>" for i in message.items)
        mail.add_alternative(
            f"<html><body><h3>{html.escape(subject)}</h3><ul>{rows}</ul></body></html>",
            subtype="html",
        )
        return mail

    def send(self, message: Message) -> None:
        mail = self.build(message)
        last = DeliveryError("not attempted", permanent=False)
        for attempt in range(1, self.retry.attempts + 1):
            try:
                self._send_once(mail)
                return
            except smtplib.SMTPResponseException as exc:
                code = int(exc.smtp_code)
                text = _smtp_text(exc.smtp_error)
                if 500 <= code < 600:
                    raise DeliveryError(f"smtp: {code} {text}", permanent=True) from None
                last = DeliveryError(f"smtp: {code} {text}", permanent=False)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = sorted({int(c) for c, _ in exc.recipients.values()})
                permanent = all(500 <= c < 600 for c in codes)
                last = DeliveryError(f"smtp: recipients refused {codes}", permanent=permanent)
                if permanent:
                    raise last from None
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError) as exc:
                last = DeliveryError(
                    f"smtp: {type(exc).__name__} (connection lost or refused)", permanent=False
                )
            if attempt < self.retry.attempts:
                self._sleep(self.retry.delay(attempt))
        raise last

    def _tls_context(self) -> ssl.SSLContext:
        """The given context, else the system default (made only when TLS is used)."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _send_once(self, mail: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=self._tls_context())
            if self.username is not None and self._password is not None:
                smtp.login(self.username, self._password.get_secret_value())
            smtp.send_message(mail)


def _smtp_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:200]


# ---------------------------------------------------------------------- console and file
class ConsoleChannel:
    """Plain text on a stream (stdout by default); for the demo."""

    def __init__(self, write: Callable[[str], Any] | None = None, name: str = "console"):
        self.name = name
        self._write = write

    def send(self, message: Message) -> None:
        if self._write is not None:
            self._write(message.text() + "\n")
        else:
            print(message.text(), flush=True)


class FileChannel:
    """One JSON line per item, appended to a file (for people without Slack)."""

    def __init__(self, path: Path, name: str = "file") -> None:
        self.name = name
        self.path = path

    def send(self, message: Message) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"title": message.title, **asdict(i)}) for i in message.items]
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in lines))
        except OSError as exc:
            raise DeliveryError(f"file: cannot append ({exc.strerror})", permanent=False) from None


def build_channel(name: str, spec: Any, *, console: Callable[[str], Any] | None = None) -> Channel:
    """A channel from its settings (`config.ChannelSpec`); `console` replaces stdout for
    console channels (e.g. stderr when stdout carries JSON)."""
    kind = spec.type
    if kind == "slack":
        return SlackChannel(
            spec.webhook_url,
            name=name,
            connect_timeout=spec.connect_timeout,
            read_timeout=spec.read_timeout,
            retry=Retry(attempts=spec.attempts),
        )
    if kind == "email":
        return EmailChannel(
            host=spec.host,
            port=spec.port,
            sender=spec.sender,
            recipients=spec.recipients,
            username=spec.username,
            password=spec.password,
            security=spec.security,
            timeout=spec.timeout,
            name=name,
            retry=Retry(attempts=spec.attempts),
        )
    if kind == "console":
        return ConsoleChannel(console, name=name)
    if kind == "file":
        return FileChannel(spec.path, name=name)
    raise ValueError(f"unknown channel type {kind!r}")


def probe_message(dataset: str) -> Message:
    """What `shardwatch alerts test` sends: no data, just proof that the channel works."""
    item = AlertItem(
        rule="test",
        severity="warning",
        dataset=dataset,
        scope="test",
        observed=None,
        threshold=None,
        kind="test",
    )
    return Message(title="shardwatch test message: this channel works", items=(item,))
