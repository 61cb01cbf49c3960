"""grants record what existed before them; the database enforces one live grant and one pending request

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LIVE_GRANT = "status IN ('approved', 'applying', 'active')"
PENDING_NEW = "status = 'pending' AND kind != 'extension'"
PENDING_EXTENSION = "status = 'pending' AND kind = 'extension'"


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("prior_recorded", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("prior_held", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("prior_allow", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("prior_deny", sa.BigInteger(), nullable=True))
    # Grants applied before this revision: their prior state is unknown, and removal acts as it did.
    op.execute(
        "UPDATE grants SET prior_recorded = "
        + ("1" if op.get_bind().dialect.name == "sqlite" else "true")
        + " WHERE applied_at IS NOT NULL"
    )
    with op.batch_alter_table("grants") as batch:
        batch.alter_column("prior_recorded", server_default=None)
    op.create_index(
        "uq_grants_live_scope_subject",
        "grants",
        ["guild_id", "scope_id", "subject_id"],
        unique=True,
        sqlite_where=sa.text(LIVE_GRANT),
        postgresql_where=sa.text(LIVE_GRANT),
    )
    op.create_index(
        "uq_requests_pending_scope_subject",
        "requests",
        ["guild_id", "scope_id", "subject_id"],
        unique=True,
        sqlite_where=sa.text(PENDING_NEW),
        postgresql_where=sa.text(PENDING_NEW),
    )
    op.create_index(
        "uq_requests_pending_extension",
        "requests",
        ["extends_grant_id"],
        unique=True,
        sqlite_where=sa.text(PENDING_EXTENSION),
        postgresql_where=sa.text(PENDING_EXTENSION),
    )


def downgrade() -> None:
    op.drop_index("uq_requests_pending_extension", table_name="requests")
    op.drop_index("uq_requests_pending_scope_subject", table_name="requests")
    op.drop_index("uq_grants_live_scope_subject", table_name="grants")
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("prior_deny")
        batch.drop_column("prior_allow")
        batch.drop_column("prior_held")
        batch.drop_column("prior_recorded")
