"""domain sketch (shard_domains + floors and rest) and the second NSFW score (unsafe)

Revision ID: c41f9b2e7a10
Revises: 8a7c3e21d5f0
Create Date: 2026-11-26 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c41f9b2e7a10"
down_revision = "8a7c3e21d5f0"
branch_labels = None
depends_on = None

_METRIC_COLUMNS = (
    "unsafe_rows",
    "keyword_unsafe_rows",
    "domain_floor_rows",
    "domain_floor_keyword",
    "domain_floor_tag",
    "domain_rest_rows",
    "domain_rest_keyword",
    "domain_rest_tag",
)


def upgrade() -> None:
    with op.batch_alter_table("shard_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("domain_k", sa.Integer(), nullable=True))
        for name in _METRIC_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
    with op.batch_alter_table("shard_tag_counts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unsafe", sa.BigInteger(), nullable=True))
    op.create_table(
        "shard_domains",
        sa.Column("shard_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=260), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("keyword_nsfw", sa.BigInteger(), nullable=False),
        sa.Column("tag_nsfw", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shard_id"],
            ["shards.id"],
            name=op.f("fk_shard_domains_shard_id_shards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("shard_id", "domain", name=op.f("pk_shard_domains")),
    )
    op.create_index("ix_shard_domains_domain", "shard_domains", ["domain"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_shard_domains_domain", table_name="shard_domains")
    op.drop_table("shard_domains")
    with op.batch_alter_table("shard_tag_counts", schema=None) as batch_op:
        batch_op.drop_column("unsafe")
    with op.batch_alter_table("shard_metrics", schema=None) as batch_op:
        for name in reversed(_METRIC_COLUMNS):
            batch_op.drop_column(name)
        batch_op.drop_column("domain_k")
