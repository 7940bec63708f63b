"""Relay: send the outbox's due notices, paced per channel, and mark them.

A pass: enqueue reminders for long-persisting breaches; then, for each channel with due
notices, take the channel's turn (store/pacing.py: one relay at a time per channel, in any
process), claim its due notices with a lease and send them in as few messages as the
channel's limits allow (Slack: 50 blocks, 3000 characters a section; email: 500 items),
critical first, every item listed. A channel's messages are at least `min_interval` apart,
across passes and relays, and further apart when a 429 says Retry-After; channels take turns
within a pass. Each delivered message's notices are marked sent; a failure retries them
later (backoff, honouring Retry-After) or dead-letters them with the reason. A pass waits at
most `max_wait` seconds for turns and leaves the rest for the next pass. A relay killed
after a channel accepted a message but before the mark leaves its notices `sending`; once
the lease expires the next pass sends them again: at most one duplicate, never a loss.
Items leave with public links only (`Links`: `[alerts] docs_base_url` and `reports_base_url`;
unset: no link).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shardwatch.alerting.links import Links
from shardwatch.alerting.message import (
    Channel,
    DeliveryError,
    Message,
    batch_title,
    item_order,
)
from shardwatch.core.alert_items import AlertItem
from shardwatch.core.ids import worker_id
from shardwatch.settings.alerts import AlertSettings
from shardwatch.store.models import utcnow
from shardwatch.store.notices import Notice
from shardwatch.store.outbox import Outbox
from shardwatch.store.pacing import ChannelGate, Turn

if TYPE_CHECKING:
    from shardwatch.store.database import StoreEngine

log = logging.getLogger(__name__)
_MAX_BACKOFF = 3600.0
_POLL = 0.2  # seconds between tries for a channel another relay is sending to


@dataclass(frozen=True)
class RelayPolicy:
    """How the relay treats failures, persisting breaches and busy channels."""

    lease_seconds: float = 120.0
    max_attempts: int = 5
    retry_seconds: float = 60.0
    renotify_hours: float = 24.0  # 0: never remind
    min_interval: float = 1.0  # seconds between two messages to one channel, all relays
    max_wait: float = 60.0  # seconds a pass waits for turns; the rest waits for the next
    batch: int = 1000  # notices claimed for one channel at a time


@dataclass(frozen=True)
class ChannelResult:
    """What one channel got in one pass (or what waits for the next: `deferred`)."""

    channel: str
    notices: int
    delivered: bool
    error: str | None = None
    permanent: bool = False
    dead: int = 0  # notices dead-lettered by this failure
    messages: int = 0  # messages the delivered notices went out in
    deferred: str | None = None  # why these notices wait for the next pass


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
        return sum(c.notices for c in self.channels if not c.delivered and not c.deferred)

    @property
    def deferred(self) -> int:
        return sum(c.notices for c in self.channels if c.deferred)

    @property
    def dead(self) -> int:
        return sum(c.dead for c in self.channels)

    def summary(self) -> str:
        if not self.channels:
            return "no alert notices due"
        parts = []
        for c in self.channels:
            if c.delivered:
                many = f" in {c.messages} messages" if c.messages > 1 else ""
                parts.append(f"{c.notices} to {c.channel}{many}")
            elif c.deferred:
                parts.append(f"{c.notices} for {c.channel} wait for the next pass ({c.deferred})")
            else:
                kind = "dead-lettered" if c.dead else "will retry"
                parts.append(f"{c.notices} NOT delivered to {c.channel} ({kind}: {c.error})")
        return "alerts: " + "; ".join(parts)


def _split(channel: Channel, notices: list[Notice]) -> list[list[Notice]]:
    """Consecutive parts, each as many notices as one message on `channel` holds."""
    capacity: Callable[[Sequence[AlertItem]], int] | None = getattr(channel, "capacity", None)
    parts, rest = [], notices
    while rest:
        n = len(rest) if capacity is None else capacity([x.item for x in rest])
        n = max(1, min(len(rest), n))
        parts.append(rest[:n])
        rest = rest[n:]
    return parts


def relay(
    outbox: Outbox,
    channels: Mapping[str, Channel],
    *,
    owner: str,
    policy: RelayPolicy | None = None,
    now: Callable[[], datetime] = utcnow,
    after_send: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    links: Links | None = None,
) -> RelayResult:
    """Send every due notice; see the module docstring. `after_send(channel)` runs between
    a delivery and its mark (tests kill the process there). `links`: the public base URLs
    items link to (None: no links)."""
    policy = policy or RelayPolicy()
    links = links or Links()
    reminded = 0
    if policy.renotify_hours > 0:
        reminded = outbox.remind(timedelta(hours=policy.renotify_hours), list(channels), now())
    start = now()
    deadline = start + timedelta(seconds=policy.max_wait)
    gate = ChannelGate(outbox.engine)
    results: list[ChannelResult] = []
    drains = []
    for name in outbox.due_channels(start):
        if name in channels:
            drains.append(_Drain(name, channels[name], outbox, gate, owner, policy, now, links))
        else:
            results.append(_unconfigured(outbox, owner, policy, name, start))
    try:
        while drains:
            drain = min(drains, key=lambda d: d.ready_at)
            if drain.ready_at > deadline:
                for d in drains:
                    results += d.defer(f"pass over after {policy.max_wait:g} s")
                drains = []
                break
            wait = (drain.ready_at - now()).total_seconds()
            if wait > 0:
                sleep(wait)
            if not drain.step(after_send):
                drains.remove(drain)
                results += drain.results
    finally:
        for d in drains:  # an error escaped: give back what this relay holds
            d.abandon()
    results.sort(key=lambda c: c.channel)
    return RelayResult(reminded, tuple(results))


class _Drain:
    """One channel's share of a pass: take its turn, claim, send part by part, paced."""

    def __init__(
        self,
        name: str,
        channel: Channel,
        outbox: Outbox,
        gate: ChannelGate,
        owner: str,
        policy: RelayPolicy,
        now: Callable[[], datetime],
        links: Links,
    ) -> None:
        self.name, self.channel, self.outbox, self.gate = name, channel, outbox, gate
        self.links = links
        self.owner, self.policy, self.now = owner, policy, now
        self.lease = timedelta(seconds=policy.lease_seconds)
        self.interval = timedelta(seconds=policy.min_interval)
        self.ready_at = now()
        self.turn: Turn | None = None
        self.parts: list[list[Notice]] = []
        self.title = ""
        self.count = self.done = self.offset = 0  # the batch's parts, parts and items sent
        self.sent = self.messages = 0
        self.renewed = self.ready_at
        self.full = False  # the last claim took a whole batch: more may be due
        self.next_at: datetime | None = None  # when the channel's next message may go
        self.results: list[ChannelResult] = []

    def step(self, after_send: Callable[[str], None] | None) -> bool:
        """Take the turn, or send one message; False once the channel is done this pass."""
        at = self.now()
        if self.turn is None:
            self.turn = self.gate.take(self.name, self.owner, at, self.lease)
            if self.turn is None:  # another relay is sending to this channel
                self.ready_at = at + timedelta(seconds=_POLL)
            else:
                self.ready_at = max(at, self.turn.not_before or at)
                self.renewed = at
            return True
        if not self.parts and not self._claim(at):
            self._finish()
            return False
        part, rest = self.parts[0], [n.id for p in self.parts[1:] for n in p]
        ids = [n.id for n in part]
        if at - self.renewed > self.lease / 4:  # a long drain: keep the turn and the claims
            if not self.gate.renew(self.turn, self.owner, at, self.lease):
                self.turn = None  # lost: our lease ran out and another relay took the turn
                self.outbox.release(ids + rest, self.owner, None)
                self._finish("another relay took the channel's turn")
                return False
            self.outbox.renew(ids + rest, self.owner, at + self.lease)
            self.renewed = at
        try:
            self.channel.send(self._message(part))
        except DeliveryError as exc:
            ended = self.now()
            result, retry_at = _failed(
                self.outbox, self.owner, self.policy, self.name, part, exc, ended
            )
            self.outbox.release(rest, self.owner, retry_at)  # the channel is failing
            pause = max(self.policy.min_interval, exc.retry_after or 0.0)
            self.next_at = ended + timedelta(seconds=pause)
            self.parts = []
            self.results.append(replace(result, notices=result.notices + len(rest)))
            self._finish()
            return False
        if after_send is not None:
            after_send(self.name)
        self.outbox.sent(ids, self.owner, self.now())
        ended = self.now()  # the next message goes no sooner than one interval after this
        self.next_at = self.ready_at = ended + self.interval
        self.parts.pop(0)
        self.done += 1
        self.offset += len(part)
        self.sent += len(part)
        self.messages += 1
        if self.parts or self.full:
            self.gate.renew(self.turn, self.owner, ended, self.lease, self.next_at)
            return True
        self._finish()  # a short batch was all that was due
        return False

    def _claim(self, at: datetime) -> bool:
        notices = self.outbox.claim(
            self.owner, self.lease, at, self.policy.batch, channel=self.name
        )
        if not notices:
            return False
        self.renewed = at
        self.full = len(notices) >= self.policy.batch  # more may be due
        notices.sort(key=lambda n: item_order(n.item))
        self.title = batch_title([n.item for n in notices])
        # public links only, before the split measures the items
        notices = [replace(n, item=self.links.resolve(n.item)) for n in notices]
        self.parts = _split(self.channel, notices)
        self.count, self.done, self.offset = len(self.parts), 0, 0
        return True

    def _message(self, part: list[Notice]) -> Message:
        """The batch's aggregate title (with `message 2 of 6: items 171-340` when the batch
        needs several messages) and this part's items."""
        title = self.title
        if self.count > 1:
            first = self.offset + 1
            last = self.offset + len(part)
            title += f" (message {self.done + 1} of {self.count}: items {first:,}-{last:,})"
        return Message(title=title, items=tuple(n.item for n in part))

    def _finish(self, deferred: str | None = None) -> None:
        """Report what was delivered (and why the rest waits), and give the turn back."""
        if self.sent:
            self.results.insert(
                0, ChannelResult(self.name, self.sent, True, messages=self.messages)
            )
        if deferred is not None:
            waiting = self.outbox.count_due(self.name, self.now())
            if waiting:
                self.results.append(ChannelResult(self.name, waiting, False, deferred=deferred))
        if self.turn is not None:
            self.gate.give_back(self.turn, self.owner, self.next_at)
            self.turn = None

    def defer(self, reason: str) -> list[ChannelResult]:
        """The pass is over: unsent notices go back to the queue, due at once."""
        self.outbox.release([n.id for p in self.parts for n in p], self.owner, None)
        self.parts = []
        self._finish(reason)
        return self.results

    def abandon(self) -> None:
        """Best effort after an error: give back the claims and the turn (else their leases
        expire)."""
        try:
            self.outbox.release([n.id for p in self.parts for n in p], self.owner, None)
            if self.turn is not None:
                self.gate.give_back(self.turn, self.owner, self.next_at)
        except Exception:  # the error that got us here is the one to report
            log.debug("could not give back channel %s", self.name, exc_info=True)


