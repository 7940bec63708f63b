"""Outbox: alert state per key and the notices to send, written with the shard's results.

`record_alerts` runs inside `ResultStore.complete`'s transaction, so a shard's results and
the notices they cause commit together or not at all. Per alert key (dataset x rule x scope):
- a new breach enqueues one `breach` notice per channel;
- a breach that persists enqueues nothing (the relay adds a `reminder` after the re-notify
  interval);
- a breach that clears enqueues one `recovery` notice per channel that was told about it
  (a notice still pending is cancelled instead: the channel never heard of the breach).

`Outbox` is the relay's side: claim due notices (FOR UPDATE SKIP LOCKED on PostgreSQL) with a
lease, then mark them sent, retry them later, or dead-letter them with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from shardwatch.core.alert_items import AlertItem, docs_relative, scope_label
from shardwatch.core.alerts import (
    DRIFT_METRICS,
    AlertPlan,
    Observation,
    failing_checks,
    failure_observations,
    judge,
)
from shardwatch.core.domain_sketch import DomainStat
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.schema import SchemaDrift
from shardwatch.core.validation import DRIFT_REASON, NOT_RUN_REASON, ShardValidation
from shardwatch.store import models as t
from shardwatch.store.database import is_sqlite, session_factory, transaction

NoticeKind = Literal["breach", "reminder", "recovery"]
_SCOPE_MAX = 1000


@dataclass(frozen=True)
class Notice:
    """One claimed outbox row: an alert item for one channel."""

    id: int
    alert_id: int
    channel: str
    kind: NoticeKind
    attempts: int
    item: AlertItem


@dataclass(frozen=True)
class DeliveryView:
    """One notice's delivery state, for `shardwatch alerts list`."""

    id: int
    channel: str
    kind: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class AlertView:
    """One alert key and its notices."""

    id: int
    dataset: str
    rule: str
    scope: str
    severity: str
    breaching: bool
    observed: float | None
    threshold: str | None
    detail: str | None
    link: str | None
    opened_at: datetime
    resolved_at: datetime | None
    last_notified_at: datetime | None
    deliveries: tuple[DeliveryView, ...]


def scope_key(
    level: Literal["shard", "dataset"], uri: str | None, term: str | None, kind: str = "term"
) -> str:
    """The key's scope: `dataset` or `shard:<uri>`, plus `|term:<term>` (or
    `|domain:<domain>`); very long URIs are replaced by their SHA-256 so the key fits."""
    key = "dataset" if level == "dataset" else f"shard:{uri}"
    if term is not None:
        key += f"|{kind}:{term}"
    if len(key) > _SCOPE_MAX:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


# --------------------------------------------------------------- inside complete()
def record_alerts(
    s: Session,
    shard_id: int,
    metrics: ShardMetrics,
    validation: ShardValidation | None,
    plan: AlertPlan,
    run_id: int | None,
    *,
    schema_drift: SchemaDrift | None = None,
) -> None:
    """Judge the plan's rules on the shard and on its dataset's latest versions, and update
    the alert keys and the outbox, in the caller's transaction (after the shard is `done`).
    `schema_drift` rules judge `schema_drift` (None: not checked, so not judged)."""
    shard = s.get(t.Shard, shard_id)
    if shard is None:  # pragma: no cover - the caller holds the shard's lease
        raise KeyError(shard_id)
    dataset_id = shard.dataset_id
    lock = select(t.Dataset.name).where(t.Dataset.id == dataset_id)
    if s.get_bind().dialect.name != "sqlite":
        # One evaluator per dataset at a time: it then sees every committed shard
        # (READ COMMITTED takes a fresh snapshot per statement after the lock is granted).
        # NO KEY UPDATE: rows that merely reference the dataset are not blocked by it.
        lock = lock.with_for_update(key_share=True)
    dataset = s.scalar(lock) or ""
    now = t.utcnow()
    writer = _Writer(s, dataset_id, dataset, plan, run_id, now)

    failures, detail = failing_checks(validation)
    judge_dataset = any(r.applies_to("dataset") for r in plan.rules)
    total = None
    if judge_dataset or any(r.metric in DRIFT_METRICS for r in plan.rules):
        s.flush()
        total = _dataset_total(s, dataset_id)  # includes this shard (same transaction)
    shard_obs = judge(
        plan.rules,
        metrics,
        "shard",
        validation_failures=failures,
        failure_detail=detail,
        not_run=validation.not_run if validation is not None else None,
        baseline=total,
        new_domains=_new_domains(s, shard, metrics, plan),
        schema_drift=schema_drift,
    )
    # links are kept relative to the Data Docs site; the relay makes them public URLs
    page = validation.docs_page if validation is not None else None
    link = docs_relative(page, plan.docs_index)
    for ob in shard_obs:
        writer.apply(ob, "shard", shard.uri, link)

    if judge_dataset and total is not None:
        bad_shards = _failing_latest_shards(s, dataset_id)
        index = "index.html" if plan.docs_index is not None else None
        for ob in judge(plan.rules, total, "dataset", validation_failures=bad_shards):
            writer.apply(ob, "dataset", None, index)


