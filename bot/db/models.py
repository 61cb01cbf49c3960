"""The schema. Every table here comes from an Alembic revision in migrations/versions.

Rows are the source of truth for the whole flow: buttons, the scheduler and a
restarted process all re-read state from here, never from memory.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Stable constraint names so migrations agree on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: The largest row id (requests, grants ... use 32-bit integer keys on PostgreSQL). A larger number
#: typed in a command or forged into a button names no row; it must never reach a query.
MAX_ROW_ID = 2**31 - 1


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use the injected clock")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


E = TypeVar("E", bound=enum.StrEnum)


class StrEnumType(TypeDecorator[E]):
    """A StrEnum stored as its plain value in a VARCHAR: no database enum type, no CHECK.

    The column stays exactly what the migrations create (``String(16)``), so adding a value needs
    no migration; Python sees the enum member.
    """

    impl = String(16)
    cache_ok = True

    def __init__(self, enum_type: type[E], length: int = 16) -> None:
        super().__init__(length)
        self.enum_type = enum_type

    def process_bind_param(self, value: E | str | None, dialect: Any) -> str | None:
        return None if value is None else self.enum_type(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> E | None:
        return None if value is None else self.enum_type(value)


#: The columns of "one per scope and subject" (a pending request, a live grant).
PER_SCOPE_SUBJECT = ("guild_id", "scope_id", "subject_id")


def unique_where(name: str, *columns: str, where: str) -> Index:
    """A partial unique index, one condition for both SQLite and PostgreSQL."""
    return Index(name, *columns, unique=True, sqlite_where=text(where), postgresql_where=text(where))


def one_per_scope_subject(name: str, where: str) -> Index:
    """At most one of the rows ``where`` selects for each guild, scope and subject, enforced by the
    database: two concurrent clicks cannot both pass a check-then-insert."""
    return unique_where(name, *PER_SCOPE_SUBJECT, where=where)


# The rows each of those indexes keeps to one per scope and subject.
PENDING_REQUEST = "status = 'pending' AND kind != 'extension'"
LIVE_GRANT = "status IN ('approved', 'applying', 'active')"


class PostsCard:
    """A row Warden posts a card for (the approval card of a request or a held change, the Restore
    card of an attestation item): where that card is, once posted."""

    card_channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime, int: Integer}


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"  # nobody decided within the pending TTL
    CANCELLED = "cancelled"


class RequestKind(enum.StrEnum):
    NEW = "new"
    EXTENSION = "extension"
    BREAKGLASS = "breakglass"


class GrantStatus(enum.StrEnum):
    APPROVED = "approved"  # decided, not yet applied in Discord
    # Claimed for applying: its clock (applied_at, expires_at) and what the subject had before are
    # recorded before Discord is touched, so a crash can neither restart the clock nor lose the undo.
    APPLYING = "applying"
    ACTIVE = "active"  # exists in Discord
    REMOVING = "removing"  # ended in Warden; removal from Discord due (retried until done)
    EXPIRED = "expired"
    REVOKED = "revoked"
    FAILED = "failed"  # could not be applied; nothing exists in Discord


ENDED_GRANT_STATUSES = (GrantStatus.EXPIRED, GrantStatus.REVOKED, GrantStatus.FAILED)


class AccessRequest(PostsCard, Base):
    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    scope_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[RequestKind] = mapped_column(StrEnumType(RequestKind), default=RequestKind.NEW)
    requester_id: Mapped[int] = mapped_column(BigInteger)
    subject_id: Mapped[int] = mapped_column(BigInteger)
    subject_is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[RequestStatus] = mapped_column(StrEnumType(RequestStatus), default=RequestStatus.PENDING)
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    # The grant an extension request would lengthen.
    extends_grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime]
    pending_until: Mapped[dt.datetime]
    approvers_reminded_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    decided_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Which policy setting decided an automatic outcome (auto-approve rule, TTL ...).
    decision_rule: Mapped[str | None] = mapped_column(String(200), nullable=True)

    votes: Mapped[list[Vote]] = relationship(
        back_populates="request", order_by="Vote.id", lazy="selectin", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_requests_status_pending_until", "status", "pending_until"),
        Index("ix_requests_guild_requester", "guild_id", "requester_id", "created_at"),
        # One pending request per scope and subject, and one pending extension per grant.
        one_per_scope_subject("uq_requests_pending_scope_subject", PENDING_REQUEST),
        unique_where(
            "uq_requests_pending_extension",
            "extends_grant_id",
            where="status = 'pending' AND kind = 'extension'",
        ),
    )


class Vote(Base):
    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    approver_id: Mapped[int] = mapped_column(BigInteger)
    approve: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime]

    request: Mapped[AccessRequest] = relationship(back_populates="votes")

    # One vote per approver per request, enforced by the database (double clicks, races).
    __table_args__ = (UniqueConstraint("request_id", "approver_id", name="uq_votes_request_approver"),)


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    scope_id: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), nullable=True)
    subject_id: Mapped[int] = mapped_column(BigInteger)
    subject_is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(16))  # role | channel
    target_id: Mapped[int] = mapped_column(BigInteger)  # role id or channel id
    allow_bits: Mapped[int] = mapped_column(BigInteger, default=0)
    deny_bits: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[GrantStatus] = mapped_column(StrEnumType(GrantStatus), default=GrantStatus.APPROVED)
    breakglass: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]
    # The clock starts when the grant is applied, not when it was requested.
    applied_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    ended_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # While REMOVING: the status the grant takes once Discord confirms removal.
    final_status: Mapped[GrantStatus | None] = mapped_column(StrEnumType(GrantStatus), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    # A worker's claim on this row; another process may take over once it lapses.
    claimed_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    stuck_reported_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    review_acknowledged_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    review_acknowledged_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    review_channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    review_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # What the subject had before Warden touched Discord, recorded once when the grant is claimed
    # for applying; removal restores exactly that (Warden never takes away what it did not give).
    prior_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    prior_held: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # role scopes
    prior_allow: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # channel scopes: the
    prior_deny: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # member's own overwrite

    __table_args__ = (
        Index("ix_grants_status_expires_at", "status", "expires_at"),
        Index("ix_grants_guild_subject", "guild_id", "subject_id", "status"),
        one_per_scope_subject("uq_grants_live_scope_subject", LIVE_GRANT),  # one live grant
    )


class LedgerEntry(Base):
    """One decision. Append-only: each hash covers the previous one and is signed."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    guild_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime]
    outcome: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    proof: Mapped[dict[str, Any]] = mapped_column(JSON)
    controls: Mapped[list[str]] = mapped_column(JSON)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32))


