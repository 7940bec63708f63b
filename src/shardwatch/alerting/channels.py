"""Channels: the channel a `[alerts.channels.NAME]` setting describes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardwatch.alerting.email import EmailChannel
from shardwatch.alerting.local import ConsoleChannel, FileChannel
from shardwatch.alerting.message import Channel, Retry
from shardwatch.alerting.slack import SlackChannel


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
