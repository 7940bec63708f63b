"""alert_channels: each channel's send turn and pacing, shared by every relay

Revision ID: e5a7c2d94b18
Revises: c41f9b2e7a10
Create Date: 2026-11-27 02:00:00

An alert storm must not reach a channel faster than one message per `min_interval`, even
with several relays running: a relay holds a channel's turn (`holder` until `held_until`)
while it sends, and leaves `next_send_at` for the next one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e5a7c2d94b18"
down_revision = "c41f9b2e7a10"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_channels",
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=True),
        sa.Column("held_until", TS, nullable=True),
        sa.Column("next_send_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_alert_channels")),
    )


def downgrade() -> None:
    op.drop_table("alert_channels")