def _unconfigured(
    outbox: Outbox, owner: str, policy: RelayPolicy, name: str, at: datetime
) -> ChannelResult:
    """Notices for a channel no longer in the configuration are dead, with the reason."""
    lease = timedelta(seconds=policy.lease_seconds)
    group = outbox.claim(owner, lease, at, policy.batch, channel=name)
    reason = f"channel {name!r} is no longer configured"
    outbox.failed([n.id for n in group], owner, reason, permanent=True, retry_at=at, max_attempts=1)
    return ChannelResult(name, len(group), False, reason, True, len(group))


def _failed(
    outbox: Outbox,
    owner: str,
    policy: RelayPolicy,
    name: str,
    group: list[Notice],
    exc: DeliveryError,
    at: datetime,
) -> tuple[ChannelResult, datetime]:
    """Record a failed message; its result and when its notices are due again."""
    attempts = max(n.attempts for n in group)
    wait = min(_MAX_BACKOFF, policy.retry_seconds * 2 ** (attempts - 1))
    if exc.retry_after is not None:
        wait = max(wait, exc.retry_after)
    retry_at = at + timedelta(seconds=wait)
    outbox.failed(
        [n.id for n in group],
        owner,
        exc.reason,
        permanent=exc.permanent,
        retry_at=retry_at,
        max_attempts=policy.max_attempts,
    )
    dead = (
        len(group) if exc.permanent else sum(1 for n in group if n.attempts >= policy.max_attempts)
    )
    log.warning("alerts for channel %s not delivered: %s", name, exc.reason)
    return ChannelResult(name, len(group), False, exc.reason, exc.permanent, dead), retry_at


def relay_configured(
    engine: StoreEngine, alerts: AlertSettings, *, console: Callable[[str], Any] | None = None
) -> RelayResult:
    """One pass over the channels and policy of `[alerts]` (`console` replaces stdout for
    console channels)."""
    from shardwatch.alerting.channels import build_channel

    a = alerts
    channels = {n: build_channel(n, spec, console=console) for n, spec in a.channels.items()}
    policy = RelayPolicy(
        a.lease_seconds,
        a.max_attempts,
        a.retry_seconds,
        a.renotify_hours,
        min_interval=a.min_interval_seconds,
        max_wait=a.max_wait_seconds,
    )
    links = Links(a.docs_base_url, a.reports_base_url)
    return relay(Outbox(engine), channels, owner=worker_id(), policy=policy, links=links)
