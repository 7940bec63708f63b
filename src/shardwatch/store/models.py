"""Models: the typed SQLAlchemy 2 tables of the results store (ORM rows stay in `store/`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shardwatch.core.blocklist import BLOCKLIST_KINDS, ENTRY_ID_BYTES

SHARD_STATUSES = ("discovered", "processing", "done", "failed", "quarantined")
RUN_STATUSES = ("running", "completed", "failed")
OUTBOX_STATES = ("pending", "sending", "sent", "dead", "cancelled")
NOTICE_KINDS = ("breach", "reminder", "recovery")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


Timestamp = DateTime(timezone=True)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(16), default="running")
    shards_seen: Mapped[int] = mapped_column(Integer, default=0)
    shards_done: Mapped[int] = mapped_column(Integer, default=0)
    shards_skipped: Mapped[int] = mapped_column(Integer, default=0)
    shards_failed: Mapped[int] = mapped_column(Integer, default=0)
    # The process that started the run (a later run closes it if that process has ended),
    # and why a run ended failed.
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES}", name="status"),)


class Shard(Base):
    """One version of one shard: (dataset, uri, content hash) is its natural key."""

    __tablename__ = "shards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    etag: Mapped[str | None] = mapped_column(String(200))
    mtime: Mapped[datetime | None] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(16), default="discovered")
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # When the source last listed this content under `uri`: the current version of a URI is
    # its most recently seen one (content A -> B -> A makes the A row current again).
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The shard's Data Docs page (a path under the docs site), once it has been validated.
    docs_page: Mapped[str | None] = mapped_column(Text)
    # How the columns differ from the profile (SchemaDrift.to_dict()); NULL: they do not.
    schema_drift: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The version's last failures, oldest first: [{"at", "status", "reason"}] (repository.fail).
    history: Mapped[list[Any] | None] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("dataset_id", "uri", "content_sha256", name="natural_key"),
        UniqueConstraint("dataset_id", "uri", "version", name="uri_version"),
        CheckConstraint(f"status IN {SHARD_STATUSES}", name="status"),
        Index("ix_shards_claimable", "status", "lease_expires_at"),
    )


class ShardMetricsRow(Base):
    """Everything the engine computed for one shard version (scalars; maps live beside)."""

    __tablename__ = "shard_metrics"

    shard_id: Mapped[int] = mapped_column(
        ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True
    )
    profile: Mapped[str] = mapped_column(String(100))
    lexicon: Mapped[str] = mapped_column(String(100))
    rows: Mapped[int] = mapped_column(BigInteger)
    keyword_nsfw_rows: Mapped[int | None] = mapped_column(BigInteger)
    # Rows the paper's 7 substring keywords flag (NULL: stored before they were counted).
    paper_keyword_nsfw_rows: Mapped[int | None] = mapped_column(BigInteger)
    has_nsfw_tag: Mapped[bool] = mapped_column(Boolean)
    has_terms: Mapped[bool] = mapped_column(Boolean)
    similarity_threshold: Mapped[float | None] = mapped_column(Float)
    similarity_count: Mapped[int | None] = mapped_column(BigInteger)
    similarity_null: Mapped[int | None] = mapped_column(BigInteger)
    similarity_below: Mapped[int | None] = mapped_column(BigInteger)
    similarity_min: Mapped[float | None] = mapped_column(Float)
    similarity_max: Mapped[float | None] = mapped_column(Float)
    similarity_sum: Mapped[float | None] = mapped_column(Float)
    hist_underflow: Mapped[int | None] = mapped_column(BigInteger)
    hist_overflow: Mapped[int | None] = mapped_column(BigInteger)
    duplicate_ids: Mapped[int | None] = mapped_column(BigInteger)
    duplicate_urls: Mapped[int | None] = mapped_column(BigInteger)
    unsafe_rows: Mapped[int | None] = mapped_column(BigInteger)
    keyword_unsafe_rows: Mapped[int | None] = mapped_column(BigInteger)
    # The domain sketch's k, floors and rest (its listed domains are in shard_domains).
    domain_k: Mapped[int | None] = mapped_column(Integer)
    domain_floor_rows: Mapped[int | None] = mapped_column(BigInteger)
    domain_floor_keyword: Mapped[int | None] = mapped_column(BigInteger)
    domain_floor_tag: Mapped[int | None] = mapped_column(BigInteger)
    domain_rest_rows: Mapped[int | None] = mapped_column(BigInteger)
    domain_rest_keyword: Mapped[int | None] = mapped_column(BigInteger)
    domain_rest_tag: Mapped[int | None] = mapped_column(BigInteger)
    nulls: Mapped[dict[str, Any]] = mapped_column(JSON)
    unavailable: Mapped[list[Any]] = mapped_column(JSON)
    notes: Mapped[list[Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class ShardTagCount(Base):
    """NSFW tag counts of a shard: one row per label (plus `other` and `null`)."""

    __tablename__ = "shard_tag_counts"

    shard_id: Mapped[int] = mapped_column(
        ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    # Of those rows, the keyword-NSFW ones (the tag x keyword cross-tab); NULL: no keywords.
    keyword_nsfw: Mapped[int | None] = mapped_column(BigInteger)
    # Of those rows, the ones the second score calls unsafe; NULL: the shard has no score.
    unsafe: Mapped[int | None] = mapped_column(BigInteger)


class ShardDomain(Base):
    """One listed domain of a shard's top-k domain sketch, with exact counts."""

    __tablename__ = "shard_domains"

    shard_id: Mapped[int] = mapped_column(
        ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True
    )
    domain: Mapped[str] = mapped_column(String(260), primary_key=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    keyword_nsfw: Mapped[int] = mapped_column(BigInteger)
    tag_nsfw: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_shard_domains_domain", "domain"),)


class SimilarityBin(Base):
    """The non-empty bins of a shard's fixed 0.005-wide similarity histogram."""

    __tablename__ = "similarity_bins"

    shard_id: Mapped[int] = mapped_column(
        ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True
    )
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class TermMetricsRow(Base):
    """One watched term in one shard version (shard x lexicon x term)."""

    __tablename__ = "term_metrics"

    shard_id: Mapped[int] = mapped_column(
        ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True
    )
    lexicon: Mapped[str] = mapped_column(String(100), primary_key=True)
    term: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))
    matches: Mapped[int] = mapped_column(BigInteger)
    keyword_nsfw: Mapped[int] = mapped_column(BigInteger)
    substring_matches: Mapped[int] = mapped_column(BigInteger)
    # The paper's method: of the substring_matches rows, those its 7 keywords flag.
    paper_keyword_nsfw: Mapped[int | None] = mapped_column(BigInteger)