def record_failure(
    s: Session, shard_id: int, status: str, reason: str, plan: AlertPlan, run_id: int | None
) -> None:
    """Judge the `shard_failed` rules on a shard that just ended `status` (failed or
    quarantined), in the caller's transaction: one breach per shard key, exactly once
    through the outbox; the shard's next done version recovers it (record_alerts)."""
    observations = failure_observations(plan.rules, status, reason)
    shard = s.get(t.Shard, shard_id)
    if not observations or shard is None:
        return
    dataset = s.scalar(select(t.Dataset.name).where(t.Dataset.id == shard.dataset_id)) or ""
    writer = _Writer(s, shard.dataset_id, dataset, plan, run_id, t.utcnow())
    for ob in observations:
        writer.apply(ob, "shard", shard.uri, None)


def _dataset_total(s: Session, dataset_id: int) -> ShardMetrics | None:
    from shardwatch.store.report import ReportError, dataset_total

    try:
        return dataset_total(s.connection(), dataset_id)
    except ReportError:
        return None  # mixed lexicons or thresholds: the report says so; nothing to judge


def _new_domains(
    s: Session, shard: t.Shard, metrics: ShardMetrics, plan: AlertPlan
) -> dict[str, DomainStat] | None:
    """The shard's listed domains that no other current done shard of the dataset lists
    (None when no rule asks, or the shard has no domain sketch)."""
    if metrics.domains is None or not any(
        r.metric == "new_domain_keyword_nsfw_rate" for r in plan.rules
    ):
        return None
    from shardwatch.store.report import latest_done

    latest = latest_done(shard.dataset_id)
    mine = list(metrics.domains.top)
    seen: set[str] = set()
    for start in range(0, len(mine), 500):  # bounded IN lists
        seen.update(
            s.scalars(
                select(t.ShardDomain.domain)
                .join(latest, latest.c.id == t.ShardDomain.shard_id)
                .where(
                    latest.c.uri != shard.uri,
                    t.ShardDomain.domain.in_(mine[start : start + 500]),
                )
                .distinct()
            ).all()
        )
    return {d: stat for d, stat in metrics.domains.top.items() if d not in seen}


def _failing_latest_shards(s: Session, dataset_id: int) -> int | None:
    """Latest done shard versions with a failed or errored check (None: none validated);
    checks errored by schema drift are the `schema-drift` rule's, not counted here."""
    from shardwatch.store.report import latest_done

    latest = latest_done(dataset_id)
    vr = t.ValidationResult
    checked = select(vr.shard_id).join(latest, latest.c.id == vr.shard_id).distinct()
    if not s.scalar(select(func.count()).select_from(checked.subquery())):
        return None
    by_drift = func.coalesce(vr.error_message, "").startswith(DRIFT_REASON, autoescape=True)
    not_run = func.coalesce(vr.error_message, "").startswith(NOT_RUN_REASON, autoescape=True)
    errored = and_(vr.errored.is_(True), ~by_drift, ~not_run)
    bad = checked.where(or_(errored, vr.success.is_(False)))
    return int(s.scalar(select(func.count()).select_from(bad.subquery())) or 0)