class LedgerHead(Base):
    """Single row naming the chain's tip; locked while appending so two processes never fork it."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_hash: Mapped[str] = mapped_column(String(64))


class NarrativeOutbox(Base):
    """Narratives still to post to the governance channel (written in the decision's transaction)."""

    __tablename__ = "narrative_outbox"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    guild_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime]
    posted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_narrative_outbox_posted_at", "posted_at", "next_attempt_at"),)


# ---- inventory, owners and tokens


class IdentityKind(enum.StrEnum):
    BOT = "bot"
    WEBHOOK = "webhook"
    INTEGRATION = "integration"
    TOKEN = "token"  # an access token Warden issued


class OwnerSource(enum.StrEnum):
    EXPLICIT = "explicit"  # set by an admin (/warden owner set)
    INFERRED = "inferred"  # from the audit log (webhook creator, member who added the bot)
    CONFIRMED = "confirmed"  # the inferred owner confirmed it


class Identity(Base):
    """One non-human identity in a guild, as last seen, with its owner and permission baseline."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    # Discord's id for bots, webhooks and integrations; the token's row id for tokens.
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # a webhook's channel
    role_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)  # an integration's OAuth2 scopes
    permissions: Mapped[int] = mapped_column(BigInteger, default=0)  # guild-wide, effective
    # channel id (as a string: JSON keys) → effective permissions there
    channel_permissions: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    channel_count: Mapped[int] = mapped_column(Integer, default=0)
    baseline_permissions: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    baseline_scopes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    baseline_set_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    owner_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    owner_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    owner_set_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    owner_set_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Who created it according to Discord (webhook creator, member who added the bot).
    creator_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_activity_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    first_seen_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    # Set when a snapshot no longer contains it (deleted, kicked, token revoked or expired).
    gone_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        UniqueConstraint("guild_id", "kind", "external_id", name="uq_identities_guild_kind_external"),
        Index("ix_identities_guild_owner", "guild_id", "owner_id"),
    )


class TokenStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"  # its time (or its grant's) ran out
    REVOKED = "revoked"  # ended early: by a person, with its grant, or for dormancy


class AccessToken(Base):
    """A token Warden issued for a system outside Discord. Only a hash of its secret is stored."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    # The public half of the token: how verification finds the row without scanning hashes.
    lookup_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scope_id: Mapped[str] = mapped_column(String(100))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=TokenStatus.ACTIVE)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_access_tokens_grant", "grant_id"),
        Index("ix_access_tokens_status_last_used", "status", "last_used_at"),
    )


