"""Attestation campaigns: owners vouch for what they own, and what nobody vouches for is dealt with.

A campaign lists every non-human identity in the inventory (bots, webhooks, integrations without a
bot user, Warden's tokens) and, if the policy says so, every standing (non-JIT) holder of a role a
scope grants. Each owner is asked in a DM: Still needed, Revoke, or Transfer (the new owner
accepts in their own DM). Owners whose DMs are closed, and items nobody owns, are escalated to the
governance channel at once. At the deadline, what is still unanswered is escalated and, if
``on_missed = "remediate"``, removed. An integration is never removed by Warden (Discord cannot
restore a deleted one: it needs the user to authorise it again), so a Revoke or a missed deadline
only escalates it for a human; an integration with a bot is reviewed through its bot. Every
removal records what it took, so an approver restores it with one button within the grace
period; a removal Discord refuses is a failed control, reported and retried.

Every answer and consequence is a ledger decision (``bot.decisions.outcomes``). Discord is reached
only through :class:`AttestPort`, which ``bot/attest/adapter.py`` implements.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    AccessToken,
    AttestCampaign,
    AttestItem,
    AttestSchedule,
    AttestStatus,
    Grant,
    GrantStatus,
    Identity,
    IdentityKind,
    OwnerSource,
    TokenStatus,
)
from bot.decisions import outcomes
from bot.durations import format_duration
from bot.escape import user_text
from bot.inventory.permissions import permission_names
from bot.inventory.service import InventoryService
from bot.policy import AttestationPolicy, Scope
from bot.services.base import Core, Service, claim, transaction
from bot.services.errors import AlreadyDecided, BadInput, CannotGrant, NotAllowed, NotFound

log = logging.getLogger(__name__)

KINDS = ("bot", "webhook", "integration", "token", "standing")
CAMPAIGN, DORMANCY = "campaign", "dormancy"  # AttestCampaign.kind
OPEN = (AttestStatus.PENDING, AttestStatus.TRANSFERRING)
NOTIFY_ATTEMPTS = 5  # a DM that keeps failing (not closed: failing) is escalated after this many sweeps
CLAIM = dt.timedelta(minutes=2)  # a worker's hold on a removal in progress
RETRY_FIRST = dt.timedelta(minutes=5)
RETRY_MAX = dt.timedelta(hours=6)


class Delivery(enum.StrEnum):
    SENT = "sent"
    CLOSED = "closed"  # the member does not accept DMs (Discord 50007)
    FAILED = "failed"  # anything else; tried again on the next sweep


class RemediationRefused(Exception):
    """Discord refused a removal or restore (after retries). ``str()`` is secret-free, for narratives."""


@dataclass(frozen=True)
class StandingHolder:
    member_id: int
    name: str


class AttestPort(Protocol):
    """What the campaign needs from Discord (``bot/attest/adapter.py``)."""

    def bot_user_id(self) -> int | None: ...

    def guild_ids(self) -> list[int]: ...

    async def refresh_inventory(self, guild_id: int) -> bool:
        """Refresh the guild's inventory from Discord; False if Discord refused (the last one stands)."""
        ...

    def role_of(self, guild_id: int, scope: Scope) -> int | None: ...

    def holders(self, guild_id: int, role_id: int) -> list[StandingHolder]: ...

    def approvers(self, guild_id: int, scope: Scope) -> list[int]: ...

    def may_approve(self, guild_id: int, member_id: int, scope: Scope) -> bool: ...

    def is_admin(self, guild_id: int, member_id: int) -> bool: ...

    def is_person(self, guild_id: int, user_id: int) -> bool: ...

    async def ask(self, user_id: int, item: AttestItem, campaign: AttestCampaign) -> Delivery: ...

    async def remind(self, user_id: int, item: AttestItem, campaign: AttestCampaign) -> Delivery: ...

    async def offer(self, user_id: int, item: AttestItem, campaign: AttestCampaign) -> Delivery: ...

    async def tell_transfer_answered(
        self, user_id: int, item: AttestItem, member_id: int, accepted: bool
    ) -> None: ...

    async def tell_removed(self, user_id: int, item: AttestItem, why: str) -> None: ...

    async def tell_restored(self, user_id: int, item: AttestItem, member_id: int) -> None: ...

    async def remove(self, item: AttestItem) -> dict[str, object]: ...

    async def restore(self, item: AttestItem, removed: dict[str, object]) -> dict[str, object]: ...

    async def post_restore_card(self, item: AttestItem) -> tuple[int, int] | None: ...

    async def refresh_restore_card(self, item: AttestItem) -> None: ...


@dataclass(frozen=True)
class CampaignProgress:
    campaign: AttestCampaign
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def answered(self) -> int:
        return self.total - sum(self.counts.get(s, 0) for s in OPEN)


def _title(item: AttestItem) -> str:
    """The item as refusals name it (its name is user text: escaped)."""
    return f"{item.kind} {user_text(item.name)}"


def _reviewed_through_bot(row: Identity) -> bool:
    """An integration that installed a bot user is asked about as that bot.

    Its OAuth2 scopes include ``bot``; and the inventory gives an integration its bot's permissions
    (one without a bot acts with none), which also catches a bot whose integration lists no scopes.
    """
    return row.kind == IdentityKind.INTEGRATION and ("bot" in row.scopes or bool(row.permissions))


