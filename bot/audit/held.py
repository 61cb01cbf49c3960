"""Held changes: what an ``approve`` rule reverted, restorable by an admin in one click.

The listener records an ``approve`` decision through :class:`HeldChanges` (the ``ApprovalQueue``):
a JIT-managed role given by hand is adopted as a pending request (bot/audit/adopt.py); any other
change with something to re-apply — a dangerous bot quarantined, a role's permissions set back —
becomes a :class:`~bot.db.models.HeldChange` row, in the same transaction as the decision, and
after commit its Approve / Deny card is posted to the approvals channel.

Who decides: the guild's ``admins`` (``[guild.X]`` in the policy; the server owner always counts),
never the account that made the change. One Approve restores; one Deny keeps it reverted; nobody
deciding within the guild's ``pending_ttl`` expires it. Every click claims the row with a
conditional UPDATE, so two admins clicking at once restore it once. Approving re-applies through
the same ``Reverter`` as the revert (audit-log reason "Warden restore …", which the listener knows
as Warden's own), and each outcome is a decision in the ledger with its narrative.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.audit.actions import RevertAction, action_from_json, action_to_json
from bot.audit.adopt import RequestAdopter
from bot.audit.classify import policy_admin
from bot.audit.decision import AuditDecision
from bot.audit.listener import describe_failure
from bot.audit.ports import GuildFacts, RecordDecision, Reverter
from bot.db.models import HeldChange, HeldStatus
from bot.db.session import fresh
from bot.decisions import outcomes
from bot.durations import format_duration
from bot.services.base import CARD_GRACE, Core, Service, claim, transaction
from bot.services.errors import AlreadyDecided, NotAllowed, NotFound

log = logging.getLogger(__name__)

#: How long a held change waits for a decision when the guild has no policy any more.
DEFAULT_TTL = dt.timedelta(hours=4)

#: An approved held change not restored this long after Warden started is finished by the sweep
#: (the process died between the claim and Discord); re-applying is idempotent.
STALE_RESTORE = dt.timedelta(minutes=2)

#: Proof keys that name the change's target, and the kind stored in ``HeldChange.target``.
_TARGET_KEYS = (("bot_id", "bot"), ("member_id", "member"), ("target_role_id", "role"))


class HeldCards(Protocol):
    """The held change's approval card (bot/discord_io/notifier.py), after commit; never raises."""

    async def held_change_created(self, held: HeldChange) -> None: ...

    async def held_change_updated(self, held: HeldChange) -> None: ...


def restore_reason(held: HeldChange) -> str:
    """The X-Audit-Log-Reason of a restore: "Warden restore …" is Warden's own change, not drift."""
    return f"Warden restore of held change #{held.id} (rule {held.rule}), approved by {held.decided_by}"


