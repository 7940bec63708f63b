"""blocklists: per shard version, each blocklist checked and the entries it matched

Revision ID: f2b7c9d4e6a1
Revises: d4e6b8f1a2c3
Create Date: 2026-12-05 23:00:00

`shard_blocklists`: one row per shard version and list: the list's kind, version (the
SHA-256 of its file's bytes), distinct entries, and the rows matching it. The report says
from it which version of a list each shard was checked against. `shard_blocklist_matches`:
the ids (16 bytes, core/blocklist.py) of the entries each shard version matched, so that a
dataset's matched entries are counted once however many shards match them. No URL, id or
domain is stored. Nothing needs backfilling: a shard stored before holds no list.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f2b7c9d4e6a1"
down_revision = "d4e6b8f1a2c3"
branch_labels = None
depends_on = None

KINDS = ("url", "url_sha256", "id", "domain")  # core/blocklist.py BLOCKLIST_KINDS, as of now


def upgrade() -> None:
    op.create_table(
        "shard_blocklists",
        sa.Column("shard_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(f"kind IN {KINDS}", name=op.f("ck_shard_blocklists_kind")),
        sa.ForeignKeyConstraint(
            ["shard_id"],
            ["shards.id"],
            name=op.f("fk_shard_blocklists_shard_id_shards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("shard_id", "name", name=op.f("pk_shard_blocklists")),
    )
    op.create_table(
        "shard_blocklist_matches",
        sa.Column("shard_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("entry", sa.LargeBinary(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["shard_id", "name"],
            ["shard_blocklists.shard_id", "shard_blocklists.name"],
            name=op.f("fk_shard_blocklist_matches_shard_id_shard_blocklists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "shard_id", "name", "entry", name=op.f("pk_shard_blocklist_matches")
        ),
    )


def downgrade() -> None:
    op.drop_table("shard_blocklist_matches")
    op.drop_table("shard_blocklists")
