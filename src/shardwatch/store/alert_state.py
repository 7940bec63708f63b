"""Alert state: per alert key, breaches and recoveries, written with the shard's results.

`record_alerts` runs inside `ResultStore.complete`'s transaction, so a shard's results and
the notices they cause commit together or not at all. It judges the shard-level rules only:
their cost does not grow with the dataset. The dataset-level rules are judged once per pass
by `record_dataset_alerts` (`ResultStore.judge_dataset`, under the dataset lock), on the
exact total over the latest done versions. Per alert key (dataset x rule x scope):
- a new breach enqueues one `breach` notice per channel;
- a breach that persists enqueues nothing (the relay adds a `reminder` after the re-notify
  interval), unless its severity rose (warning -> critical): then one `breach` notice per
  channel at the new severity, at once; a fall (critical -> warning) enqueues nothing;
- a breach that clears enqueues one `recovery` notice per channel that was told about it
  (a notice still pending is cancelled instead: the channel never heard of the breach).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from shardwatch.core.alert_items import docs_relative
from shardwatch.core.alerts import (
    DRIFT_METRICS,
    AlertPlan,
    Observation,
    failing_checks,
    failure_observations,
    judge,
)
from shardwatch.core.blocklist import FLAG_CHECK, FLAG_PREFIX
from shardwatch.core.domain_sketch import DomainStat
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.schema import SchemaDrift
from shardwatch.core.validation import DRIFT_REASON, NOT_RUN_REASON, ShardValidation
from shardwatch.store import models as t
from shardwatch.store.aggregates import Aggregates
from shardwatch.store.errors import ReportError
from shardwatch.store.notices import item_of, new_notice, scope_key
from shardwatch.store.snapshots import latest_done
from shardwatch.store.totals import dataset_total

_RANK = {"warning": 1, "critical": 2}  # a persisting breach whose severity rises is re-told


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
    """Judge the plan's shard-level rules on the shard, and update its alert keys and the
    outbox, in the caller's transaction (after the shard is `done`, under the dataset lock).
    `schema_drift` rules judge `schema_drift` (None: not checked, so not judged). Drift rules
    judge the shard against its dataset's total, which then is summed here (the one
    shard-level judgement whose cost grows with the dataset); dataset-level rules are not
    judged here (`record_dataset_alerts`)."""
    shard = s.get(t.Shard, shard_id)
    if shard is None:  # pragma: no cover - the caller holds the shard's lease
        raise KeyError(shard_id)
    dataset_id = shard.dataset_id
    dataset = s.scalar(select(t.Dataset.name).where(t.Dataset.id == dataset_id)) or ""
    writer = _Writer(s, dataset_id, dataset, plan, run_id, t.utcnow())

    failures, detail = failing_checks(validation)
    total = None
    if any(r.metric in DRIFT_METRICS and r.applies_to("shard") for r in plan.rules):
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
        list_severity=dict(plan.blocklists),
    )
    # links are kept relative to the Data Docs site; the relay makes them public URLs
    page = validation.docs_page if validation is not None else None
    link = docs_relative(page, plan.docs_index)
    for ob in shard_obs:
        writer.apply(ob, "shard", shard.uri, link)


def record_dataset_alerts(
    s: Session,
    dataset_id: int,
    plan: AlertPlan,
    run_id: int | None,
    sums: Aggregates | None = None,
) -> bool:
    """Judge the plan's dataset-level rules on the exact total over the dataset's latest done
    versions, and update the dataset's alert keys and the outbox, in the caller's
    transaction (which holds the dataset lock, so it sees every committed shard and no
    commit of the dataset interleaves); `sums`: its aggregates, when just computed. False
    when there was nothing to judge (no done shard, or shards that cannot be added up: the
    report says why)."""
    total = _dataset_total(s, dataset_id, sums)
    if total is None:
        return False
    dataset = s.scalar(select(t.Dataset.name).where(t.Dataset.id == dataset_id)) or ""
    writer = _Writer(s, dataset_id, dataset, plan, run_id, t.utcnow())
    bad_shards = _failing_latest_shards(s, dataset_id)
    index = "index.html" if plan.docs_index is not None else None
    for ob in judge(plan.rules, total, "dataset", validation_failures=bad_shards):
        writer.apply(ob, "dataset", None, index)
    return True


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


def _dataset_total(
    s: Session, dataset_id: int, sums: Aggregates | None = None
) -> ShardMetrics | None:
    try:
        return dataset_total(s.connection(), dataset_id, sums)
    except ReportError:
        return None  # mixed lexicons or thresholds: the report says so; nothing to judge


def _new_domains(
    s: Session, shard: t.Shard, metrics: ShardMetrics, plan: AlertPlan
) -> dict[str, DomainStat] | None:
    """The shard's listed domains, of at least the rules' smallest `min_support` rows (the
    rule judges no other), that no other current done shard of the dataset lists (None when
    no rule asks, or the shard has no domain sketch). One indexed look-up per such domain,
    which stops at the first current shard listing it: the cost does not grow with the
    dataset."""
    supports = [r.min_support for r in plan.rules if r.metric == "new_domain_keyword_nsfw_rate"]
    if metrics.domains is None or not supports:
        return None
    other, newer, sd = aliased(t.Shard), aliased(t.Shard), t.ShardDomain
    current = ~exists().where(  # no more recently seen done version of the same URI
        newer.dataset_id == other.dataset_id,
        newer.uri == other.uri,
        newer.status == "done",
        or_(
            newer.last_seen_at > other.last_seen_at,
            and_(newer.last_seen_at == other.last_seen_at, newer.version > other.version),
        ),
    )
    out: dict[str, DomainStat] = {}
    for domain, stat in metrics.domains.top.items():
        if stat.rows < min(supports):
            continue
        listed = exists().where(
            sd.domain == domain,
            other.id == sd.shard_id,
            other.dataset_id == shard.dataset_id,
            other.status == "done",
            other.uri != shard.uri,
            current,
        )
        if not s.scalar(select(listed)):
            out[domain] = stat
    return out


def _failing_latest_shards(s: Session, dataset_id: int) -> int | None:
    """Latest done shard versions with a failed or errored check (None: none validated);
    checks errored by schema drift are the `schema-drift` rule's and blocklist flag checks
    the `blocklisted-rows` rule's, not counted here."""
    latest = latest_done(dataset_id)
    vr = t.ValidationResult
    checked = select(vr.shard_id).join(latest, latest.c.id == vr.shard_id).distinct()
    if not s.scalar(select(func.count()).select_from(checked.subquery())):
        return None
    by_drift = func.coalesce(vr.error_message, "").startswith(DRIFT_REASON, autoescape=True)
    not_run = func.coalesce(vr.error_message, "").startswith(NOT_RUN_REASON, autoescape=True)
    errored = and_(vr.errored.is_(True), ~by_drift, ~not_run)
    flag_check = and_(  # a blocklist's flag check: the blocklisted-rows rule's (core/blocklist.py)
        vr.expectation == FLAG_CHECK,
        vr.column.startswith(FLAG_PREFIX, autoescape=True),
        vr.condition.is_(None),
    )
    bad = checked.where(or_(errored, vr.success.is_(False)), ~flag_check)
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
        raised = _RANK.get(ob.rule.severity, 0) > _RANK.get(row.severity, 0)
        self._update(row, ob, link)
        if row.breaching:
            if raised:  # warning -> critical: told at once, not at the next reminder
                self._escalate(row)
            return  # persisting: the relay reminds after the re-notify interval
        row.breaching = True
        row.opened_at = self.now
        row.resolved_at = None
        row.last_notified_at = self.now
        self.s.flush()
        item = item_of(row, self.dataset, "breach", self._report())
        for channel in self.plan.channels:
            if not fresh and self._cancel(row.id, channel, ("recovery",)):
                continue  # its recovery never went out: for that channel it never cleared
            self.s.add(new_notice(row.id, channel, "breach", item, self.now))

    def _escalate(self, row: t.Alert) -> None:
        """A persisting breach whose severity rose: one `breach` notice per channel at its
        new severity, unless a notice of the breach still waits for that channel (pending:
        the relay sends the alert's current values, so it carries the new severity) or is
        dead-lettered (it stands for the breach until `alerts retry`, as for reminders)."""
        row.last_notified_at = self.now
        self.s.flush()
        item = item_of(row, self.dataset, "breach", self._report())
        for channel in self.plan.channels:
            waiting = self.s.scalar(
                select(
                    exists().where(
                        t.AlertOutbox.alert_id == row.id,
                        t.AlertOutbox.channel == channel,
                        t.AlertOutbox.kind.in_(("breach", "reminder")),
                        t.AlertOutbox.state.in_(("pending", "dead")),
                    )
                )
            )
            if not waiting:
                self.s.add(new_notice(row.id, channel, "breach", item, self.now))

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
        item = item_of(row, self.dataset, "recovery", self._report())
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
                self.s.add(new_notice(row.id, channel, "recovery", item, self.now))

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