def needs_human(item: AttestItem) -> bool:
    """Warden cannot remove it reversibly: Discord cannot restore a deleted integration."""
    return item.kind == IdentityKind.INTEGRATION


HUMAN_CONTROL = (
    "Discord cannot restore a deleted integration (it must be authorised again), so Warden does not "
    "delete it: an admin must review it and remove it by hand (Server Settings → Integrations) if it "
    "is no longer needed"
)


def _retry_after(attempts: int) -> dt.timedelta:
    wait: dt.timedelta = RETRY_FIRST * (2 ** max(attempts - 1, 0))
    return min(wait, RETRY_MAX)


def stale(item: AttestItem, campaign: AttestCampaign) -> str | None:
    """Why a DM about this item is no longer current, or None if it is."""
    if item.status == AttestStatus.SUPERSEDED:
        return "a newer campaign replaced this one"
    if campaign.closed_at is not None and item.status in OPEN:
        return "the campaign has closed"
    if item.status == AttestStatus.TRANSFERRING:
        return f"it is being handed to <@{item.transfer_to}>, who has not answered yet"
    if item.answer == "missed":
        return "its deadline passed, so it was handled as missed"
    if item.status not in OPEN:
        by = f" by <@{item.answered_by}>" if item.answered_by else ""
        return f"it was already answered{by} ({item.answer or item.status})"
    return None