class TermTagCount(Base):
    """The NSFW tag counts among one term's matches in one shard version."""

    __tablename__ = "term_tag_counts"

    shard_id: Mapped[int] = mapped_column(
        ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True
    )
    lexicon: Mapped[str] = mapped_column(String(100), primary_key=True)
    term: Mapped[str] = mapped_column(String(200), primary_key=True)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    # Of those: the term's keyword-NSFW matches (Table 1's column), and the paper's figure
    # (substring rows its keywords flag). NULL: stored before they were counted.
    keyword_nsfw: Mapped[int | None] = mapped_column(BigInteger)
    paper_keyword_nsfw: Mapped[int | None] = mapped_column(BigInteger)


class ShardBlocklist(Base):
    """One blocklist checked against one shard version: the list's kind, version (the
    SHA-256 of its file's bytes), distinct entries, and the shard's rows matching it."""

    __tablename__ = "shard_blocklists"

    shard_id: Mapped[int] = mapped_column(
        ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint(f"kind IN {BLOCKLIST_KINDS}", name="kind"),)


class ShardBlocklistMatch(Base):
    """One entry of a blocklist that a shard version matched, by its fixed-size id
    (core/blocklist.py `entry_id`): never the URL, id or domain itself."""

    __tablename__ = "shard_blocklist_matches"

    shard_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    entry: Mapped[bytes] = mapped_column(LargeBinary(ENTRY_ID_BYTES), primary_key=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["shard_id", "name"],
            ["shard_blocklists.shard_id", "shard_blocklists.name"],
            ondelete="CASCADE",
        ),
    )


class ValidationResult(Base):
    """One expectation's outcome on one shard version; `errored` is apart from `success`."""

    __tablename__ = "validation_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shard_id: Mapped[int] = mapped_column(ForeignKey("shards.id", ondelete="CASCADE"))
    suite: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)  # order in the suite
    expectation: Mapped[str] = mapped_column(String(200))
    column: Mapped[str | None] = mapped_column(String(200))
    condition: Mapped[str | None] = mapped_column(String(200))  # e.g. "term_desi == True"
    success: Mapped[bool | None] = mapped_column(Boolean)
    errored: Mapped[bool] = mapped_column(Boolean, default=False)
    error_message: Mapped[str | None] = mapped_column(Text)
    observed_value: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    threshold: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Alert(Base):
    """The state of one alert key, dataset x rule x scope: breaching or not, and since when.

    `scope` is `dataset` or `shard:<uri>`, with `|term:<term>` for term rules.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(1000))
    severity: Mapped[str] = mapped_column(String(16))
    breaching: Mapped[bool] = mapped_column(Boolean)
    observed: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)  # the shard's Data Docs page
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_notified_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("dataset_id", "rule", "scope", name="alert_key"),)


class AlertOutbox(Base):
    """The transactional outbox: one notice (breach, reminder or recovery) for one channel.

    Written in the same transaction as the results that caused it; a relay claims pending
    rows (a lease in `next_attempt_at` while `sending`), sends them and marks them.
    """

    __tablename__ = "alert_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        CheckConstraint(f"state IN {OUTBOX_STATES}", name="state"),
        CheckConstraint(f"kind IN {NOTICE_KINDS}", name="kind"),
        Index("ix_alert_outbox_due", "state", "next_attempt_at"),
        Index("ix_alert_outbox_alert", "alert_id", "channel"),
    )


class DatasetTotal(Base):
    """A dataset's sums over its latest done versions (store/stored_totals.py), kept by the
    pass's closing judgement so that a report need not sum every stored row again. Used only
    while `shards_key` (a digest of those versions' ids and result stamps) still matches."""

    __tablename__ = "dataset_totals"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    shards_key: Mapped[str] = mapped_column(String(64))
    sums: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class AlertChannel(Base):
    """One channel's send turn, shared by every relay: who may send to it now (`holder`,
    until `held_until`) and when the next message may go (`next_send_at`), so a channel
    never gets more than one message per `min_interval`, however many relays run."""

    __tablename__ = "alert_channels"

    channel: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100))
    held_until: Mapped[datetime | None] = mapped_column(Timestamp)
    next_send_at: Mapped[datetime | None] = mapped_column(Timestamp)
