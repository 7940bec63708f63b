"""schema_drift: how a shard version's columns differ from its profile

Revision ID: b7d4e1f9a2c6
Revises: e5a7c2d94b18
Create Date: 2026-11-27 03:00:00

A renamed, missing, retyped or unexpected column is schema drift, stored with the shard
version (JSON: missing, retyped, unexpected, lost, summary) and reported apart from data
failures; NULL when the columns match the profile.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b7d4e1f9a2c6"
down_revision = "e5a7c2d94b18"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schema_drift", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.drop_column("schema_drift")
