"""ledger keys: public keys with the entries each may sign (key rotation)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing ledgers have no rows here; `warden run` registers the key it runs with.
    op.create_table(
        "ledger_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("after_entry_id", sa.Integer(), nullable=True),
        sa.Column("last_entry_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_ledger_keys")),
    )


def downgrade() -> None:
    op.drop_table("ledger_keys")
