"""validation details: order and row condition of each check, and the shard's Data Docs page

Revision ID: 3b1f0c2a9d4e
Revises: 7984c25d777c
Create Date: 2026-11-26 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3b1f0c2a9d4e"
down_revision = "7984c25d777c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("validation_results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("position", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("condition", sa.String(length=200), nullable=True))
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("docs_page", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.drop_column("docs_page")
    with op.batch_alter_table("validation_results", schema=None) as batch_op:
        batch_op.drop_column("condition")
        batch_op.drop_column("position")
