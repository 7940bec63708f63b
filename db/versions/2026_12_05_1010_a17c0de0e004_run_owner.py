"""run_owner: which process holds a run, why a run ended failed, a shard's failures

Revision ID: a17c0de0e004
Revises: c3f8a1d27e90
Create Date: 2026-12-05 10:10:00

`runs.host` and `runs.pid` name the process that started a run, so that a later run can
close a `running` row whose process has ended (killed, crashed, out of memory); `runs.error`
says why a run ended `failed`. `shards.history` keeps a shard version's last failures
(time, status, reason), so one quarantined when its retry budget ran out shows why. All
nullable: rows stored before this revision lack them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a17c0de0e004"
down_revision = "c3f8a1d27e90"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.drop_column("history")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("pid")
        batch_op.drop_column("host")