class HeldChanges(Service):
    """The ``ApprovalQueue`` and the held changes' rules: hold, approve, deny, expire."""

    def __init__(
        self,
        core: Core,
        *,
        facts: GuildFacts,
        reverter: Reverter,
        cards: HeldCards,
        adopter: RequestAdopter | None = None,
        card_grace: dt.timedelta = CARD_GRACE,
    ) -> None:
        super().__init__(core)
        self._card_grace = card_grace
        self._facts = facts
        self._reverter = reverter
        self._cards = cards
        self._adopter = adopter
        self._to_post: list[HeldChange] = []

    # ---- the ApprovalQueue ---------------------------------------------------------------------

    async def request_approval(
        self,
        session: AsyncSession,
        decision: AuditDecision,
        reapply: tuple[RevertAction, ...],
        record: RecordDecision,
    ) -> int:
        if self._adopter is not None:
            adopted = await self._adopter.adopt(session, decision, record)
            if adopted is not None:
                return adopted
        if not reapply:
            log.info(
                "approve decision by rule %s reverted; nothing approvers could re-apply",
                decision.rule,
                extra={"guild_id": decision.guild_id},
            )
            return await record(session, decision)
        held = self._held(decision, reapply)
        session.add(held)
        await session.flush()  # its id, for the decision's proof and the card's buttons
        proof = dict(decision.proof) | {
            "held_change_id": held.id,
            "restore_expires_at": held.expires_at.isoformat(),
        }
        held.ledger_entry_id = await record(session, dataclasses.replace(decision, proof=proof))
        self._to_post.append(held)
        return held.ledger_entry_id

    def _held(self, decision: AuditDecision, reapply: tuple[RevertAction, ...]) -> HeldChange:
        now = self._clock.now()
        gp = self._guilds.get(decision.guild_id)
        proof = decision.proof
        target = next((f"{kind}:{proof[key]}" for key, kind in _TARGET_KEYS if key in proof), None)
        reverted = proof.get("revert")
        return HeldChange(
            guild_id=decision.guild_id,
            rule=decision.rule,
            event=str(proof.get("event", "unknown"))[:64],
            reason=decision.reason,
            audit_entry_id=decision.audit_entry_id,
            actor_id=decision.actor_id,
            target=target,
            reverted=list(reverted) if isinstance(reverted, list) else [],
            reapply=[action_to_json(a) for a in reapply],
            status=HeldStatus.PENDING,
            created_at=now,
            expires_at=now + (gp.pending_ttl if gp is not None else DEFAULT_TTL),
        )

    async def notify(self, committed: bool) -> None:
        """After the transaction: post the cards of the requests and held changes opened (if it committed)."""
        if self._adopter is not None:
            await self._adopter.notify(committed)
        posts, self._to_post = self._to_post, []
        for held in posts if committed else ():
            await self._cards.held_change_created(held)

    # ---- clicks ---------------------------------------------------------------------------------

    async def _check(self, session: AsyncSession, held_id: int, guild_id: int, member_id: int) -> HeldChange:
        """The held change a click names, if it is still open and the clicker may decide it."""
        held = await session.get(HeldChange, held_id)
        if held is None or held.guild_id != guild_id:
            raise NotFound(f"There is no held change #{held_id} in this server; nothing was changed.")
        if held.status != HeldStatus.PENDING or self._clock.now() >= held.expires_at:
            raise AlreadyDecided(_already(held, self._clock.now()))
        gp = self._guilds.get(guild_id)
        if policy_admin(self._facts, guild_id, gp, member_id) is not True:
            raise NotAllowed(
                "Only the server's admins (`admins` in Warden's policy for this server, and the owner) can "
                f"decide held change #{held.id}; nothing was changed. Ask one of them."
            )
        return held

    async def _claim(
        self, session: AsyncSession, held: HeldChange, status: HeldStatus, member_id: int
    ) -> HeldChange:
        """Decide the row with a conditional UPDATE: of two clicks at once, exactly one wins."""
        now = self._clock.now()
        undecided = (
            HeldChange.id == held.id,
            HeldChange.status == HeldStatus.PENDING,
            HeldChange.expires_at > now,
        )
        won = await claim(
            session,
            HeldChange,
            *undecided,
            status=status,
            decided_by=member_id,
            decided_at=now,
            restore_started_at=now if status == HeldStatus.APPROVED else None,
        )
        row = await fresh(session, HeldChange, held.id)
        assert row is not None
        if not won:
            raise AlreadyDecided(_already(row, now))
        return row

    async def approve(self, held_id: int, guild_id: int, member_id: int) -> HeldChange:
        """One admin's Approve: re-apply what was reverted, record it, update the card."""
        async with transaction(self._sessions) as session:
            held = await self._check(session, held_id, guild_id, member_id)
            if held.actor_id == member_id:
                raise NotAllowed(
                    f"You made this change, so you cannot approve restoring it; another admin must. "
                    f"Nothing was changed (held change #{held.id})."
                )
            held = await self._claim(session, held, HeldStatus.APPROVED, member_id)
        return await self._restore(held)

    async def _restore(self, held: HeldChange) -> HeldChange:
        assert held.decided_by is not None
        reason = restore_reason(held)
        done: list[str] = []
        failed: list[str] = []
        for data in held.reapply:
            action = action_from_json(data)
            try:
                await self._reverter.perform(action, reason)
            except Exception as exc:  # a failed control: recorded and shown, never raised to the clicker
                log.warning(
                    "restore refused: %s",
                    exc,
                    extra={"guild_id": held.guild_id, "held_change_id": held.id},
                )
                failed.append(f"{action.describe()}: {describe_failure(exc)}")
            else:
                done.append(action.describe())
        async with transaction(self._sessions) as session:
            row = await session.get_one(HeldChange, held.id, with_for_update=True, populate_existing=True)
            if row.restored_at is not None:
                return row  # recorded by another attempt (a slow click and the sweep): once only
            row.restored_at = self._clock.now()
            row.failures = failed or None
            if failed:
                why = (
                    f"An admin approved restoring the change rule {row.rule} reverted, but Discord refused "
                    "part of it: the control failed. Fix Warden's permissions and re-apply the rest by hand."
                )
            else:
                why = f"An admin approved: Warden restored the change rule {row.rule} had reverted."
            await self._decisions.record(
                session,
                outcomes.change_restored(row, by=row.decided_by or 0, done=done, failed=failed, reason=why),
            )
        await self._cards.held_change_updated(row)
        return row

    async def deny(self, held_id: int, guild_id: int, member_id: int) -> HeldChange:
        """One admin's Deny: it stays reverted; recorded, and the card says so."""
        async with transaction(self._sessions) as session:
            held = await self._check(session, held_id, guild_id, member_id)
            held = await self._claim(session, held, HeldStatus.DENIED, member_id)
            await self._decisions.record(
                session,
                outcomes.restore_denied(
                    held,
                    by=member_id,
                    reason=f"An admin denied restoring the change rule {held.rule} reverted; it stays reverted.",
                ),
            )
        await self._cards.held_change_updated(held)
        return held

    # ---- time -----------------------------------------------------------------------------------

    async def run_due(self) -> int:
        """The sweep's step: expire undecided held changes, finish restores a crash cut short, post
        cards that never reached Discord."""
        done = len(await self.expire_due()) + len(await self.finish_stale())
        return done + await self.post_lost_cards()

    async def post_lost_cards(self, limit: int = 50) -> int:
        """Post the card of every pending held change whose card never reached Discord (the process
        died between the commit and the post, or Discord refused it), once: claimed by setting the
        card's channel to a marker; released if the post fails, so the next sweep tries again."""
        pending = HeldChange.status == HeldStatus.PENDING
        return await self._post_lost_cards(
            HeldChange,
            pending,
            HeldChange.expires_at,
            self._cards.held_change_created,
            grace=self._card_grace,
            limit=limit,
        )

    async def finish_stale(self, limit: int = 50) -> list[HeldChange]:
        """Approved held changes whose restore never finished (the process died after the claim):
        claimed again with a conditional UPDATE, re-applied (idempotent) and recorded once."""
        now = self._clock.now()
        stale = await self._all(
            select(HeldChange.id)
            .where(
                HeldChange.status == HeldStatus.APPROVED,
                HeldChange.restored_at.is_(None),
                HeldChange.restore_started_at <= now - STALE_RESTORE,
            )
            .order_by(HeldChange.id)
            .limit(limit)
        )
        finished: list[HeldChange] = []
        for held_id in stale:
            async with transaction(self._sessions) as session:
                unfinished = (
                    HeldChange.id == held_id,
                    HeldChange.restored_at.is_(None),
                    HeldChange.restore_started_at <= now - STALE_RESTORE,
                )
                if not await claim(session, HeldChange, *unfinished, restore_started_at=now):
                    continue  # finished meanwhile, or another process took it
                held = await session.get_one(HeldChange, held_id, populate_existing=True)
            finished.append(await self._restore(held))
        return finished

    async def expire_due(self, limit: int = 100) -> list[HeldChange]:
        """Held changes nobody decided within the pending TTL expire (each once): they stay reverted."""
        now = self._clock.now()
        due = await self._all(
            select(HeldChange.id)
            .where(HeldChange.status == HeldStatus.PENDING, HeldChange.expires_at <= now)
            .order_by(HeldChange.expires_at)
            .limit(limit)
        )
        expired: list[HeldChange] = []
        for held_id in due:
            async with transaction(self._sessions) as session:
                pending = (HeldChange.id == held_id, HeldChange.status == HeldStatus.PENDING)
                if not await claim(session, HeldChange, *pending, status=HeldStatus.EXPIRED, decided_at=now):
                    continue  # decided, or another process expired it
                held = await session.get_one(HeldChange, held_id, populate_existing=True)
                await self._decisions.record(
                    session,
                    outcomes.restore_expired(
                        held,
                        reason=f"No admin decided within the pending time, so the change rule {held.rule} "
                        "reverted stays reverted.",
                    ),
                )
            expired.append(held)
            await self._cards.held_change_updated(held)
        return expired


def _already(held: HeldChange, now: dt.datetime) -> str:
    """Why a click on a held change no longer counts (decided, or past its pending time)."""
    by = f" by <@{held.decided_by}>" if held.decided_by else ""
    if held.status == HeldStatus.PENDING or held.status == HeldStatus.EXPIRED:
        ago = f" {format_duration(now - held.expires_at)} ago" if now > held.expires_at else ""
        return (
            f"Held change #{held.id} expired{ago}: nobody decided in time, so it stays reverted. "
            "Nothing was changed."
        )
    said = {
        HeldStatus.APPROVED: f"was already approved{by}",
        HeldStatus.DENIED: f"was already denied{by}",
    }.get(HeldStatus(held.status), f"is {held.status}")
    return f"Held change #{held.id} {said}; nothing was changed."
