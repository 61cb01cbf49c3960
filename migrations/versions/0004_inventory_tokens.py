"""inventory of non-human identities and access tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("role_ids", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("permissions", sa.BigInteger(), nullable=False),
        sa.Column("channel_permissions", sa.JSON(), nullable=False),
        sa.Column("channel_count", sa.Integer(), nullable=False),
        sa.Column("baseline_permissions", sa.BigInteger(), nullable=True),
        sa.Column("baseline_scopes", sa.JSON(), nullable=True),
        sa.Column("baseline_set_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_source", sa.String(length=16), nullable=True),
        sa.Column("owner_set_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner_set_by", sa.BigInteger(), nullable=True),
        sa.Column("creator_id", sa.BigInteger(), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("guild_id", "kind", "external_id", name="uq_identities_guild_kind_external"),
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index("ix_identities_guild_owner", ["guild_id", "owner_id"], unique=False)

    op.create_table(
        "access_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("lookup_id", sa.String(length=32), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("scope_id", sa.String(length=100), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("use_count", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("lookup_id", name=op.f("uq_access_tokens_lookup_id")),
    )
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_access_tokens_grant", ["grant_id"], unique=False)
        batch_op.create_index("ix_access_tokens_status_last_used", ["status", "last_used_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_access_tokens_status_last_used")
        batch_op.drop_index("ix_access_tokens_grant")
    op.drop_table("access_tokens")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index("ix_identities_guild_owner")
    op.drop_table("identities")
