"""keyword x tag cross-tab: keyword-NSFW rows per tag bucket of each shard

Revision ID: 8a7c3e21d5f0
Revises: 5d2e8a41c7b3
Create Date: 2026-11-26 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "8a7c3e21d5f0"
down_revision = "5d2e8a41c7b3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shard_tag_counts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keyword_nsfw", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shard_tag_counts", schema=None) as batch_op:
        batch_op.drop_column("keyword_nsfw")
