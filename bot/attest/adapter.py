"""The attestation campaign's Discord side (:class:`AttestPort`): DMs, removals, restores, cards.

Reads come from discord.py's cache; every change goes through ``DiscordOps.call`` (transient
failures are retried) and carries an audit-log reason. A refusal becomes ``RemediationRefused``
with a secret-free description, which the service records as a failed control and retries.
What only tells (the owner's DM after a removal or restore, the restore card's refresh) follows
the clicker's answer (``@after_answer``, bot/discord_io/follow_ups.py).
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord.http import Route

from bot.attest import texts
from bot.attest.service import Delivery, RemediationRefused, StandingHolder
from bot.db.models import AttestCampaign, AttestItem
from bot.decisions.narrative import NO_PINGS
from bot.discord_io.follow_ups import after_answer
from bot.discord_io.notifier import governance_resolver
from bot.discord_io.ops import DISCORD_ERRORS, DiscordOps, audit_reason, describe_error
from bot.grantability import approver_matches, may_approve, resolve_role
from bot.inventory.live import LiveInventory
from bot.policy import GuildDirectory, Scope

log = logging.getLogger(__name__)


class DiscordAttestPort:
    def __init__(
        self, client: discord.Client, guilds: GuildDirectory, ops: DiscordOps, live: LiveInventory
    ) -> None:
        self._client = client
        self._live = live
        self._guilds = guilds
        self._ops = ops
        self._governance = governance_resolver(client, guilds)

    # ---- reading the cache -------------------------------------------------------------------

    def bot_user_id(self) -> int | None:
        return self._client.user.id if self._client.user else None

    def guild_ids(self) -> list[int]:
        return [g.id for g in self._client.guilds]

    def _member(self, guild_id: int, user_id: int) -> discord.Member | None:
        guild = self._client.get_guild(guild_id)
        return guild.get_member(user_id) if guild else None

    async def refresh_inventory(self, guild_id: int) -> bool:
        guild = self._client.get_guild(guild_id)
        if guild is None:
            return False
        report, _why = await self._live.refresh(guild)  # a refusal is logged there
        return report is not None

    def role_of(self, guild_id: int, scope: Scope) -> int | None:
        guild = self._client.get_guild(guild_id)
        role = resolve_role(guild, scope.role) if guild is not None else None
        return role.id if role is not None else None

    def holders(self, guild_id: int, role_id: int) -> list[StandingHolder]:
        guild = self._client.get_guild(guild_id)
        role = guild.get_role(role_id) if guild else None
        if role is None:
            return []
        return [StandingHolder(m.id, m.display_name) for m in role.members if not m.bot]

    def approvers(self, guild_id: int, scope: Scope) -> list[int]:
        guild = self._client.get_guild(guild_id)
        if guild is None:
            return []
        return [m.id for m in guild.members if not m.bot and may_approve(scope, m)]

    def may_approve(self, guild_id: int, member_id: int, scope: Scope) -> bool:
        member = self._member(guild_id, member_id)
        return member is not None and may_approve(scope, member)

    def is_admin(self, guild_id: int, member_id: int) -> bool:
        member = self._member(guild_id, member_id)
        if member is None:
            return False
        perms = member.guild_permissions
        gp = self._guilds.get(guild_id)
        listed = gp is not None and any(approver_matches(a, member) for a in gp.admins)
        return perms.administrator or perms.manage_guild or listed

    def is_person(self, guild_id: int, user_id: int) -> bool:
        member = self._member(guild_id, user_id)
        return member is not None and not member.bot

    # ---- telling people ----------------------------------------------------------------------

    async def _send(self, user_id: int, **kw: Any) -> Delivery:
        try:
            channel = await self._client.create_dm(discord.Object(user_id))
            await channel.send(allowed_mentions=NO_PINGS, **kw)
        except discord.Forbidden as exc:
            if exc.code == 50007:
                return Delivery.CLOSED
            log.warning("attestation DM refused: %s", describe_error(exc), extra={"user_id": user_id})
            return Delivery.FAILED
        except DISCORD_ERRORS as exc:
            log.warning("attestation DM failed: %s", describe_error(exc), extra={"user_id": user_id})
            return Delivery.FAILED
        return Delivery.SENT

    async def ask(self, user_id: int, item: AttestItem, campaign: AttestCampaign) -> Delivery:
        content, embed, view = texts.ask_dm(item, campaign, self._guilds.name(item.guild_id))
        return await self._send(user_id, content=content, embed=embed, view=view)

    async def remind(self, user_id: int, item: AttestItem, campaign: AttestCampaign) -> Delivery:
        content, embed, view = texts.ask_dm(item, campaign, self._guilds.name(item.guild_id), reminder=True)
        return await self._send(user_id, content=content, embed=embed, view=view)

    async def offer(self, user_id: int, item: AttestItem, campaign: AttestCampaign) -> Delivery:
        content, view = texts.offer_dm(item, campaign, self._guilds.name(item.guild_id))
        return await self._send(user_id, content=content, view=view)

    async def tell_transfer_answered(
        self, user_id: int, item: AttestItem, member_id: int, accepted: bool
    ) -> None:
        await self._send(user_id, content=texts.transfer_answered_dm(item, member_id, accepted))

    @after_answer
    async def tell_removed(self, user_id: int, item: AttestItem, why: str) -> None:
        await self._send(user_id, content=texts.removed_dm(item, why))

    @after_answer
    async def tell_restored(self, user_id: int, item: AttestItem, member_id: int) -> None:
        await self._send(user_id, content=texts.restored_dm(item, member_id))

    # ---- removing and restoring --------------------------------------------------------------

    def _reason(self, item: AttestItem, what: str) -> str:
        why = "revoked by its owner" if item.answer == "revoke" else "not attested by the deadline"
        if what.endswith("restored"):
            why = "restored by an approver"
        return audit_reason(
            f"Warden attestation campaign #{item.campaign_id}, item #{item.id}: {what} ({why})"
        )

    async def remove(self, item: AttestItem) -> dict[str, object]:
        try:
            return await self._remove(item)
        except discord.NotFound:
            return {}  # already gone: nothing to take, nothing to restore
        except DISCORD_ERRORS as exc:
            raise RemediationRefused(describe_error(exc)) from exc

    async def _remove(self, item: AttestItem) -> dict[str, object]:
        http = self._client.http
        if item.kind == "webhook":
            hook = await self._ops.call(lambda: http.get_webhook(int(item.external_id)))
            route = Route("DELETE", "/webhooks/{webhook_id}", webhook_id=int(item.external_id))
            reason = self._reason(item, "webhook deleted")
            await self._ops.call(lambda: http.request(route, reason=reason))
            return {
                "webhook": item.external_id,
                "name": hook.get("name"),
                "channel_id": str(hook.get("channel_id")),
            }
        member_id = int(item.external_id)
        if item.kind == "standing":
            assert item.role_id is not None
            member = await self._ops.call(lambda: http.get_member(item.guild_id, member_id))
            if str(item.role_id) not in member.get("roles", []):
                return {}
            reason = self._reason(item, "standing role removed")
            role_id = item.role_id
            await self._ops.call(lambda: http.remove_role(item.guild_id, member_id, role_id, reason=reason))
            return {"role_ids": [str(item.role_id)]}
        # A bot: strip every role Warden can take (never its managed integration role).
        guild = self._client.get_guild(item.guild_id)
        data = await self._ops.call(lambda: http.get_member(item.guild_id, member_id))
        held = [int(r) for r in data.get("roles", [])]
        if guild is not None:
            managed = {r.id for r in guild.roles if r.managed}
        else:  # a guild on another process's shard: no cache here, so ask Discord
            roles = await self._ops.call(lambda: http.get_roles(item.guild_id))
            managed = {int(r["id"]) for r in roles if r.get("managed")}
        strip = [r for r in held if r not in managed]
        if not strip:
            return {}
        keep = [r for r in held if r in managed]
        reason = self._reason(item, "bot's roles removed")
        await self._ops.call(lambda: http.edit_member(item.guild_id, member_id, roles=keep, reason=reason))
        return {"role_ids": [str(r) for r in strip]}

    async def restore(self, item: AttestItem, removed: dict[str, object]) -> dict[str, object]:
        http = self._client.http
        try:
            if removed.get("webhook"):
                channel_id = int(str(removed["channel_id"]))
                name = str(removed.get("name") or item.name)[:80]
                reason = self._reason(item, "webhook restored")
                hook = await self._ops.call(lambda: http.create_webhook(channel_id, name=name, reason=reason))
                return {**removed, "new_webhook": str(hook["id"])}
            roles = removed.get("role_ids")
            if isinstance(roles, list):
                reason = self._reason(item, "roles restored")
                member_id = int(item.external_id)
                for role in roles:
                    await self._add_role(item.guild_id, member_id, int(role), reason)
            return removed
        except DISCORD_ERRORS as exc:
            raise RemediationRefused(describe_error(exc)) from exc

    async def _add_role(self, guild_id: int, member_id: int, role_id: int, reason: str) -> None:
        http = self._client.http
        await self._ops.call(lambda: http.add_role(guild_id, member_id, role_id, reason=reason))

    async def post_restore_card(self, item: AttestItem) -> tuple[int, int] | None:
        embed, view = texts.restore_card(item)
        try:
            channel = await self._governance(item.guild_id)
            if channel is None:
                return None
            msg = await channel.send(embed=embed, view=view, allowed_mentions=NO_PINGS)
        except DISCORD_ERRORS as exc:
            log.warning(
                "could not post the restore card: %s", describe_error(exc), extra={"guild_id": item.guild_id}
            )
            return None
        return msg.channel.id, msg.id

    @after_answer
    async def refresh_restore_card(self, item: AttestItem) -> None:
        if item.card_channel_id is None or item.card_message_id is None:
            return
        embed, view = texts.restore_card(item)
        channel = self._client.get_partial_messageable(item.card_channel_id, guild_id=item.guild_id)
        try:
            await channel.get_partial_message(item.card_message_id).edit(embed=embed, view=view)
        except DISCORD_ERRORS as exc:
            log.warning(
                "could not update the restore card: %s",
                describe_error(exc),
                extra={"guild_id": item.guild_id},
            )
