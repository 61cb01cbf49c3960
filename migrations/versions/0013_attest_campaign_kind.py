"""attest campaign kind: a full campaign, or a one-item review of a dormant webhook

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attest_campaigns") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="campaign"))


def downgrade() -> None:
    with op.batch_alter_table("attest_campaigns") as batch:
        batch.drop_column("kind")