class AttestService(Service):
    def __init__(self, core: Core, *, port: AttestPort, inventory: InventoryService) -> None:
        super().__init__(core)
        self._port = port
        self._inventory = inventory

    def _policy(self) -> AttestationPolicy | None:
        return self._guilds.policy.attestation

    def _require_policy(self) -> AttestationPolicy:
        policy = self._policy()
        if policy is None:
            raise BadInput(
                "Attestation campaigns are not configured: add an [attestation] table to the policy "
                "(see docs/attestations.md) and restart Warden."
            )
        return policy

    # ------------------------------------------------------------------ starting

    async def start(self, guild_id: int, *, actor_id: int | None) -> tuple[AttestCampaign, int]:
        """Open a campaign (on demand, or ``actor_id=None`` for the schedule); DM every owner.

        Returns the campaign and how many items it holds. An open campaign is superseded.
        """
        policy = self._require_policy()
        if self._guilds.get(guild_id) is None:
            raise NotFound("This server has no Warden policy, so it has no attestation campaigns.")
        await self._port.refresh_inventory(guild_id)
        now = self._clock.now()
        standing = self._standing(guild_id) if policy.include_standing_roles else []
        async with transaction(self._sessions) as s:
            await self._supersede(s, guild_id, now)
            campaign = AttestCampaign(
                guild_id=guild_id,
                kind=CAMPAIGN,
                started_at=now,
                started_by=actor_id,
                deadline_at=now + policy.deadline,
                reminder_at=(now + policy.deadline - policy.reminder) if policy.reminder else None,
                on_missed=policy.on_missed,
                grace_seconds=int(policy.grace.total_seconds()),
            )
            s.add(campaign)
            if policy.every:
                # The next scheduled campaign comes a full period after this one, however it started.
                schedule = await s.get(AttestSchedule, guild_id, with_for_update=True)
                if schedule is None:
                    s.add(AttestSchedule(guild_id=guild_id, next_at=now + policy.every))
                else:
                    schedule.next_at = now + policy.every
            await s.flush()
            items = await self._identity_items(s, campaign)
            items.extend(await self._standing_items(s, campaign, standing))
            s.add_all(items)
            await s.flush()
            unowned = [i for i in items if i.owner_id is None and not i.owner_group]
            who = "the schedule" if actor_id is None else "an admin"
            await self._decisions.record(
                s,
                outcomes.attestation_started(
                    campaign,
                    items=len(items),
                    unowned=len(unowned),
                    reason=(
                        f"Campaign #{campaign.id} started by {who}: {len(items)} item(s) to attest by "
                        f"the deadline; a missed one is "
                        + ("removed (restorable)." if policy.on_missed == "remediate" else "escalated.")
                        + (
                            " An integration without a bot is only ever escalated: Discord cannot "
                            "restore a deleted one."
                            if any(needs_human(i) for i in items)
                            else ""
                        )
                    ),
                ),
            )
            await self._escalate_unowned(s, unowned, now)
        log.info(
            "attestation campaign %s started with %d items",
            campaign.id,
            len(items),
            extra={"guild_id": guild_id},
        )
        await self._notify_due()
        return campaign, len(items)

    async def _escalate_unowned(
        self, s: AsyncSession, unowned: Sequence[AttestItem], now: dt.datetime
    ) -> None:
        for item in unowned:
            self._escalate(item, now, "nobody owns it")
            await self._decisions.record(
                s,
                outcomes.attestation_escalated(
                    item,
                    why="unowned",
                    reason=f"{item.kind} {item.name} has no owner, so nobody can attest it; "
                    "set one with `/warden owner set`, or it is handled as missed at the deadline.",
                ),
            )

    async def _supersede(self, s: AsyncSession, guild_id: int, now: dt.datetime) -> None:
        # Only a full campaign replaces a full campaign; a dormant-webhook review runs to its own deadline.
        rows = (
            await s.scalars(
                select(AttestCampaign)
                .where(
                    AttestCampaign.guild_id == guild_id,
                    AttestCampaign.kind == CAMPAIGN,
                    AttestCampaign.closed_at.is_(None),
                )
                .with_for_update()
            )
        ).all()
        for old in rows:
            items = (await s.scalars(select(AttestItem).where(AttestItem.campaign_id == old.id))).all()
            for item in items:
                if item.status in OPEN:
                    item.status = AttestStatus.SUPERSEDED
            await self._close(s, old, now, "a newer campaign replaced it", items)

    async def _close(
        self,
        s: AsyncSession,
        campaign: AttestCampaign,
        now: dt.datetime,
        why: str,
        items: Sequence[AttestItem],
    ) -> None:
        campaign.closed_at = now
        campaign.close_reason = why
        tally = dict(Counter(str(i.status) for i in items))
        summary = ", ".join(f"{n} {k}" for k, n in sorted(tally.items())) or "no items"
        await self._decisions.record(
            s,
            outcomes.attestation_closed(
                campaign, tally=tally, reason=f"Campaign #{campaign.id} closed ({why}): {summary}."
            ),
        )

    async def _identity_items(self, s: AsyncSession, campaign: AttestCampaign) -> list[AttestItem]:
        me = self._port.bot_user_id()
        rows = (
            await s.scalars(
                select(Identity)
                .where(
                    Identity.guild_id == campaign.guild_id,
                    Identity.gone_at.is_(None),
                    Identity.kind.in_(
                        (IdentityKind.BOT, IdentityKind.WEBHOOK, IdentityKind.INTEGRATION, IdentityKind.TOKEN)
                    ),
                )
                .order_by(Identity.id)
            )
        ).all()
        # A webhook already in a dormant-webhook review is asked about there, not twice.
        reviewed = set(
            (
                await s.scalars(
                    select(AttestItem.identity_id)
                    .join(AttestCampaign, AttestCampaign.id == AttestItem.campaign_id)
                    .where(
                        AttestCampaign.guild_id == campaign.guild_id,
                        AttestCampaign.kind == DORMANCY,
                        AttestCampaign.closed_at.is_(None),
                    )
                )
            ).all()
        )
        out = []
        for row in rows:
            if row.kind == IdentityKind.BOT and me is not None and row.external_id == str(me):
                continue  # Warden does not ask anyone to vouch for itself
            if row.id in reviewed or _reviewed_through_bot(row):
                continue
            out.append(self._identity_item(campaign, row))
        return out

    @staticmethod
    def _identity_item(campaign: AttestCampaign, row: Identity) -> AttestItem:
        access: dict[str, object] = {"permissions": permission_names(row.permissions)}
        if row.role_ids:
            access["role_ids"] = [str(r) for r in row.role_ids]
        if row.scopes:
            access["scopes"] = list(row.scopes)
        return AttestItem(
            campaign_id=campaign.id,
            guild_id=campaign.guild_id,
            kind=row.kind,
            identity_id=row.id,
            external_id=row.external_id,
            name=row.name[:200],
            channel_id=row.channel_id,
            access=access,
            owner_id=row.owner_id,
            status=AttestStatus.PENDING,
            notify_attempts=0,
            attempts=0,
        )

    # ------------------------------------------------------------------ dormant webhooks

    async def review_dormant_webhooks(self) -> int:
        """Each webhook with no activity for ``webhook_dormant_after``: a one-item review of its own.

        Activity is the inventory's ``last_activity_at`` (a message through the webhook, seen on the
        gateway), or when Warden first saw the webhook if it never posted. A webhook in an open review
        or campaign, or in any started within the period, is not asked about again. The review's owner
        answers in their DM like any campaign item; a missed deadline deletes the webhook (restorable
        for ``grace``) whatever ``on_missed`` says, and an unowned webhook is escalated at once.
        Returns how many reviews started.
        """
        policy = self._policy()
        if policy is None or not policy.webhook_dormant_after:
            return 0
        period = policy.webhook_dormant_after
        started = 0
        for guild_id in self._port.guild_ids():
            if self._guilds.get(guild_id) is None:
                continue
            if not await self._dormant_webhooks(guild_id, period):
                continue
            # Confirm against Discord first: a webhook deleted there is marked gone, not asked about.
            await self._port.refresh_inventory(guild_id)
            for identity_id in await self._dormant_webhooks(guild_id, period):
                started += await self._review_dormant(identity_id, policy, period)
        return started

    async def _dormant_webhooks(self, guild_id: int, period: dt.timedelta) -> list[int]:
        async with transaction(self._sessions) as s:
            return list((await s.scalars(self._dormant_query(guild_id, period))).all())

    def _dormant_query(self, guild_id: int, period: dt.timedelta) -> Select[int]:
        """The guild's live webhooks idle for ``period`` and not reviewed within it, by identity id."""
        cutoff = self._clock.now() - period
        recent = (
            select(AttestItem.id)
            .join(AttestCampaign, AttestCampaign.id == AttestItem.campaign_id)
            .where(
                AttestItem.identity_id == Identity.id,
                AttestCampaign.closed_at.is_(None) | (AttestCampaign.started_at > cutoff),
            )
            .exists()
        )
        return (
            select(Identity.id)
            .where(
                Identity.guild_id == guild_id,
                Identity.kind == IdentityKind.WEBHOOK,
                Identity.gone_at.is_(None),
                func.coalesce(Identity.last_activity_at, Identity.first_seen_at) <= cutoff,
                ~recent,
            )
            .order_by(Identity.id)
        )

    async def _review_dormant(self, identity_id: int, policy: AttestationPolicy, period: dt.timedelta) -> int:
        now = self._clock.now()
        async with transaction(self._sessions) as s:
            # The row lock makes two processes' sweeps start one review, not two.
            row = await s.get(Identity, identity_id, with_for_update=True)
            if row is None or row.gone_at is not None:
                return 0
            still = await s.scalars(
                self._dormant_query(row.guild_id, period).where(Identity.id == identity_id)
            )
            if still.first() is None:
                return 0
            campaign = AttestCampaign(
                guild_id=row.guild_id,
                kind=DORMANCY,
                started_at=now,
                started_by=None,
                deadline_at=now + policy.deadline,
                reminder_at=(now + policy.deadline - policy.reminder) if policy.reminder else None,
                on_missed="remediate",
                grace_seconds=int(policy.grace.total_seconds()),
            )
            s.add(campaign)
            await s.flush()
            item = self._identity_item(campaign, row)
            s.add(item)
            await s.flush()
            last = (
                f"last activity {row.last_activity_at.isoformat()}"
                if row.last_activity_at
                else f"no activity since Warden first saw it, {row.first_seen_at.isoformat()}"
            )
            await self._decisions.record(
                s,
                outcomes.attestation_started(
                    campaign,
                    items=1,
                    unowned=0 if row.owner_id is not None else 1,
                    reason=f"Webhook {row.name} has been dormant for at least {format_duration(period)} "
                    f"({last}), so review #{campaign.id} asks its owner whether it is still needed; "
                    "if nobody attests by the deadline, Warden deletes it (restorable for "
                    f"{format_duration(policy.grace)}).",
                ),
            )
            if row.owner_id is None:
                await self._escalate_unowned(s, [item], now)
        log.info(
            "dormant webhook %s: review %s started",
            row.external_id,
            campaign.id,
            extra={"guild_id": row.guild_id},
        )
        return 1

    def _standing(self, guild_id: int) -> list[tuple[Scope, int, list[StandingHolder]]]:
        out = []
        for scope in self._guilds.scopes(guild_id):
            if scope.kind != "role":
                continue
            role_id = self._port.role_of(guild_id, scope)
            if role_id is not None:
                out.append((scope, role_id, self._port.holders(guild_id, role_id)))
        return out

    async def _standing_items(
        self,
        s: AsyncSession,
        campaign: AttestCampaign,
        standing: list[tuple[Scope, int, list[StandingHolder]]],
    ) -> list[AttestItem]:
        out: list[AttestItem] = []
        seen: set[tuple[int, int]] = set()
        for scope, role_id, holders in standing:
            # Holders through a live Warden grant are just-in-time, not standing: their grant ends by itself.
            jit = set(
                (
                    await s.scalars(
                        select(Grant.subject_id).where(
                            Grant.guild_id == campaign.guild_id,
                            Grant.kind == "role",
                            Grant.target_id == role_id,
                            Grant.status.in_(
                                (
                                    GrantStatus.APPROVED,
                                    GrantStatus.APPLYING,
                                    GrantStatus.ACTIVE,
                                    GrantStatus.REMOVING,
                                )
                            ),
                        )
                    )
                ).all()
            )
            for holder in holders:
                if holder.member_id in jit or (holder.member_id, role_id) in seen:
                    continue
                seen.add((holder.member_id, role_id))
                out.append(
                    AttestItem(
                        campaign_id=campaign.id,
                        guild_id=campaign.guild_id,
                        kind="standing",
                        external_id=str(holder.member_id),
                        name=f"{holder.name} holds {scope.role}"[:200],
                        role_id=role_id,
                        access={"role_ids": [str(role_id)], "scope": scope.id},
                        owner_group=[str(a) for a in scope.approvers],
                        status=AttestStatus.PENDING,
                        notify_attempts=0,
                        attempts=0,
                    )
                )
        return out

    # ------------------------------------------------------------------ telling owners

    def _recipients(self, item: AttestItem) -> list[int]:
        """Who is asked: the owner; for standing access, every approver of the role but the holder."""
        if item.owner_id is not None:
            return [item.owner_id]
        scope = self._standing_scope(item)
        if scope is None:
            return []
        holder = int(item.external_id)
        return [m for m in self._port.approvers(item.guild_id, scope) if m != holder]

    def _standing_scope(self, item: AttestItem) -> Scope | None:
        scope_id = item.access.get("scope") if item.kind == "standing" else None
        return self._guilds.scope(item.guild_id, str(scope_id)) if scope_id else None

    @staticmethod
    def _escalate(item: AttestItem, now: dt.datetime, why: str) -> None:
        item.escalated_at = now
        item.escalation = why

    async def _notify_due(self) -> int:
        """DM every owner not yet asked (each item claimed first, so two processes never both ask)."""
        async with transaction(self._sessions) as s:
            due = (
                (
                    await s.execute(
                        select(AttestItem.id)
                        .join(AttestCampaign, AttestCampaign.id == AttestItem.campaign_id)
                        .where(
                            AttestCampaign.closed_at.is_(None),
                            AttestItem.status == AttestStatus.PENDING,
                            AttestItem.notified_at.is_(None),
                            AttestItem.escalated_at.is_(None),
                        )
                        .order_by(AttestItem.id)
                    )
                )
                .scalars()
                .all()
            )
        sent = 0
        for item_id in due:
            sent += await self._ask(item_id)
        return sent

    async def _ask(self, item_id: int) -> int:
        now = self._clock.now()
        async with transaction(self._sessions) as s:
            unasked = (AttestItem.id == item_id, AttestItem.notified_at.is_(None))
            if not await claim(
                s, AttestItem, *unasked, notified_at=now, notify_attempts=AttestItem.notify_attempts + 1
            ):
                return 0
            item = await s.get_one(AttestItem, item_id)
            campaign = await s.get_one(AttestCampaign, item.campaign_id)
        recipients = self._recipients(item)
        results = [await self._port.ask(r, item, campaign) for r in recipients]
        if Delivery.SENT in results:
            return 1
        closed = bool(results) and all(r is Delivery.CLOSED for r in results)
        async with transaction(self._sessions) as s:
            row = await s.get_one(AttestItem, item_id, with_for_update=True)
            if not recipients:
                why, text = (
                    "unowned",
                    "none of the role's approvers can be asked (the holder is the only one)",
                )
            elif closed:
                why, text = "dms_closed", "the owner does not accept DMs (Discord 50007)"
            elif row.notify_attempts >= NOTIFY_ATTEMPTS:
                why, text = "dm_failed", f"the DM failed {row.notify_attempts} times"
            else:
                row.notified_at = None  # tried again on the next sweep
                return 0
            self._escalate(row, now, text)
            await self._decisions.record(
                s,
                outcomes.attestation_escalated(
                    row,
                    why=why,
                    reason=f"Nobody could be asked about {row.kind} {row.name}: {text}. An admin must "
                    "follow up before the deadline, or it is handled as missed.",
                ),
            )
        return 0

    # ------------------------------------------------------------------ answers

    async def _current(self, s: AsyncSession, item_id: int) -> tuple[AttestItem, AttestCampaign]:
        item = await s.get(AttestItem, item_id, with_for_update=True)
        if item is None:
            raise NotFound(f"There is no attestation item #{item_id}; nothing was changed.")
        campaign = await s.get_one(AttestCampaign, item.campaign_id)
        why = stale(item, campaign)
        if why is not None:
            raise AlreadyDecided(
                f"This attestation request (item #{item.id}, campaign #{campaign.id}) is no longer current: "
                f"{why}. Nothing was changed."
            )
        return item, campaign

    def _check_reviewer(self, item: AttestItem, member_id: int) -> None:
        if item.kind == "standing":
            if int(item.external_id) == member_id:
                raise NotAllowed(
                    "You hold this access yourself, and a reviewer never attests their own access; "
                    "another approver of the role must answer. Nothing was changed."
                )
            scope = self._standing_scope(item)
            if scope is None or not self._port.may_approve(item.guild_id, member_id, scope):
                raise NotAllowed(
                    "Only an approver of this role can review standing access to it; nothing was changed."
                )
            return
        if item.owner_id != member_id:
            raise NotAllowed(
                f"Only the current owner of {_title(item)} can answer for it"
                + (f" (<@{item.owner_id}>)" if item.owner_id else "")
                + "; nothing was changed."
            )

    @staticmethod
    def _who(item: AttestItem) -> str:
        return "An approver of the role (not the holder)" if item.kind == "standing" else "The owner"

    async def answer(self, item_id: int, member_id: int, *, keep: bool) -> AttestItem:
        """Still needed (``keep``) or Revoke, from the owner's DM."""
        now = self._clock.now()
        async with transaction(self._sessions) as s:
            item, _ = await self._current(s, item_id)
            self._check_reviewer(item, member_id)
            item.answered_by, item.answered_at = member_id, now
            who, what = self._who(item), f"{item.kind} {item.name}"
            if keep:
                item.status, item.answer = AttestStatus.ATTESTED, "keep"
                outcome, reason = outcomes.attested, f"{who} attested that {what} is still needed."
            elif needs_human(item):
                item.status, item.answer = AttestStatus.ESCALATED, "revoke"
                self._escalate(item, now, "revoked; needs a human to remove it")
                outcome, reason = (
                    outcomes.attestation_revoked,
                    f"{who} said {what} is no longer needed. {HUMAN_CONTROL}.",
                )
            else:
                item.status, item.answer = AttestStatus.REMOVING, "revoke"
                outcome, reason = (
                    outcomes.attestation_revoked,
                    f"{who} said {what} is no longer needed; Warden removes it.",
                )
            decision = outcome(item, by=member_id, at=now, reason=reason)
            await self._decisions.record(s, decision)
            if item.status == AttestStatus.ESCALATED:
                await self._decisions.record(
                    s,
                    outcomes.attestation_escalated(
                        item,
                        why="needs_human",
                        reason=f"Its owner revoked {item.kind} {item.name}. {HUMAN_CONTROL}.",
                    ),
                )
        if keep and item.identity_id is not None:
            # What it holds now is vouched for: it becomes the baseline that drift is measured from.
            await self._inventory.accept_baseline(item.guild_id, item.identity_id)
        if not keep:
            await self.remediate(item.id)
        return await self.get(item.id)

    async def transfer(self, item_id: int, member_id: int, new_owner_id: int) -> AttestItem:
        """The owner names a new owner; nothing changes hands until that member accepts."""
        async with transaction(self._sessions) as s:
            item, _ = await self._current(s, item_id)
            self._check_reviewer(item, member_id)
            if item.kind == "standing":
                raise BadInput(
                    "Standing access belongs to the role's approvers and cannot be handed on; "
                    "answer Still needed or Revoke."
                )
            if new_owner_id == member_id:
                raise BadInput("You already own it; pick another member to hand it to.")
            if not self._port.is_person(item.guild_id, new_owner_id):
                raise BadInput(
                    "The new owner must be a person in this server (not a bot); pick another member."
                )
            item.status = AttestStatus.TRANSFERRING
            item.transfer_from, item.transfer_to = member_id, new_owner_id
            await self._decisions.record(
                s,
                outcomes.ownership_transfer(
                    item,
                    phase="asked",
                    by=member_id,
                    previous_owner=member_id,
                    new_owner=new_owner_id,
                    reason=f"The owner asked a new owner to take over {item.kind} {item.name}.",
                ),
            )
            campaign = await s.get_one(AttestCampaign, item.campaign_id)
        if await self._port.offer(new_owner_id, item, campaign) is not Delivery.SENT:
            async with transaction(self._sessions) as s:
                row = await s.get_one(AttestItem, item_id, with_for_update=True)
                if row.status == AttestStatus.TRANSFERRING and row.transfer_to == new_owner_id:
                    row.status, row.transfer_to = AttestStatus.PENDING, None
                    await self._decisions.record(
                        s,
                        outcomes.attestation_escalated(
                            row,
                            why="dms_closed",
                            reason=f"The new owner named for {row.kind} {row.name} could not be asked "
                            "(their DMs are closed); it stays with its owner.",
                        ),
                    )
            raise CannotGrant(
                f"<@{new_owner_id}> cannot be reached by DM, so they cannot accept; {user_text(item.name)} stays yours. "
                "Pick someone else, or answer Still needed or Revoke."
            )
        return item

    async def answer_transfer(self, item_id: int, member_id: int, *, accept: bool) -> AttestItem:
        """The named member accepts (and so vouches it is still needed) or declines."""
        now = self._clock.now()
        async with transaction(self._sessions) as s:
            item = await s.get(AttestItem, item_id, with_for_update=True)
            if item is None:
                raise NotFound(f"There is no attestation item #{item_id}; nothing was changed.")
            campaign = await s.get_one(AttestCampaign, item.campaign_id)
            if item.status != AttestStatus.TRANSFERRING or campaign.closed_at is not None:
                why = stale(item, campaign) or "the hand-over is over"
                raise AlreadyDecided(f"This hand-over is no longer current: {why}. Nothing was changed.")
            if item.transfer_to != member_id:
                raise NotAllowed("Only the member it was handed to can accept it; nothing was changed.")
            previous = item.transfer_from
            if accept:
                item.owner_id = member_id
                item.status, item.answer = AttestStatus.ATTESTED, "keep"
                item.answered_by, item.answered_at = member_id, now
                if item.identity_id is not None:
                    identity = await s.get(Identity, item.identity_id, with_for_update=True)
                    if identity is not None:
                        identity.owner_id = member_id
                        identity.owner_source = OwnerSource.EXPLICIT
                        identity.owner_set_at = now
                        identity.owner_set_by = previous
                reason = f"The new owner accepted {item.kind} {item.name} and vouches it is still needed."
            else:
                item.status, item.transfer_to = AttestStatus.PENDING, None
                reason = f"The member asked to take over {item.kind} {item.name} declined; it stays with its owner."
            await self._decisions.record(
                s,
                outcomes.ownership_transfer(
                    item,
                    phase="accepted" if accept else "declined",
                    by=member_id,
                    previous_owner=previous,
                    new_owner=member_id,
                    reason=reason,
                ),
            )
            if accept:
                await self._decisions.record(
                    s,
                    outcomes.attested(
                        item, by=member_id, at=now, reason=f"The new owner attested {item.kind} {item.name}."
                    ),
                )
        if previous is not None:
            await self._port.tell_transfer_answered(previous, item, member_id, accept)
            if not accept:
                await self._port.ask(previous, item, campaign)
        return item

    # ------------------------------------------------------------------ removal and restore

    async def remediate(self, item_id: int) -> AttestItem | None:
        """Remove what an item holds (revoked, or missed under ``remediate``); a refusal is retried later."""
        now = self._clock.now()
        async with transaction(self._sessions) as s:
            item = await s.get(AttestItem, item_id, with_for_update=True)
            if item is None or item.status != AttestStatus.REMOVING:
                return None
            if item.next_attempt_at is not None and item.next_attempt_at > now:
                return None
            item.next_attempt_at = now + CLAIM
        try:
            removed = await self._remove(item)
        except RemediationRefused as exc:
            async with transaction(self._sessions) as s:
                row = await s.get_one(AttestItem, item_id, with_for_update=True)
                row.attempts += 1
                row.last_error = str(exc)[:500]
                row.next_attempt_at = now + _retry_after(row.attempts)
                await self._decisions.record(
                    s,
                    outcomes.remediation_failed(
                        row,
                        error=row.last_error,
                        attempts=row.attempts,
                        retry_at=row.next_attempt_at,
                        reason=f"Warden could not remove {row.kind} {row.name}: {row.last_error}. The control "
                        f"failed; it is tried again {format_duration(_retry_after(row.attempts))} from now.",
                    ),
                )
            return row
        async with transaction(self._sessions) as s:
            row = await s.get_one(AttestItem, item_id, with_for_update=True)
            campaign = await s.get_one(AttestCampaign, row.campaign_id)
            grace = dt.timedelta(seconds=campaign.grace_seconds)
            row.status = AttestStatus.REMOVED
            row.removed, row.removed_at = removed, now
            row.restore_until = now + grace
            row.next_attempt_at, row.last_error = None, None
            why = "its owner revoked it" if row.answer == "revoke" else "nobody attested it by the deadline"
            await self._decisions.record(
                s,
                outcomes.access_remediated(
                    row,
                    removed=removed,
                    reason=f"Warden removed {row.kind} {row.name} because {why}. An approver can restore it "
                    f"with one click until the grace period ends ({format_duration(grace)}).",
                ),
            )
        posted = await self._port.post_restore_card(row)
        if posted is not None:
            async with transaction(self._sessions) as s:
                await s.execute(
                    update(AttestItem)
                    .where(AttestItem.id == item_id)
                    .values(card_channel_id=posted[0], card_message_id=posted[1])
                )
            row.card_channel_id, row.card_message_id = posted
        if row.owner_id is not None:
            await self._port.tell_removed(row.owner_id, row, why)
        return row

    async def _remove(self, item: AttestItem) -> dict[str, object]:
        if item.kind == "token":
            return await self._set_token(int(item.external_id), revoke=True)
        return await self._port.remove(item)

    async def _set_token(self, token_id: int, *, revoke: bool) -> dict[str, object]:
        now = self._clock.now()
        async with transaction(self._sessions) as s:
            if revoke:
                values = {"status": TokenStatus.REVOKED, "revoked_at": now, "revoke_reason": "attestation"}
                wanted = [AccessToken.status == TokenStatus.ACTIVE]
            else:
                values = {"status": TokenStatus.ACTIVE, "revoked_at": None, "revoke_reason": None}
                wanted = [
                    AccessToken.status == TokenStatus.REVOKED,
                    AccessToken.revoke_reason == "attestation",
                    AccessToken.expires_at > now,
                ]
            done = await claim(s, AccessToken, AccessToken.id == token_id, *wanted, **values)
        if not done and not revoke:
            raise RemediationRefused(f"token {token_id} has expired or was revoked for another reason")
        return {"token": token_id} if done else {}

    async def restore(self, item_id: int, member_id: int) -> AttestItem:
        """Put back exactly what a removal took, within the grace period; one click by an approver."""
        now = self._clock.now()
        async with transaction(self._sessions) as s:
            item = await s.get(AttestItem, item_id, with_for_update=True)
            if item is None:
                raise NotFound(f"There is no attestation item #{item_id}; nothing was changed.")
            if item.status == AttestStatus.RESTORED:
                raise AlreadyDecided(
                    f"<@{item.restored_by}> already restored {_title(item)}; nothing was changed."
                )
            if item.status != AttestStatus.REMOVED or item.restore_until is None:
                raise AlreadyDecided(
                    f"{_title(item)} was not removed by Warden, so there is nothing to restore."
                )
            if now >= item.restore_until:
                raise AlreadyDecided(
                    f"The grace period to restore {_title(item)} ended; request the access again instead. "
                    "Nothing was changed."
                )
            if item.kind == "standing" and int(item.external_id) == member_id:
                raise NotAllowed(
                    "You cannot restore your own access; another approver must. Nothing was changed."
                )
            scope = self._standing_scope(item)
            allowed = self._port.is_admin(item.guild_id, member_id) or (
                scope is not None and self._port.may_approve(item.guild_id, member_id, scope)
            )
            if not allowed:
                raise NotAllowed(
                    "Only a server admin (or, for standing access, an approver of the role) can restore "
                    "what Warden removed; nothing was changed."
                )
            item.status, item.restored_by, item.restored_at = AttestStatus.RESTORED, member_id, now
        removed = dict(item.removed or {})
        try:
            if item.kind == "token":
                restored = await self._set_token(int(item.external_id), revoke=False) if removed else {}
            else:
                restored = await self._port.restore(item, removed)
        except RemediationRefused as exc:
            async with transaction(self._sessions) as s:
                row = await s.get_one(AttestItem, item_id, with_for_update=True)
                row.status, row.restored_by, row.restored_at = AttestStatus.REMOVED, None, None
            raise CannotGrant(
                f"Discord refused to restore {_title(item)}: {exc}. Nothing was changed."
            ) from exc
        async with transaction(self._sessions) as s:
            row = await s.get_one(AttestItem, item_id, with_for_update=True)
            await self._decisions.record(
                s,
                outcomes.access_restored(
                    row,
                    by=member_id,
                    restored=restored,
                    reason=f"An approver restored {row.kind} {row.name}, which Warden had removed.",
                ),
            )
        await self._port.refresh_restore_card(row)
        if row.owner_id is not None and row.owner_id != member_id:
            await self._port.tell_restored(row.owner_id, row, member_id)
        return row

    # ------------------------------------------------------------------ time

    async def run_due(self) -> int:
        """The campaign sweep: schedule, DMs not yet sent, reminders, deadlines, removal retries."""
        done = 0
        if self._policy() is not None:
            done += await self._scheduled()
            done += await self.review_dormant_webhooks()
        done += await self._notify_due()
        done += await self._remind_due()
        done += await self._deadlines()
        for item_id in await self._removals_due():
            done += 1 if await self.remediate(item_id) is not None else 0
        return done

    async def _scheduled(self) -> int:
        policy = self._require_policy()
        if not policy.every:
            return 0
        now = self._clock.now()
        started = 0
        for guild_id in self._port.guild_ids():
            if self._guilds.get(guild_id) is None:
                continue
            try:
                async with transaction(self._sessions) as s:
                    row = await s.get(AttestSchedule, guild_id)
                    if row is None:
                        # The first campaign runs one period after Warden first governs the guild.
                        s.add(AttestSchedule(guild_id=guild_id, next_at=now + policy.every))
                        continue
            except IntegrityError:
                continue  # another process wrote it first
            async with transaction(self._sessions) as s:
                due_here = (AttestSchedule.guild_id == guild_id, AttestSchedule.next_at <= now)
                if not await claim(s, AttestSchedule, *due_here, next_at=now + policy.every):
                    continue
            await self.start(guild_id, actor_id=None)
            started += 1
        return started

    async def _open_campaigns(self, *where: ColumnElement[bool]) -> list[int]:
        """The ids of the campaigns still open that match ``where``."""
        return await self._all(select(AttestCampaign.id).where(AttestCampaign.closed_at.is_(None), *where))

    async def _remind_due(self) -> int:
        now = self._clock.now()
        due = await self._open_campaigns(
            AttestCampaign.reminded_at.is_(None), AttestCampaign.reminder_at <= now
        )
        reminded = 0
        for campaign_id in due:
            async with transaction(self._sessions) as s:
                unreminded = (AttestCampaign.id == campaign_id, AttestCampaign.reminded_at.is_(None))
                if not await claim(s, AttestCampaign, *unreminded, reminded_at=now):
                    continue
                campaign = await s.get_one(AttestCampaign, campaign_id)
                items = (
                    await s.scalars(
                        select(AttestItem).where(
                            AttestItem.campaign_id == campaign_id,
                            AttestItem.status == AttestStatus.PENDING,
                            AttestItem.escalated_at.is_(None),
                        )
                    )
                ).all()
                for item in items:
                    item.reminded_at = now
            for item in items:
                for user_id in self._recipients(item):
                    if await self._port.remind(user_id, item, campaign) is Delivery.SENT:
                        reminded += 1
        return reminded

    async def _deadlines(self) -> int:
        now = self._clock.now()
        due = await self._open_campaigns(AttestCampaign.deadline_at <= now)
        missed: list[int] = []
        for campaign_id in due:
            async with transaction(self._sessions) as s:
                campaign = await s.get_one(AttestCampaign, campaign_id, with_for_update=True)
                if campaign.closed_at is not None:
                    continue
                items = (
                    await s.scalars(select(AttestItem).where(AttestItem.campaign_id == campaign_id))
                ).all()
                remediate = campaign.on_missed == "remediate"
                for item in items:
                    if item.status not in OPEN:
                        continue
                    item.answer = "missed"
                    item.transfer_to = None
                    removes = remediate and not needs_human(item)
                    item.status = AttestStatus.REMOVING if removes else AttestStatus.MISSED
                    self._escalate(item, now, item.escalation or "missed the deadline")
                    if removes:
                        then = "Warden removes it (restorable)"
                    elif needs_human(item):
                        then = f"it stays in place: {HUMAN_CONTROL}"
                    else:
                        then = "it stays in place for an admin to decide"
                    await self._decisions.record(
                        s,
                        outcomes.attestation_missed(
                            item,
                            campaign,
                            reason=f"Nobody attested {item.kind} {item.name} by the deadline of campaign "
                            f"#{campaign.id}: escalated here, and {then}.",
                        ),
                    )
                    if removes:
                        missed.append(item.id)
                await self._close(s, campaign, now, "its deadline passed", items)
        for item_id in missed:
            await self.remediate(item_id)
        return len(due)

    async def _removals_due(self) -> list[int]:
        now = self._clock.now()
        return await self._all(
            select(AttestItem.id).where(
                AttestItem.status == AttestStatus.REMOVING,
                (AttestItem.next_attempt_at.is_(None)) | (AttestItem.next_attempt_at <= now),
            )
        )

    # ------------------------------------------------------------------ reading

    async def get(self, item_id: int) -> AttestItem:
        async with transaction(self._sessions) as s:
            item = await s.get(AttestItem, item_id)
        if item is None:
            raise NotFound(f"There is no attestation item #{item_id}.")
        return item

    async def item_and_campaign(self, item_id: int) -> tuple[AttestItem, AttestCampaign]:
        async with transaction(self._sessions) as s:
            item = await s.get(AttestItem, item_id)
            if item is None:
                raise NotFound(f"There is no attestation item #{item_id}.")
            return item, await s.get_one(AttestCampaign, item.campaign_id)

    async def check_current(self, item_id: int, member_id: int) -> AttestItem:
        """The checks an answer makes, without answering (the Transfer button runs them first)."""
        async with transaction(self._sessions) as s:
            item, _ = await self._current(s, item_id)
            self._check_reviewer(item, member_id)
            return item

    async def status(self, guild_id: int, *, limit: int = 5) -> list[CampaignProgress]:
        async with transaction(self._sessions) as s:
            campaigns = (
                await s.scalars(
                    select(AttestCampaign)
                    .where(AttestCampaign.guild_id == guild_id)
                    .order_by(AttestCampaign.id.desc())
                    .limit(limit)
                )
            ).all()
            out = []
            for c in campaigns:
                statuses = (
                    await s.scalars(select(AttestItem.status).where(AttestItem.campaign_id == c.id))
                ).all()
                out.append(CampaignProgress(c, dict(Counter(str(x) for x in statuses))))
        return out
