"""audit listener: per-guild cursor and processed-entry dedupe

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_cursors",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_audit_cursors")),
    )
    op.create_table(
        "audit_processed",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_entry_id", sa.Integer(), nullable=True),
        sa.Column("pending_actions", sa.JSON(), nullable=True),
        sa.Column("rule", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_processed")),
        sa.UniqueConstraint("guild_id", "entry_id", name="uq_audit_processed_guild_entry"),
    )
    with op.batch_alter_table("audit_processed", schema=None) as batch_op:
        batch_op.create_index("ix_audit_processed_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_processed", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_processed_processed_at")
    op.drop_table("audit_processed")
    op.drop_table("audit_cursors")
