"""What the audit room needs from the rest of Warden, as narrow Protocols.

The composition root implements them: ``GuildFacts`` over discord.py's cache,
``GrantLedger`` over the grants table, ``DecisionRecorder`` over
``DecisionService.record`` and the narrative outbox, ``Reverter`` over
``DiscordOps``. Tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.audit.actions import RevertAction
from bot.audit.decision import AuditDecision, BurstSummary

#: One page of raw audit-log entries after an entry id (None: the newest page).
FetchPage = Callable[[int, int | None], Awaitable[list[dict[str, Any]]]]


class GuildFacts(Protocol):
    """Current guild state (a cache read, no Discord calls). ``None`` means "not known"."""

    def role_id(self, guild_id: int, ref: str | int) -> int | None: ...
    def role_permissions(self, guild_id: int, role_id: int) -> int | None: ...
    def member_role_ids(self, guild_id: int, member_id: int) -> frozenset[int] | None: ...
    def member_permissions(self, guild_id: int, member_id: int) -> int | None: ...
    def is_bot(self, guild_id: int, user_id: int) -> bool | None: ...
    def managed_role_id(self, guild_id: int, bot_id: int) -> int | None: ...
    def channel_is_private(self, guild_id: int, channel_id: int) -> bool | None: ...
    def name_of(self, guild_id: int, target_id: int) -> str | None: ...
    def owner_id(self, guild_id: int) -> int | None: ...


class GuildSnapshot(Protocol):
    """Who holds a role right now (start-up state comparison); None if the member list is unknown."""

    def members_with_role(self, guild_id: int, role_id: int) -> frozenset[int] | None: ...


#: (member, "role" | "channel", role or channel id): an access a grant may sanction.
SanctionKey = tuple[int, Literal["role", "channel"], int]


class GrantLedger(Protocol):
    """Is there an active (or approved, being applied) grant giving this access? Its id, or None."""

    async def sanctioning_grant(
        self, guild_id: int, member_id: int, kind: Literal["role", "channel"], target_id: int
    ) -> int | None: ...

    async def sanctioning_grants(
        self, guild_id: int, keys: Collection[SanctionKey]
    ) -> dict[SanctionKey, int]:
        """The same question for many (member, kind, target) at once: one read for a batch."""
        ...


class DecisionRecorder(Protocol):
    """Records one decision (ledger entry, and a narrative unless ``decision.narrate`` is false)
    in the caller's transaction; returns the ledger entry id."""

    async def record(self, session: AsyncSession, decision: AuditDecision) -> int: ...

    async def record_summary(self, session: AsyncSession, summary: BurstSummary) -> None: ...


class Reverter(Protocol):
    """Performs one Discord mutation with the audit-log reason given; raises when Discord refuses."""

    async def perform(self, action: RevertAction, reason: str) -> None: ...


#: Records one decision in the caller's transaction; returns its ledger entry id (``DecisionRecorder.record``).
RecordDecision = Callable[[AsyncSession, AuditDecision], Awaitable[int]]


class ApprovalQueue(Protocol):
    """Puts an ``approve`` decision before approvers: a JIT role given by hand becomes a pending
    request on the usual card; any other change with something to re-apply becomes a held change
    with its own Approve / Deny card (bot/audit/held.py)."""

    async def request_approval(
        self,
        session: AsyncSession,
        decision: AuditDecision,
        reapply: tuple[RevertAction, ...],
        record: RecordDecision,
    ) -> int:
        """Open what approvers decide on and record ``decision`` through ``record`` — with what was
        opened in its proof, so its narrative says what approvers can do — in the caller's
        transaction. Returns the decision's ledger entry id."""
        ...

    async def notify(self, committed: bool) -> None:
        """After the transaction that called ``request_approval``: tell approvers (cards), or
        forget what was queued if it rolled back."""
