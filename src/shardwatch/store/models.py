"""Models: the writers' ORM classes, mapped onto the Core tables of store/tables.py.

The schema is defined once, in tables.py (Alembic compares migrations with its metadata, which
is `Base.metadata` too). Only the writers import this module: it loads `sqlalchemy.orm`, which
the read-only commands (`report`) do without.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped

from shardwatch.store import tables
from shardwatch.store.tables import (
    NAMING,
    NOTICE_KINDS,
    OUTBOX_STATES,
    RUN_STATUSES,
    SHARD_STATUSES,
    Timestamp,
    utcnow,
)

__all__ = [
    "NAMING",
    "NOTICE_KINDS",
    "OUTBOX_STATES",
    "RUN_STATUSES",
    "SHARD_STATUSES",
    "Timestamp",
    "utcnow",
]


class Base(DeclarativeBase):
    metadata = tables.metadata


class Dataset(Base):
    __table__ = tables.datasets

    id: Mapped[int]
    name: Mapped[str]
    created_at: Mapped[datetime]


class Run(Base):
    __table__ = tables.runs

    id: Mapped[int]
    prefect_flow_run_id: Mapped[str | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str]
    shards_seen: Mapped[int]
    shards_done: Mapped[int]
    shards_skipped: Mapped[int]
    shards_failed: Mapped[int]
    host: Mapped[str | None]
    pid: Mapped[int | None]
    error: Mapped[str | None]


class Shard(Base):
    """One version of one shard: (dataset, uri, content hash) is its natural key."""

    __table__ = tables.shards

    id: Mapped[int]
    dataset_id: Mapped[int]
    uri: Mapped[str]
    content_sha256: Mapped[str]
    version: Mapped[int]
    size_bytes: Mapped[int | None]
    etag: Mapped[str | None]
    mtime: Mapped[datetime | None]
    status: Mapped[str]
    reason: Mapped[str | None]
    attempts: Mapped[int]
    lease_owner: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]
    run_id: Mapped[int | None]
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    docs_page: Mapped[str | None]
    schema_drift: Mapped[dict[str, Any] | None]
    history: Mapped[list[Any] | None]


class ShardMetricsRow(Base):
    """Everything the engine computed for one shard version (scalars; maps live beside)."""

    __table__ = tables.shard_metrics

    shard_id: Mapped[int]
    profile: Mapped[str]
    lexicon: Mapped[str]
    rows: Mapped[int]
    keyword_nsfw_rows: Mapped[int | None]
    paper_keyword_nsfw_rows: Mapped[int | None]
    has_nsfw_tag: Mapped[bool]
    has_terms: Mapped[bool]
    similarity_threshold: Mapped[float | None]
    similarity_count: Mapped[int | None]
    similarity_null: Mapped[int | None]
    similarity_below: Mapped[int | None]
    similarity_min: Mapped[float | None]
    similarity_max: Mapped[float | None]
    similarity_sum: Mapped[float | None]
    hist_underflow: Mapped[int | None]
    hist_overflow: Mapped[int | None]
    duplicate_ids: Mapped[int | None]
    duplicate_urls: Mapped[int | None]
    unsafe_rows: Mapped[int | None]
    keyword_unsafe_rows: Mapped[int | None]
    domain_k: Mapped[int | None]
    domain_floor_rows: Mapped[int | None]
    domain_floor_keyword: Mapped[int | None]
    domain_floor_tag: Mapped[int | None]
    domain_rest_rows: Mapped[int | None]
    domain_rest_keyword: Mapped[int | None]
    domain_rest_tag: Mapped[int | None]
    nulls: Mapped[dict[str, Any]]
    unavailable: Mapped[list[Any]]
    notes: Mapped[list[Any]]
    computed_at: Mapped[datetime]


class ShardTagCount(Base):
    """NSFW tag counts of a shard: one row per label (plus `other` and `null`)."""

    __table__ = tables.shard_tag_counts

    shard_id: Mapped[int]
    label: Mapped[str]
    count: Mapped[int]
    keyword_nsfw: Mapped[int | None]
    unsafe: Mapped[int | None]


class ShardDomain(Base):
    """One listed domain of a shard's top-k domain sketch, with exact counts."""

    __table__ = tables.shard_domains

    shard_id: Mapped[int]
    domain: Mapped[str]
    rows: Mapped[int]
    keyword_nsfw: Mapped[int]
    tag_nsfw: Mapped[int]


