"""Outbox: the relay's side of the alert notices. Claim due notices (FOR UPDATE SKIP LOCKED on
PostgreSQL) with a lease, then mark them sent, retry them later, or dead-letter them with the
reason. The notices are enqueued with the shard's results (alert_state.py). Its public methods
raise the store's own errors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, exists, func, or_, select, update

from shardwatch.store import models as t
from shardwatch.store.boundary import translated
from shardwatch.store.database import is_sqlite, session_factory, transaction
from shardwatch.store.notices import (
    AlertView,
    DeliveryView,
    Notice,
    current_item,
    item_of,
    new_notice,
    scope_text,
)


class Outbox:
    """The relay's operations on the outbox, each in its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)

    def _due(self, now: datetime) -> Any:
        o = t.AlertOutbox
        return or_(
            and_(o.state == "pending", or_(o.next_attempt_at.is_(None), o.next_attempt_at <= now)),
            and_(o.state == "sending", o.next_attempt_at < now),  # a crashed relay's lease
        )

    @translated
    def remind(self, after: timedelta, channels: Sequence[str], now: datetime) -> int:
        """Enqueue a `reminder` for breaches last notified longer than `after` ago (and with
        no notice waiting); returns how many alert keys were reminded. A channel holding a
        dead letter of the key gets none: the dead letter stands for the breach until
        `alerts retry`, so a channel that fails for good adds no row per interval."""
        a, o = t.Alert, t.AlertOutbox
        waiting = exists().where(o.alert_id == a.id, o.state.in_(("pending", "sending")))
        query = select(a).where(a.breaching.is_(True), a.last_notified_at < now - after, ~waiting)
        if not is_sqlite(self.engine):
            query = query.with_for_update(skip_locked=True, of=a)
        with transaction(self.sessions) as s:
            rows = s.scalars(query).all()
            for row in rows:
                dataset = s.scalar(select(t.Dataset.name).where(t.Dataset.id == row.dataset_id))
                item = item_of(row, dataset or "", "reminder")
                dead = set(
                    s.scalars(select(o.channel).where(o.alert_id == row.id, o.state == "dead"))
                )
                s.add_all(
                    new_notice(row.id, channel, "reminder", item, now)
                    for channel in channels
                    if channel not in dead
                )
                row.last_notified_at = now
            return len(rows)

    @translated
    def due_channels(self, now: datetime) -> list[str]:
        """The channels with notices due now."""
        o = t.AlertOutbox
        with self.sessions() as s:
            return sorted(s.scalars(select(o.channel).where(self._due(now)).distinct()))

    @translated
    def count_due(self, channel: str, now: datetime) -> int:
        o = t.AlertOutbox
        query = select(func.count()).where(self._due(now), o.channel == channel)
        with self.sessions() as s:
            return int(s.scalar(query) or 0)

    @translated
    def claim(
        self,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int = 500,
        *,
        channel: str | None = None,
    ) -> list[Notice]:
        """Take due notices (of one channel, or all) for `lease` (others skip them); oldest
        first."""
        o = t.AlertOutbox
        due = self._due(now)
        if channel is not None:
            due = and_(due, o.channel == channel)
        query = select(o.id).where(due).order_by(o.id).limit(limit)
        if not is_sqlite(self.engine):
            query = query.with_for_update(skip_locked=True)
        with transaction(self.sessions) as s:
            ids = list(s.scalars(query))
            if not ids:
                return []
            until = now + lease
            s.execute(  # one statement (a storm claims a thousand): the still-due ones
                update(o)
                .where(o.id.in_(ids), due)
                .values(
                    state="sending",
                    lease_owner=owner,
                    next_attempt_at=until,
                    attempts=o.attempts + 1,
                ),
                execution_options={"synchronize_session": False},
            )
            rows = s.execute(
                select(o, t.Alert)
                .join(t.Alert, t.Alert.id == o.alert_id)
                .where(
                    o.id.in_(ids),
                    o.state == "sending",
                    o.lease_owner == owner,
                    o.next_attempt_at == until,
                )
                .order_by(o.id)
            ).all()
            return [
                Notice(n.id, n.alert_id, n.channel, n.kind, n.attempts, current_item(n, alert))  # type: ignore[arg-type]
                for n, alert in rows
            ]

    @translated
    def sent(self, ids: Sequence[int], owner: str, now: datetime) -> int:
        """Mark notices delivered (only while this relay still holds them)."""
        o = t.AlertOutbox
        with transaction(self.sessions) as s:
            result = s.execute(
                update(o)
                .where(o.id.in_(ids), o.state == "sending", o.lease_owner == owner)
                .values(state="sent", sent_at=now, lease_owner=None, last_error=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    @translated
    def renew(self, ids: Sequence[int], owner: str, until: datetime) -> int:
        """Extend this relay's lease on notices it still holds; returns how many."""
        o = t.AlertOutbox
        with transaction(self.sessions) as s:
            result = s.execute(
                update(o)
                .where(o.id.in_(ids), o.state == "sending", o.lease_owner == owner)
                .values(next_attempt_at=until)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    @translated
    def release(self, ids: Sequence[int], owner: str, due_at: datetime | None) -> None:
        """Give back claimed notices that were not sent (not an attempt): pending again,
        due at `due_at` (None: at once)."""
        o = t.AlertOutbox
        with transaction(self.sessions) as s:
            s.execute(
                update(o)
                .where(o.id.in_(ids), o.state == "sending", o.lease_owner == owner)
                .values(
                    state="pending",
                    lease_owner=None,
                    attempts=case((o.attempts > 0, o.attempts - 1), else_=0),
                    next_attempt_at=due_at,
                )
            )

    @translated
    def failed(
        self,
        ids: Sequence[int],
        owner: str,
        reason: str,
        *,
        permanent: bool,
        retry_at: datetime,
        max_attempts: int,
    ) -> None:
        """Record a failed delivery: dead if permanent or out of attempts, else pending
        until `retry_at`."""
        o = t.AlertOutbox
        state: Any = (
            "dead" if permanent else case((o.attempts >= max_attempts, "dead"), else_="pending")
        )
        with transaction(self.sessions) as s:
            s.execute(
                update(o)
                .where(o.id.in_(ids), o.state == "sending", o.lease_owner == owner)
                .values(
                    state=state,
                    last_error=reason[:1000],
                    lease_owner=None,
                    next_attempt_at=retry_at,
                )
            )

    @translated
    def retry(self, ids: Sequence[int] | None = None) -> int:
        """Put dead notices (all, or those in `ids`) back in the queue with fresh attempts."""
        o = t.AlertOutbox
        where = [o.state == "dead"]
        if ids is not None:
            where.append(o.id.in_(ids))
        with transaction(self.sessions) as s:
            result = s.execute(
                update(o).where(*where).values(state="pending", attempts=0, next_attempt_at=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    @translated
    def alerts(
        self, dataset: str | None = None, *, include_resolved: bool = True
    ) -> list[AlertView]:
        """Alert keys (breaching first, newest first) with their notices."""
        a, o = t.Alert, t.AlertOutbox
        query = select(a, t.Dataset.name).join(t.Dataset, t.Dataset.id == a.dataset_id)
        if dataset is not None:
            query = query.where(t.Dataset.name == dataset)
        if not include_resolved:
            query = query.where(
                or_(a.breaching.is_(True), exists().where(o.alert_id == a.id, o.state == "dead"))
            )
        query = query.order_by(a.breaching.desc(), a.updated_at.desc(), a.id)
        with self.sessions() as s:
            rows = s.execute(query).all()
            ids = [r[0].id for r in rows]
            notices: dict[int, list[DeliveryView]] = {}
            if ids:
                for n in s.scalars(select(o).where(o.alert_id.in_(ids)).order_by(o.id)):
                    notices.setdefault(n.alert_id, []).append(
                        DeliveryView(
                            n.id,
                            n.channel,
                            n.kind,
                            n.state,
                            n.attempts,
                            n.last_error,
                            n.created_at,
                            n.sent_at,
                        )
                    )
            return [
                AlertView(
                    id=row.id,
                    dataset=name,
                    rule=row.rule,
                    scope=scope_text(row.scope),
                    severity=row.severity,
                    breaching=row.breaching,
                    observed=row.observed,
                    threshold=row.threshold,
                    detail=row.detail,
                    link=row.link,
                    opened_at=row.opened_at,
                    resolved_at=row.resolved_at,
                    last_notified_at=row.last_notified_at,
                    deliveries=tuple(notices.get(row.id, [])),
                )
                for row, name in rows
            ]

    @translated
    def counts(self) -> dict[str, int]:
        """Notices per state."""
        o = t.AlertOutbox
        with self.sessions() as s:
            rows = s.execute(select(o.state, func.count()).group_by(o.state))
            return {state: int(n) for state, n in rows}
