"""Tables: the results store's schema as SQLAlchemy Core tables, its one definition.

Alembic compares migrations with `metadata`; the readers (report, drift, domains, export
queries) select from these tables through Core alone, so that a read command does not load
the ORM. The writers' ORM classes are mapped onto the same tables in store/models.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shardwatch.core.blocklist import ENTRY_ID_BYTES

SHARD_STATUSES = ("discovered", "processing", "done", "failed", "quarantined")
RUN_STATUSES = ("running", "completed", "failed")
OUTBOX_STATES = ("pending", "sending", "sent", "dead", "cancelled")
NOTICE_KINDS = ("breach", "reminder", "recovery")
# core/blocklist.py BLOCKLIST_KINDS, spelled out: SQL interpolates literal tuples only (a test
# keeps the two equal).
BLOCKLIST_KINDS = ("url", "url_sha256", "id", "domain")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = MetaData(naming_convention=NAMING)

Timestamp = DateTime(timezone=True)


datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), unique=True, nullable=False),
    Column("created_at", Timestamp, default=utcnow, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("prefect_flow_run_id", String(64)),
    Column("started_at", Timestamp, default=utcnow, nullable=False),
    Column("finished_at", Timestamp),
    Column("status", String(16), default="running", nullable=False),
    Column("shards_seen", Integer, default=0, nullable=False),
    Column("shards_done", Integer, default=0, nullable=False),
    Column("shards_skipped", Integer, default=0, nullable=False),
    Column("shards_failed", Integer, default=0, nullable=False),
    # The process that started the run (a later run closes it if that process has ended),
    # and why a run ended failed.
    Column("host", String(255)),
    Column("pid", Integer),
    Column("error", Text),
    CheckConstraint(f"status IN {RUN_STATUSES}", name="status"),
)

# One version of one shard: (dataset, uri, content hash) is its natural key.
shards = Table(
    "shards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("uri", Text, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("size_bytes", BigInteger),
    Column("etag", String(200)),
    Column("mtime", Timestamp),
    Column("status", String(16), default="discovered", nullable=False),
    Column("reason", Text),
    Column("attempts", Integer, default=0, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", Timestamp),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="SET NULL")),
    Column("created_at", Timestamp, default=utcnow, nullable=False),
    # When the source last listed this content under `uri`: the current version of a URI is
    # its most recently seen one (content A -> B -> A makes the A row current again).
    Column("last_seen_at", Timestamp, default=utcnow, nullable=False),
    Column("updated_at", Timestamp, default=utcnow, onupdate=utcnow, nullable=False),
    Column("started_at", Timestamp),
    Column("finished_at", Timestamp),
    # The shard's Data Docs page (a path under the docs site), once it has been validated.
    Column("docs_page", Text),
    # How the columns differ from the profile (SchemaDrift.to_dict()); NULL: they do not.
    Column("schema_drift", JSON),
    # The version's last failures, oldest first: [{"at", "status", "reason"}] (repository.fail).
    Column("history", JSON),
    UniqueConstraint("dataset_id", "uri", "content_sha256", name="natural_key"),
    UniqueConstraint("dataset_id", "uri", "version", name="uri_version"),
    CheckConstraint(f"status IN {SHARD_STATUSES}", name="status"),
    Index("ix_shards_claimable", "status", "lease_expires_at"),
)

# Everything the engine computed for one shard version (scalars; maps live beside).
shard_metrics = Table(
    "shard_metrics",
    metadata,
    Column("shard_id", Integer, ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True),
    Column("profile", String(100), nullable=False),
    Column("lexicon", String(100), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("keyword_nsfw_rows", BigInteger),
    # Rows the paper's 7 substring keywords flag (NULL: stored before they were counted).
    Column("paper_keyword_nsfw_rows", BigInteger),
    Column("has_nsfw_tag", Boolean, nullable=False),
    Column("has_terms", Boolean, nullable=False),
    Column("similarity_threshold", Float),
    Column("similarity_count", BigInteger),
    Column("similarity_null", BigInteger),
    Column("similarity_below", BigInteger),
    Column("similarity_min", Float),
    Column("similarity_max", Float),
    Column("similarity_sum", Float),
    Column("hist_underflow", BigInteger),
    Column("hist_overflow", BigInteger),
    Column("duplicate_ids", BigInteger),
    Column("duplicate_urls", BigInteger),
    Column("unsafe_rows", BigInteger),
    Column("keyword_unsafe_rows", BigInteger),
    # The domain sketch's k, floors and rest (its listed domains are in shard_domains).
    Column("domain_k", Integer),
    Column("domain_floor_rows", BigInteger),
    Column("domain_floor_keyword", BigInteger),
    Column("domain_floor_tag", BigInteger),
    Column("domain_rest_rows", BigInteger),
    Column("domain_rest_keyword", BigInteger),
    Column("domain_rest_tag", BigInteger),
    Column("nulls", JSON, nullable=False),
    Column("unavailable", JSON, nullable=False),
    Column("notes", JSON, nullable=False),
    Column("computed_at", Timestamp, default=utcnow, nullable=False),
)

# NSFW tag counts of a shard: one row per label (plus `other` and `null`).
shard_tag_counts = Table(
    "shard_tag_counts",
    metadata,
    Column("shard_id", Integer, ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True),
    Column("label", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False),
    # Of those rows, the keyword-NSFW ones (the tag x keyword cross-tab); NULL: no keywords.
    Column("keyword_nsfw", BigInteger),
    # Of those rows, the ones the second score calls unsafe; NULL: the shard has no score.
    Column("unsafe", BigInteger),
)

# One listed domain of a shard's top-k domain sketch, with exact counts.
shard_domains = Table(
    "shard_domains",
    metadata,
    Column("shard_id", Integer, ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True),
    Column("domain", String(260), primary_key=True),
    Column("rows", BigInteger, nullable=False),
    Column("keyword_nsfw", BigInteger, nullable=False),
    Column("tag_nsfw", BigInteger, nullable=False),
    Index("ix_shard_domains_domain", "domain"),
)

# The non-empty bins of a shard's fixed 0.005-wide similarity histogram.
similarity_bins = Table(
    "similarity_bins",
    metadata,
    Column("shard_id", Integer, ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True),
    Column("bin", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# One watched term in one shard version (shard x lexicon x term).
term_metrics = Table(
    "term_metrics",
    metadata,
    Column("shard_id", Integer, ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True),
    Column("lexicon", String(100), primary_key=True),
    Column("term", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("matches", BigInteger, nullable=False),
    Column("keyword_nsfw", BigInteger, nullable=False),
    Column("substring_matches", BigInteger, nullable=False),
    # The paper's method: of the substring_matches rows, those its 7 keywords flag.
    Column("paper_keyword_nsfw", BigInteger),
)

# The NSFW tag counts among one term's matches in one shard version.
term_tag_counts = Table(
    "term_tag_counts",
    metadata,
    Column("shard_id", Integer, ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True),
    Column("lexicon", String(100), primary_key=True),
    Column("term", String(200), primary_key=True),
    Column("label", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False),
    # Of those: the term's keyword-NSFW matches (Table 1's column), and the paper's figure
    # (substring rows its keywords flag). NULL: stored before they were counted.
    Column("keyword_nsfw", BigInteger),
    Column("paper_keyword_nsfw", BigInteger),
)

# One blocklist checked against one shard version: the list's kind, version (the SHA-256 of
# its file's bytes), distinct entries, and the shard's rows matching it.
shard_blocklists = Table(
    "shard_blocklists",
    metadata,
    Column("shard_id", Integer, ForeignKey("shards.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("version", String(64), nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    CheckConstraint(f"kind IN {BLOCKLIST_KINDS}", name="kind"),
)

# One entry of a blocklist that a shard version matched, by its fixed-size id
# (core/blocklist.py `entry_id`): never the URL, id or domain itself.
shard_blocklist_matches = Table(
    "shard_blocklist_matches",
    metadata,
    Column("shard_id", Integer, primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("entry", LargeBinary(ENTRY_ID_BYTES), primary_key=True),
    ForeignKeyConstraint(
        ["shard_id", "name"],
        ["shard_blocklists.shard_id", "shard_blocklists.name"],
        ondelete="CASCADE",
    ),
)

# One expectation's outcome on one shard version; `errored` is apart from `success`.
validation_results = Table(
    "validation_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("shard_id", Integer, ForeignKey("shards.id", ondelete="CASCADE"), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("position", Integer, default=0, nullable=False),
    Column("expectation", String(200), nullable=False),
    Column("column", String(200)),
    Column("condition", String(200)),
    Column("success", Boolean),
    Column("errored", Boolean, default=False, nullable=False),
    Column("error_message", Text),
    Column("observed_value", JSON),
    Column("threshold", JSON),
    Column("created_at", Timestamp, default=utcnow, nullable=False),
)

# The state of one alert key, dataset x rule x scope: breaching or not, and since when.  `scope`
# is `dataset` or `shard:<uri>`, with `|term:<term>` for term rules.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("rule", String(100), nullable=False),
    Column("scope", String(1000), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("breaching", Boolean, nullable=False),
    Column("observed", Float),
    Column("threshold", String(100)),
    Column("detail", Text),
    Column("link", Text),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="SET NULL")),
    Column("opened_at", Timestamp, default=utcnow, nullable=False),
    Column("updated_at", Timestamp, default=utcnow, onupdate=utcnow, nullable=False),
    Column("resolved_at", Timestamp),
    Column("last_notified_at", Timestamp),
    UniqueConstraint("dataset_id", "rule", "scope", name="alert_key"),
)

# The transactional outbox: one notice (breach, reminder or recovery) for one channel.  Written
# in the same transaction as the results that caused it; a relay claims pending rows (a lease in
# `next_attempt_at` while `sending`), sends them and marks them.
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("alert_id", Integer, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), default="pending", nullable=False),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, default=0, nullable=False),
    Column("last_error", Text),
    Column("lease_owner", String(100)),
    Column("next_attempt_at", Timestamp),
    Column("created_at", Timestamp, default=utcnow, nullable=False),
    Column("updated_at", Timestamp, default=utcnow, onupdate=utcnow, nullable=False),
    Column("sent_at", Timestamp),
    CheckConstraint(f"state IN {OUTBOX_STATES}", name="state"),
    CheckConstraint(f"kind IN {NOTICE_KINDS}", name="kind"),
    Index("ix_alert_outbox_due", "state", "next_attempt_at"),
    Index("ix_alert_outbox_alert", "alert_id", "channel"),
)

# A dataset's sums over its latest done versions (store/stored_totals.py), kept by the pass's
# closing judgement so that a report need not sum every stored row again. Used only while
# `shards_key` (a digest of those versions' ids and result stamps) still matches.
dataset_totals = Table(
    "dataset_totals",
    metadata,
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    Column("shards_key", String(64), nullable=False),
    Column("sums", JSON, nullable=False),
    Column("computed_at", Timestamp, default=utcnow, nullable=False),
)

# One channel's send turn, shared by every relay: who may send to it now (`holder`, until
# `held_until`) and when the next message may go (`next_send_at`), so a channel never gets more
# than one message per `min_interval`, however many relays run.
alert_channels = Table(
    "alert_channels",
    metadata,
    Column("channel", String(100), primary_key=True),
    Column("holder", String(100)),
    Column("held_until", Timestamp),
    Column("next_send_at", Timestamp),
)