class SimilarityBin(Base):
    """The non-empty bins of a shard's fixed 0.005-wide similarity histogram."""

    __table__ = tables.similarity_bins

    shard_id: Mapped[int]
    bin: Mapped[int]
    count: Mapped[int]


class TermMetricsRow(Base):
    """One watched term in one shard version (shard x lexicon x term)."""

    __table__ = tables.term_metrics

    shard_id: Mapped[int]
    lexicon: Mapped[str]
    term: Mapped[str]
    position: Mapped[int]
    mode: Mapped[str]
    matches: Mapped[int]
    keyword_nsfw: Mapped[int]
    substring_matches: Mapped[int]
    paper_keyword_nsfw: Mapped[int | None]


class TermTagCount(Base):
    """The NSFW tag counts among one term's matches in one shard version."""

    __table__ = tables.term_tag_counts

    shard_id: Mapped[int]
    lexicon: Mapped[str]
    term: Mapped[str]
    label: Mapped[str]
    count: Mapped[int]
    keyword_nsfw: Mapped[int | None]
    paper_keyword_nsfw: Mapped[int | None]


class ShardBlocklist(Base):
    """One blocklist checked against one shard version (tables.shard_blocklists)."""

    __table__ = tables.shard_blocklists

    shard_id: Mapped[int]
    name: Mapped[str]
    kind: Mapped[str]
    version: Mapped[str]
    entries: Mapped[int]
    rows: Mapped[int]


class ShardBlocklistMatch(Base):
    """One entry id a shard version matched (tables.shard_blocklist_matches)."""

    __table__ = tables.shard_blocklist_matches

    shard_id: Mapped[int]
    name: Mapped[str]
    entry: Mapped[bytes]


class ValidationResult(Base):
    """One expectation's outcome on one shard version; `errored` is apart from `success`."""

    __table__ = tables.validation_results

    id: Mapped[int]
    shard_id: Mapped[int]
    suite: Mapped[str]
    position: Mapped[int]
    expectation: Mapped[str]
    column: Mapped[str | None]
    condition: Mapped[str | None]
    success: Mapped[bool | None]
    errored: Mapped[bool]
    error_message: Mapped[str | None]
    observed_value: Mapped[dict[str, Any] | None]
    threshold: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class Alert(Base):
    """The state of one alert key, dataset x rule x scope: breaching or not, and since when.

    `scope` is `dataset` or `shard:<uri>`, with `|term:<term>` for term rules.
    """

    __table__ = tables.alerts

    id: Mapped[int]
    dataset_id: Mapped[int]
    rule: Mapped[str]
    scope: Mapped[str]
    severity: Mapped[str]
    breaching: Mapped[bool]
    observed: Mapped[float | None]
    threshold: Mapped[str | None]
    detail: Mapped[str | None]
    link: Mapped[str | None]
    run_id: Mapped[int | None]
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]


class AlertOutbox(Base):
    """The transactional outbox: one notice (breach, reminder or recovery) for one channel.

    Written in the same transaction as the results that caused it; a relay claims pending
    rows (a lease in `next_attempt_at` while `sending`), sends them and marks them.
    """

    __table__ = tables.alert_outbox

    id: Mapped[int]
    alert_id: Mapped[int]
    channel: Mapped[str]
    kind: Mapped[str]
    state: Mapped[str]
    payload: Mapped[dict[str, Any]]
    attempts: Mapped[int]
    last_error: Mapped[str | None]
    lease_owner: Mapped[str | None]
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class DatasetTotal(Base):
    """A dataset's sums over its latest done versions (store/stored_totals.py), kept by the
    pass's closing judgement so that a report need not sum every stored row again. Used only
    while `shards_key` (a digest of those versions' ids and result stamps) still matches."""

    __table__ = tables.dataset_totals

    dataset_id: Mapped[int]
    shards_key: Mapped[str]
    sums: Mapped[dict[str, Any]]
    computed_at: Mapped[datetime]


class AlertChannel(Base):
    """One channel's send turn, shared by every relay: who may send to it now (`holder`,
    until `held_until`) and when the next message may go (`next_send_at`), so a channel
    never gets more than one message per `min_interval`, however many relays run."""

    __table__ = tables.alert_channels

    channel: Mapped[str]
    holder: Mapped[str | None]
    held_until: Mapped[datetime | None]
    next_send_at: Mapped[datetime | None]