class MemberActivity(Base):
    """When Warden last saw a member active in a guild: a message (the gateway's MESSAGE_CREATE,
    no content needed) or an interaction with Warden. What ``end_idle_grants_after`` measures."""

    __tablename__ = "member_activity"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_seen_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(String(16))  # message | interaction


# ---- ledger keys and checkpoints


class LedgerKey(Base):
    """A public key the ledger is or was signed with, and which entries it may sign.

    Public keys only: the private key stays in its file outside the database. The
    ledger's own ``key-rotated`` entries are the signed record of each handover;
    this table is the index an export and the append check read. Written only
    while the ``ledger_head`` row is locked (lock order: head, then keys).
    """

    __tablename__ = "ledger_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)  # PEM (SubjectPublicKeyInfo)
    activated_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    # Signs the entries with after_entry_id < id <= last_entry_id (NULL: from the first / still active).
    after_entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


# ---- audit listener


class AuditCursor(Base):
    """Per guild: every audit-log entry up to ``last_entry_id`` has been processed.

    ``synced_at`` is when that was last confirmed against Discord (a catch-up, or a live
    entry while in sync); Discord keeps entries 45 days, so a longer gap may have lost some.
    """

    __tablename__ = "audit_cursors"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    last_entry_id: Mapped[int] = mapped_column(BigInteger)
    synced_at: Mapped[dt.datetime]


class StandingBaseline(Base):
    """When Warden first compared a guild's JIT-managed roles with its grants (see StandingAccess)."""

    __tablename__ = "standing_baselines"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recorded_at: Mapped[dt.datetime]


class StandingAccess(Base):
    """A member who held a JIT-managed role, without a grant, when Warden first governed the guild:
    standing access Warden did not give and never takes away. Removed once the member loses the role
    (giving it back by hand later is drift like any other)."""

    __tablename__ = "standing_access"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    role_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recorded_at: Mapped[dt.datetime]


class AuditProcessed(Base):
    """One row per audit-log entry decided, so a live event and a catch-up never both act."""

    __tablename__ = "audit_processed"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[dt.datetime]
    ledger_entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Revert actions decided but not yet confirmed by Discord (retried until done or reported).
    pending_actions: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    # The rule that decided the revert, and how often a refused revert was retried.
    rule: Mapped[str | None] = mapped_column(String(100), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("guild_id", "entry_id", name="uq_audit_processed_guild_entry"),
        Index("ix_audit_processed_processed_at", "processed_at"),
    )


# ---- attestation campaigns


class AttestStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for the owner's answer
    TRANSFERRING = "transferring"  # the owner named a new owner, who has not answered yet
    ATTESTED = "attested"  # still needed (by the owner, or the new owner on accepting)
    REMOVING = "removing"  # revoked or missed-and-remediated: removal from Discord in progress (retried)
    REMOVED = "removed"  # removed; restorable until ``restore_until``
    MISSED = "missed"  # nobody answered; the policy only alerts (or Warden cannot remove it reversibly)
    # Revoked, but Warden cannot remove it reversibly (an integration without a bot): escalated to a human.
    ESCALATED = "escalated"
    RESTORED = "restored"  # an approver put back what was removed
    SUPERSEDED = "superseded"  # a newer campaign (or the identity's disappearance) replaced it


