"""Relay: send the outbox's due notices, one grouped message per channel, and mark them.

A pass: enqueue reminders for long-persisting breaches, claim every due notice with a lease,
send each channel its notices as ONE message, then mark them sent, retry them later (with
backoff, honouring Retry-After) or dead-letter them with the reason. A relay killed after a
channel accepted a message but before the mark leaves its notices `sending`; once the lease
expires the next pass sends them again: at most one duplicate, never a loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shardwatch.config import AlertSettings
from shardwatch.notify import AlertItem, Channel, DeliveryError, Message
from shardwatch.store.models import utcnow
from shardwatch.store.outbox import Notice, Outbox

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)
_ORDER = {"critical": 0, "warning": 1}
_MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class RelayPolicy:
    """How the relay treats failures and persisting breaches."""

    lease_seconds: float = 120.0
    max_attempts: int = 5
    retry_seconds: float = 60.0
    renotify_hours: float = 24.0  # 0: never remind


@dataclass(frozen=True)
class ChannelResult:
    """What one channel got in one pass."""

    channel: str
    notices: int
    delivered: bool
    error: str | None = None
    permanent: bool = False
    dead: int = 0  # notices dead-lettered by this failure


@dataclass(frozen=True)
class RelayResult:
    """One relay pass."""

    reminded: int
    channels: tuple[ChannelResult, ...]

    @property
    def sent(self) -> int:
        return sum(c.notices for c in self.channels if c.delivered)

    @property
    def failed(self) -> int:
        return sum(c.notices for c in self.channels if not c.delivered)

    @property
    def dead(self) -> int:
        return sum(c.dead for c in self.channels)

    def summary(self) -> str:
        if not self.channels:
            return "no alert notices due"
        parts = []
        for c in self.channels:
            if c.delivered:
                parts.append(f"{c.notices} to {c.channel}")
            else:
                kind = "dead-lettered" if c.dead else "will retry"
                parts.append(f"{c.notices} NOT delivered to {c.channel} ({kind}: {c.error})")
        return "alerts: " + "; ".join(parts)


def message_for(items: list[AlertItem]) -> Message:
    """One message for a channel: critical breaches first, then warnings, then recoveries."""
    breaches = [i for i in items if i.kind != "recovery"]
    recoveries = [i for i in items if i.kind == "recovery"]
    breaches.sort(key=lambda i: (_ORDER.get(i.severity, 2), i.dataset, i.rule, i.scope))
    recoveries.sort(key=lambda i: (i.dataset, i.rule, i.scope))
    critical = sum(1 for i in breaches if i.severity == "critical")
    datasets = sorted({i.dataset for i in items})
    parts = []
    if breaches:
        parts.append(f"{len(breaches)} alert(s)" + (f", {critical} critical" if critical else ""))
    if recoveries:
        parts.append(f"{len(recoveries)} recovered")
    title = f"shardwatch: {' and '.join(parts)} in {', '.join(datasets)}"
    return Message(title=title, items=tuple(breaches + recoveries))


def relay(
    outbox: Outbox,
    channels: Mapping[str, Channel],
    *,
    owner: str,
    policy: RelayPolicy | None = None,
    now: Callable[[], datetime] = utcnow,
    after_send: Callable[[str], None] | None = None,
) -> RelayResult:
    """Send every due notice; see the module docstring. `after_send(channel)` runs between
    a delivery and its mark (tests kill the process there)."""
    policy = policy or RelayPolicy()
    reminded = 0
    if policy.renotify_hours > 0:
        reminded = outbox.remind(timedelta(hours=policy.renotify_hours), list(channels), now())
    notices = outbox.claim(owner, timedelta(seconds=policy.lease_seconds), now())
    by_channel: dict[str, list[Notice]] = {}
    for notice in notices:
        by_channel.setdefault(notice.channel, []).append(notice)
    results = []
    for name, group in sorted(by_channel.items()):
        ids = [n.id for n in group]
        channel = channels.get(name)
        if channel is None:
            reason = f"channel {name!r} is no longer configured"
            outbox.failed(ids, owner, reason, permanent=True, retry_at=now(), max_attempts=1)
            results.append(ChannelResult(name, len(group), False, reason, True, len(group)))
            continue
        try:
            channel.send(message_for([n.item for n in group]))
        except DeliveryError as exc:
            results.append(_failed(outbox, owner, policy, name, group, exc, now()))
            continue
        if after_send is not None:
            after_send(name)
        outbox.sent(ids, owner, now())
        results.append(ChannelResult(name, len(group), True))
    return RelayResult(reminded, tuple(results))


def _failed(
    outbox: Outbox,
    owner: str,
    policy: RelayPolicy,
    name: str,
    group: list[Notice],
    exc: DeliveryError,
    at: datetime,
) -> ChannelResult:
    attempts = max(n.attempts for n in group)
    wait = min(_MAX_BACKOFF, policy.retry_seconds * 2 ** (attempts - 1))
    if exc.retry_after is not None:
        wait = max(wait, exc.retry_after)
    outbox.failed(
        [n.id for n in group],
        owner,
        exc.reason,
        permanent=exc.permanent,
        retry_at=at + timedelta(seconds=wait),
        max_attempts=policy.max_attempts,
    )
    dead = (
        len(group) if exc.permanent else sum(1 for n in group if n.attempts >= policy.max_attempts)
    )
    log.warning("alerts for channel %s not delivered: %s", name, exc.reason)
    return ChannelResult(name, len(group), False, exc.reason, exc.permanent, dead)


def relay_configured(
    engine: Engine, alerts: AlertSettings, *, console: Callable[[str], Any] | None = None
) -> RelayResult:
    """One pass over the channels and policy of `[alerts]` (`console` replaces stdout for
    console channels)."""
    from shardwatch.ingest import worker_id
    from shardwatch.notify import build_channel

    a = alerts
    channels = {n: build_channel(n, spec, console=console) for n, spec in a.channels.items()}
    policy = RelayPolicy(a.lease_seconds, a.max_attempts, a.retry_seconds, a.renotify_hours)
    return relay(Outbox(engine), channels, owner=worker_id(), policy=policy)
