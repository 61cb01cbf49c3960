"""held changes: what an ``approve`` rule reverted, restorable by an admin's click on its card

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "held_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("ledger_entry_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("audit_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("target", sa.String(length=64), nullable=True),
        sa.Column("reverted", sa.JSON(), nullable=False),
        sa.Column("reapply", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("decided_at"),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        _when("restore_started_at"),
        _when("restored_at"),
        sa.Column("failures", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("card_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("card_message_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_changes")),
    )
    with op.batch_alter_table("held_changes", schema=None) as batch_op:
        batch_op.create_index("ix_held_changes_status_expires", ["status", "expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("held_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_held_changes_status_expires")
    op.drop_table("held_changes")