class AttestCampaign(Base):
    """One attestation campaign in a guild: every owner is asked to vouch for what they own."""

    __tablename__ = "attest_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    # "campaign": every item, on a schedule or on demand; "dormancy": one webhook nobody has used
    # for ``webhook_dormant_after`` (never superseded by, nor superseding, another review).
    kind: Mapped[str] = mapped_column(String(16), default="campaign", server_default="campaign")
    started_at: Mapped[dt.datetime]
    started_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: the schedule
    deadline_at: Mapped[dt.datetime]
    reminder_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    on_missed: Mapped[str] = mapped_column(String(16))  # alert | remediate
    grace_seconds: Mapped[int] = mapped_column(Integer)
    closed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    close_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_attest_campaigns_guild_closed", "guild_id", "closed_at"),)


class AttestSchedule(Base):
    """Per guild: when the next scheduled campaign starts (set one period after Warden first saw it)."""

    __tablename__ = "attest_schedules"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    next_at: Mapped[dt.datetime]


class AttestItem(PostsCard, Base):
    """One thing an owner must vouch for in a campaign, with the answer and what it changed."""

    __tablename__ = "attest_items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("attest_campaigns.id"))
    guild_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # bot | webhook | token | standing
    identity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The bot's or member's user id, the webhook's id, the token's row id.
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    role_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # standing: the role held
    channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # webhook: its channel
    # What it held when the campaign started (role ids, permission names): the evidence.
    access: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Standing access: the approvers of the role's scope own it ("role:<id>" / "user:<id>").
    owner_group: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=AttestStatus.PENDING)
    answer: Mapped[str | None] = mapped_column(String(16), nullable=True)  # keep | revoke | missed
    answered_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    transfer_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    transfer_to: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    notified_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    notify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    escalation: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What a removal took away, so a restore puts back exactly that.
    removed: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    removed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    restore_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    restored_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    restored_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_attest_items_campaign", "campaign_id", "status"),
        Index("ix_attest_items_status_next", "status", "next_attempt_at"),
    )


# ---- guild pins


class GuildPin(Base):
    """A ``[guild.<name>]`` table matched to one guild id at first sight (docs/operations.md).

    After this row exists the table is matched by ``guild_id`` only: a rename keeps the policy,
    and another guild with the same name never gets it. ``confirmed_by`` is the server admin who
    confirmed the pin with ``/warden pin``.
    """

    __tablename__ = "guild_pins"

    # The table's name as written in config.toml, casefolded (tables match names without case).
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    guild_name: Mapped[str] = mapped_column(String(100))  # the guild's name when it was pinned
    pinned_at: Mapped[dt.datetime]
    confirmed_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


# ---- held changes (audit rules with outcome "approve")


class HeldStatus(enum.StrEnum):
    PENDING = "pending"  # reverted; approvers may restore it until ``expires_at``
    APPROVED = "approved"  # an admin approved: Warden re-applies it (``restored_at`` once done)
    DENIED = "denied"  # an admin denied: it stays reverted
    EXPIRED = "expired"  # nobody decided within the guild's pending TTL: it stays reverted


class HeldChange(PostsCard, Base):
    """A change an ``approve`` rule reverted that approvers can restore with one click.

    ``reapply`` holds the Discord mutations that put it back (bot/audit/actions.py, as JSON); the
    approval card's buttons carry only this row's id, so they work after a restart.
    """

    __tablename__ = "held_changes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    # The ledger entry of the decision that reverted it (the approval-required decision).
    ledger_entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rule: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    audit_entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The member, bot or role the change was about (for the card: a mention).
    target: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reverted: Mapped[list[str]] = mapped_column(JSON, default=list)  # what the revert did, in words
    reapply: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[HeldStatus] = mapped_column(StrEnumType(HeldStatus), default=HeldStatus.PENDING)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    decided_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Approved: when Warden last started the re-apply (a sweep finishes one a crash cut short), when it
    # was done in Discord and recorded, and what Discord refused.
    restore_started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    restored_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    failures: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)

    __table_args__ = (Index("ix_held_changes_status_expires", "status", "expires_at"),)
