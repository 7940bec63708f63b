"""Notices: the outbox rows the relay sends, the alert items they carry, and the views that
`shardwatch alerts list` shows."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from shardwatch.core.alert_items import AlertItem, scope_label
from shardwatch.store import models as t

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


def item_of(row: t.Alert, dataset: str, kind: NoticeKind, report: str | None = None) -> AlertItem:
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


def new_notice(
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


def scope_text(key: str) -> str:
    """A stored scope key, as people read it."""
    level, _, term = key.partition("|term:")
    where = (
        "dataset (latest shard versions)"
        if level == "dataset"
        else level.replace("shard:", "shard ", 1)
    )
    return where + (f", term {term!r}" if term else "")


def current_item(notice: t.AlertOutbox, alert: t.Alert) -> AlertItem:
    """The notice's item with the alert's latest values, while the alert is still in the
    state the notice reports (a dataset rate keeps moving as shards arrive)."""
    item = replace(item_from(notice.payload), scope=scope_label(alert.scope))
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


def item_from(payload: dict[str, Any]) -> AlertItem:
    fields = set(AlertItem.__dataclass_fields__)
    return AlertItem(**{k: v for k, v in payload.items() if k in fields})
