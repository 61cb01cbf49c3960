"""guild pins: a policy table named by guild name is pinned to one guild id at first sight

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 18:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guild_pins",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_name", sa.String(length=100), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_guild_pins")),
    )


def downgrade() -> None:
    op.drop_table("guild_pins")