class _Writer:
    """Applies observations to alert keys and enqueues notices (one transaction)."""

    def __init__(
        self,
        s: Session,
        dataset_id: int,
        dataset: str,
        plan: AlertPlan,
        run_id: int | None,
        now: datetime,
    ) -> None:
        self.s, self.dataset_id, self.dataset = s, dataset_id, dataset
        self.plan, self.run_id, self.now = plan, run_id, now

    def apply(
        self,
        ob: Observation,
        level: Literal["shard", "dataset"],
        uri: str | None,
        link: str | None,
    ) -> None:
        kind = "domain" if ob.rule.metric == "new_domain_keyword_nsfw_rate" else "term"
        key = scope_key(level, uri, ob.term, kind)
        row = self.s.scalar(
            select(t.Alert).where(
                t.Alert.dataset_id == self.dataset_id,
                t.Alert.rule == ob.rule.name,
                t.Alert.scope == key,
            )
        )
        if not ob.breaching:
            if row is not None and row.breaching:
                self._update(row, ob, link)
                row.breaching = False
                row.resolved_at = self.now
                self._recover(row)
            elif row is not None:
                self._update(row, ob, link)
            return
        fresh = row is None  # a new key has no notices to cancel
        if row is None:
            row = t.Alert(
                dataset_id=self.dataset_id,
                rule=ob.rule.name,
                scope=key,
                breaching=False,
                opened_at=self.now,
            )
            self.s.add(row)
        self._update(row, ob, link)
        if row.breaching:
            return  # persisting: the relay reminds after the re-notify interval
        row.breaching = True
        row.opened_at = self.now
        row.resolved_at = None
        row.last_notified_at = self.now
        self.s.flush()
        item = _item_of(row, self.dataset, "breach", self._report())
        for channel in self.plan.channels:
            if not fresh and self._cancel(row.id, channel, ("recovery",)):
                continue  # its recovery never went out: for that channel it never cleared
            self.s.add(_notice(row.id, channel, "breach", item, self.now))

    def _report(self) -> str | None:
        """The report page this pass writes (the notice links to it), if it writes one."""
        return f"run-{self.run_id}.html" if self.plan.reports and self.run_id else None

    def _update(self, row: t.Alert, ob: Observation, link: str | None) -> None:
        row.severity = ob.rule.severity
        row.observed = ob.observed
        row.threshold = ob.rule.threshold()
        row.detail = ob.describe() or None
        row.link = link
        row.run_id = self.run_id

    def _recover(self, row: t.Alert) -> None:
        """One recovery per channel that was told of the breach; notices of it that never
        reached a channel (waiting, or dead-lettered) are cancelled: they are stale now."""
        item = _item_of(row, self.dataset, "recovery", self._report())
        for channel in self.plan.channels:
            self._cancel(row.id, channel, ("breach", "reminder"), ("pending", "dead"))
            told = self.s.scalar(
                select(
                    exists().where(
                        t.AlertOutbox.alert_id == row.id,
                        t.AlertOutbox.channel == channel,
                        t.AlertOutbox.kind.in_(("breach", "reminder")),
                        t.AlertOutbox.state.in_(("sent", "sending")),
                        t.AlertOutbox.created_at >= row.opened_at,
                    )
                )
            )
            if told:
                self.s.add(_notice(row.id, channel, "recovery", item, self.now))

    def _cancel(
        self,
        alert_id: int,
        channel: str,
        kinds: tuple[str, ...],
        states: tuple[str, ...] = ("pending",),
    ) -> int:
        """Cancel undelivered notices of `kinds` (waiting, or as given, dead too)."""
        result = self.s.execute(
            update(t.AlertOutbox)
            .where(
                t.AlertOutbox.alert_id == alert_id,
                t.AlertOutbox.channel == channel,
                t.AlertOutbox.kind.in_(kinds),
                t.AlertOutbox.state.in_(states),
            )
            .values(state="cancelled")
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def _item_of(row: t.Alert, dataset: str, kind: NoticeKind, report: str | None = None) -> AlertItem:
    """The alert's current values as an item to send (`report`: the run report's page)."""
    return AlertItem(
        rule=row.rule,
        severity="critical" if row.severity == "critical" else "warning",
        dataset=dataset,
        scope=scope_label(row.scope),  # a local shard by its file name only
        observed=row.observed,
        threshold=row.threshold,
        kind=kind,
        run_id=row.run_id,
        link=row.link,
        detail=row.detail,
        report=report,
    )


def _notice(
    alert_id: int, channel: str, kind: NoticeKind, item: AlertItem, now: datetime
) -> t.AlertOutbox:
    return t.AlertOutbox(
        alert_id=alert_id,
        channel=channel,
        kind=kind,
        state="pending",
        payload=asdict(item),
        attempts=0,
        created_at=now,
    )


# --------------------------------------------------------------------------- the relay
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
                item = _item_of(row, dataset or "", "reminder")
                dead = set(
                    s.scalars(select(o.channel).where(o.alert_id == row.id, o.state == "dead"))
                )
                s.add_all(
                    _notice(row.id, channel, "reminder", item, now)
                    for channel in channels
                    if channel not in dead
                )
                row.last_notified_at = now
            return len(rows)

    def due_channels(self, now: datetime) -> list[str]:
        """The channels with notices due now."""
        o = t.AlertOutbox
        with self.sessions() as s:
            return sorted(s.scalars(select(o.channel).where(self._due(now)).distinct()))

    def count_due(self, channel: str, now: datetime) -> int:
        o = t.AlertOutbox
        query = select(func.count()).where(self._due(now), o.channel == channel)
        with self.sessions() as s:
            return int(s.scalar(query) or 0)

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
                Notice(n.id, n.alert_id, n.channel, n.kind, n.attempts, _current(n, alert))  # type: ignore[arg-type]
                for n, alert in rows
            ]

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
                    scope=_scope_text(row.scope),
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

    def counts(self) -> dict[str, int]:
        """Notices per state."""
        o = t.AlertOutbox
        with self.sessions() as s:
            rows = s.execute(select(o.state, func.count()).group_by(o.state))
            return {state: int(n) for state, n in rows}


def _scope_text(key: str) -> str:
    """A stored scope key, as people read it."""
    level, _, term = key.partition("|term:")
    where = (
        "dataset (latest shard versions)"
        if level == "dataset"
        else level.replace("shard:", "shard ", 1)
    )
    return where + (f", term {term!r}" if term else "")


def _current(notice: t.AlertOutbox, alert: t.Alert) -> AlertItem:
    """The notice's item with the alert's latest values, while the alert is still in the
    state the notice reports (a dataset rate keeps moving as shards arrive)."""
    item = replace(_item(notice.payload), scope=scope_label(alert.scope))
    if alert.breaching != (notice.kind != "recovery"):
        return item
    return replace(
        item,
        severity="critical" if alert.severity == "critical" else "warning",
        observed=alert.observed,
        threshold=alert.threshold,
        detail=alert.detail,
        link=alert.link,
        run_id=alert.run_id,
    )


def _item(payload: dict[str, Any]) -> AlertItem:
    fields = set(AlertItem.__dataclass_fields__)
    return AlertItem(**{k: v for k, v in payload.items() if k in fields})
