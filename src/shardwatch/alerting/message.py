"""Messages: what a channel receives, and the contract every channel keeps.

A relay pass sends each channel its due alert items in as few `Message`s as the channel's
limits allow: critical breaches first, then warnings, then recoveries (`item_order`), under
one aggregate title (`batch_title`; `message_for` builds one such message). Every
channel either returns (delivered) or raises `DeliveryError`, which says whether the failure
is permanent (dead-letter it) or transient (retry later, after `retry_after` seconds when the
channel was told) and carries a reason that never contains a secret. `Retry` bounds a
channel's own attempts within one send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shardwatch.alerting.text import plain_line
from shardwatch.alerting.text import subject_line as _subject
from shardwatch.core.alert_items import AlertItem

Sleep = Callable[[float], None]
_ORDER = {"critical": 0, "warning": 1}


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


def item_order(item: AlertItem) -> tuple[Any, ...]:
    """Breaches (critical first), then recoveries."""
    if item.kind == "recovery":
        return (1, 0, item.dataset, item.rule, item.scope)
    return (0, _ORDER.get(item.severity, 2), item.dataset, item.rule, item.scope)


def batch_title(items: Sequence[AlertItem]) -> str:
    """The aggregate: `shardwatch: 1,000 alert(s), 412 critical in D`."""
    breaches = sum(1 for i in items if i.kind != "recovery")
    recoveries = len(items) - breaches
    critical = sum(1 for i in items if i.kind != "recovery" and i.severity == "critical")
    datasets = sorted({i.dataset for i in items})
    where = ", ".join(datasets[:3]) + (
        f" and {len(datasets) - 3} more datasets" if len(datasets) > 3 else ""
    )
    parts = []
    if breaches:
        parts.append(f"{breaches:,} alert(s)" + (f", {critical:,} critical" if critical else ""))
    if recoveries:
        parts.append(f"{recoveries:,} recovered")
    return f"shardwatch: {' and '.join(parts)} in {where}"


def message_for(items: list[AlertItem]) -> Message:
    """One message for a channel: critical breaches first, then warnings, then recoveries."""
    return Message(title=batch_title(items), items=tuple(sorted(items, key=item_order)))


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
