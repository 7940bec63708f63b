"""dataset_totals: a dataset's sums over its latest done versions, kept per pass

Revision ID: d4e6b8f1a2c3
Revises: a17c0de0e004
Create Date: 2026-12-05 20:40:00

The pass's closing judgement keeps the sums it computed (store/stored_totals.py), with a
digest of the versions they cover; a report uses them only while the digest still matches
the dataset's latest done versions, and sums the stored rows itself otherwise. Nothing
needs backfilling: a dataset without a row is summed as before, and the next pass keeps one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d4e6b8f1a2c3"
down_revision = "a17c0de0e004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_totals",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("shards_key", sa.String(64), nullable=False),
        sa.Column("sums", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_totals_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_dataset_totals")),
    )


def downgrade() -> None:
    op.drop_table("dataset_totals")
