"""paper_view: the per-term keyword x tag cross-tab and the paper's substring figures

Revision ID: c3f8a1d27e90
Revises: b7d4e1f9a2c6
Create Date: 2026-12-05 07:00:00

Per shard: `paper_keyword_nsfw_rows` (rows the paper's 7 substring keywords flag). Per term:
`paper_keyword_nsfw` (of the rows holding the term itself as a substring, those the paper's
rule flags). Per term and tag label: `keyword_nsfw` (the label among the term's keyword-NSFW
matches) and `paper_keyword_nsfw`. All nullable: shards stored before this revision lack them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c3f8a1d27e90"
down_revision = "b7d4e1f9a2c6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shard_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paper_keyword_nsfw_rows", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("term_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paper_keyword_nsfw", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("term_tag_counts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keyword_nsfw", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("paper_keyword_nsfw", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("term_tag_counts", schema=None) as batch_op:
        batch_op.drop_column("paper_keyword_nsfw")
        batch_op.drop_column("keyword_nsfw")
    with op.batch_alter_table("term_metrics", schema=None) as batch_op:
        batch_op.drop_column("paper_keyword_nsfw")
    with op.batch_alter_table("shard_metrics", schema=None) as batch_op:
        batch_op.drop_column("paper_keyword_nsfw_rows")
