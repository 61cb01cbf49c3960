"""attestation campaigns: campaigns, their items (answers, removals, restores) and the schedule

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "attest_campaigns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        _when("started_at", nullable=False),
        sa.Column("started_by", sa.BigInteger(), nullable=True),
        _when("deadline_at", nullable=False),
        _when("reminder_at"),
        _when("reminded_at"),
        sa.Column("on_missed", sa.String(length=16), nullable=False),
        sa.Column("grace_seconds", sa.Integer(), nullable=False),
        _when("closed_at"),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attest_campaigns")),
    )
    with op.batch_alter_table("attest_campaigns", schema=None) as batch_op:
        batch_op.create_index("ix_attest_campaigns_guild_closed", ["guild_id", "closed_at"], unique=False)

    op.create_table(
        "attest_schedules",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        _when("next_at", nullable=False),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_attest_schedules")),
    )

    op.create_table(
        "attest_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("access", sa.JSON(), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_group", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.String(length=16), nullable=True),
        sa.Column("answered_by", sa.BigInteger(), nullable=True),
        _when("answered_at"),
        sa.Column("transfer_from", sa.BigInteger(), nullable=True),
        sa.Column("transfer_to", sa.BigInteger(), nullable=True),
        _when("notified_at"),
        sa.Column("notify_attempts", sa.Integer(), nullable=False),
        _when("reminded_at"),
        _when("escalated_at"),
        sa.Column("escalation", sa.Text(), nullable=True),
        sa.Column("removed", sa.JSON(none_as_null=True), nullable=True),
        _when("removed_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _when("restore_until"),
        sa.Column("restored_by", sa.BigInteger(), nullable=True),
        _when("restored_at"),
        sa.Column("card_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("card_message_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["attest_campaigns.id"],
            name=op.f("fk_attest_items_campaign_id_attest_campaigns"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attest_items")),
    )
    with op.batch_alter_table("attest_items", schema=None) as batch_op:
        batch_op.create_index("ix_attest_items_campaign", ["campaign_id", "status"], unique=False)
        batch_op.create_index("ix_attest_items_status_next", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attest_items", schema=None) as batch_op:
        batch_op.drop_index("ix_attest_items_status_next")
        batch_op.drop_index("ix_attest_items_campaign")
    op.drop_table("attest_items")
    op.drop_table("attest_schedules")
    with op.batch_alter_table("attest_campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_attest_campaigns_guild_closed")
    op.drop_table("attest_campaigns")
