"""Slack: an incoming webhook, with Block Kit messages inside Slack's limits.

The webhook URL is a `SecretStr`, read only at the moment of sending; urllib3's request log
lines that would print it are dropped, and exception texts (requests embeds the URL in them)
are replaced by their type and a fixed description. Item text is escaped for mrkdwn
(text.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr

from shardwatch.alerting.message import DeliveryError, Message, Retry, Sleep
from shardwatch.alerting.text import slack_line, slack_text
from shardwatch.alerting.text import subject_line as _subject
from shardwatch.core.alert_items import AlertItem
from shardwatch.core.retry_after import retry_after


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
                    asked = retry_after(response.headers.get("Retry-After"), self.retry.cap)
                    wait = min(self.retry.cap, 1.0) if asked is None else asked  # 1 s if unusable
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
