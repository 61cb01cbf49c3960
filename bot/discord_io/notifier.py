"""Telling people: approval cards, DMs and reminders, after the database has committed.

Nothing here decides anything and nothing here raises: a Discord failure while
telling someone is logged with context and never undoes a decision. (Narratives in
the governance channel go through the ledger's outbox, which retries on its own.)
Methods marked ``@after_answer`` run, inside a command or click, once the person has
their answer (bot/discord_io/follow_ups.py); elsewhere at once.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import discord
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.approvals.cards import approver_reminder, request_card, review_card
from bot.audit.cards import held_card
from bot.db.models import AccessRequest, Grant, HeldChange, RequestKind, RequestStatus
from bot.db.session import fresh
from bot.decisions.narrative import NO_PINGS
from bot.discord_io.follow_ups import after_answer
from bot.discord_io.ops import DISCORD_ERRORS, describe_error
from bot.grantability import describe_refs, resolve_channel, resolve_role
from bot.grants.texts import (
    grant_applied_dm,
    grant_ended_dm,
    grant_expiring_dm,
    grant_extended_dm,
    grant_failed_dm,
    token_delivery_dm,
    token_revoked_dm,
)
from bot.logs import redacting
from bot.policy import GuildDirectory, GuildPolicy, Scope
from bot.requests.texts import request_denied_dm, request_expired_dm
from bot.services.base import transaction
from bot.tokens.service import IssuedToken, TokenInfo

log = logging.getLogger(__name__)

T = TypeVar("T")
Card = tuple[discord.Embed, discord.ui.View]  # what the cards modules render: the embed and its buttons


@dataclass(eq=False)
class Notifier:
    """Cards and DMs, after commit: through ``client``, in the guilds ``guilds`` governs, with
    rows read through ``session_factory``."""

    client: discord.Client
    guilds: GuildDirectory
    session_factory: async_sessionmaker[AsyncSession]
    # Request id → the lock one refresh of its card holds (kept only while a refresh uses it).
    _card_turns: weakref.WeakValueDictionary[int, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary, init=False, repr=False
    )

    # ---- helpers ---------------------------------------------------------------------------

    def _guild(self, guild_id: int) -> tuple[discord.Guild | None, GuildPolicy | None]:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            return None, None
        return guild, self.guilds.get(guild_id)

    async def _safely(self, what: str, coro: Awaitable[T], **ctx: Any) -> T | None:
        try:
            return await coro
        except DISCORD_ERRORS as exc:
            log.warning("could not %s: %s", what, describe_error(exc), extra=ctx)
        except Exception:
            log.exception("could not %s", what, extra=ctx)
        return None

    async def dm(self, user_id: int, text: str, **ctx: Any) -> discord.Message | None:
        async def send() -> discord.Message:
            channel = await self.client.create_dm(discord.Object(user_id))
            return await channel.send(text, allowed_mentions=NO_PINGS)

        return await self._safely("send a DM", send(), user_id=user_id, **ctx)

    def _approvers_text(self, guild: discord.Guild, scope: Scope) -> str:
        return describe_refs(guild, scope.approvers)

    @staticmethod
    def _roles_text(guild: discord.Guild, user_id: int) -> str | None:
        """The requester's current roles, highest first, so approvers see who is asking."""
        member = guild.get_member(user_id)
        if member is None:
            return None
        return ", ".join(r.mention for r in reversed(member.roles) if not r.is_default())

    async def _load(self, request_id: int) -> tuple[AccessRequest | None, Grant | None]:
        async with transaction(self.session_factory) as session:
            req = await fresh(session, AccessRequest, request_id)
            grant = None
            if req is not None:
                gid = req.extends_grant_id if req.kind == RequestKind.EXTENSION else None
                if gid:
                    grant = await session.get(Grant, gid)
                else:
                    grant = await session.scalar(select(Grant).where(Grant.request_id == req.id))
            return req, grant

    async def _remember(
        self,
        model: type[AccessRequest | Grant | HeldChange],
        row_id: int,
        msg: discord.Message,
        channel: str,
        message: str,
    ) -> None:
        """Store where a card was posted, so it can be edited later (one UPDATE: nothing else of
        the row is needed, and loading a request also loads its votes)."""
        async with transaction(self.session_factory) as session:
            await session.execute(
                update(model)
                .where(model.id == row_id)
                .values({channel: msg.channel.id, message: msg.id})
                .execution_options(synchronize_session=False)
            )

    async def _post_card(
        self, what: str, channel: discord.abc.Messageable, card: Card, **ctx: Any
    ) -> discord.Message | None:
        """Post a card with its buttons; nobody is pinged."""
        embed, view = card
        return await self._safely(
            what, channel.send(embed=embed, view=view, allowed_mentions=NO_PINGS), **ctx
        )

    async def _edit_card(self, what: str, message: discord.PartialMessage, card: Card, **ctx: Any) -> None:
        """Re-render a card already posted, in place; nobody is pinged again."""
        embed, view = card
        await self._safely(what, message.edit(embed=embed, view=view, allowed_mentions=NO_PINGS), **ctx)

    def _approvals_channel(
        self, guild_id: int
    ) -> tuple[discord.Guild, GuildPolicy, discord.abc.Messageable] | None:
        """The guild, its policy and its approvals channel, where new cards are posted; None when
        any is missing (a missing channel is logged: the policy names one that is not there)."""
        guild, gp = self._guild(guild_id)
        if guild is None or gp is None:
            return None
        channel = resolve_channel(guild, gp.approvals_channel)
        if not isinstance(channel, discord.abc.Messageable):
            log.error("approvals channel %r not found", gp.approvals_channel, extra={"guild_id": guild.id})
            return None
        return guild, gp, channel

    # ---- approval cards ----------------------------------------------------------------------

    @after_answer
    async def request_created(self, req: AccessRequest, scope: Scope) -> None:
        """A new request's card, once the requester has their answer."""
        await self.post_request_card(req, scope)

    async def post_request_card(self, req: AccessRequest, scope: Scope) -> None:
        """Post a request's approval card now and remember where (left unset if Discord refused)."""
        found = self._approvals_channel(req.guild_id)
        if found is None:
            return
        guild, gp, channel = found
        embed, view = request_card(
            req,
            scope,
            self._approvers_text(guild, scope),
            requester_roles=self._roles_text(guild, req.requester_id),
        )
        ping_role = resolve_role(guild, gp.ping_role) if gp.ping_role else None
        content = f"{ping_role.mention}: a new request needs a decision." if ping_role else None
        mentions = (
            discord.AllowedMentions(everyone=False, users=False, roles=[ping_role]) if ping_role else NO_PINGS
        )
        msg = await self._safely(
            "post the approval card",
            channel.send(content=content, embed=embed, view=view, allowed_mentions=mentions),
            guild_id=guild.id,
            request_id=req.id,
        )
        if msg is not None:
            await self._remember(AccessRequest, req.id, msg, "card_channel_id", "card_message_id")
            req.card_channel_id, req.card_message_id = msg.channel.id, msg.id

    async def refresh_card(self, request_id: int) -> tuple[AccessRequest | None, Grant | None]:
        """Re-render a request's card from the database; returns the rows it read.

        One refresh of a card at a time, each reading the rows once it has its turn: the cards of
        concurrent clicks are refreshed after their answers, in any order, and the last edit must
        show the latest state."""
        turn = self._card_turns.setdefault(request_id, asyncio.Lock())
        async with turn:
            loaded = await self._load(request_id)
            await self._render_card(*loaded)
        return loaded

    async def _render_card(self, req: AccessRequest | None, grant: Grant | None) -> None:
        if req is None or req.card_message_id is None or req.card_channel_id is None:
            return
        guild, gp = self._guild(req.guild_id)
        channel: discord.abc.GuildChannel | discord.PartialMessageable | None = None
        if guild is None:
            # On another process's shard (a sweep here ended it): fetch over REST, edit by id.
            guild = await self._safely(
                "fetch the guild",
                self.client.fetch_guild(req.guild_id, with_counts=False),
                request_id=req.id,
            )
            if guild is None:
                return
            if self.guilds.get(guild.id) is None:
                await self.guilds.refresh()  # the process that sees the guild may have pinned it since
            gp = self.guilds.get(guild.id)  # by id or pin, never by name alone
            channel = self.client.get_partial_messageable(req.card_channel_id, guild_id=guild.id)
        if gp is None:
            return
        scope = self.guilds.policy.scope(gp, req.scope_id)
        if scope is None:
            return
        channel = channel or guild.get_channel(req.card_channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        card = request_card(
            req,
            scope,
            self._approvers_text(guild, scope),
            grant,
            requester_roles=self._roles_text(guild, req.requester_id),
        )
        message = channel.get_partial_message(req.card_message_id)
        await self._edit_card(
            "update the approval card", message, card, guild_id=req.guild_id, request_id=req.id
        )

    @after_answer
    async def request_updated(self, req: AccessRequest) -> None:
        await self.refresh_card(req.id)

    @after_answer
    async def request_decided(self, req: AccessRequest, scope: Scope) -> None:
        await self.refresh_card(req.id)
        if req.status == RequestStatus.DENIED:
            guild, _ = self._guild(req.guild_id)
            name = guild.name if guild else self.guilds.name(req.guild_id)
            await self.dm(req.requester_id, request_denied_dm(req, scope.id, name), request_id=req.id)

    @after_answer
    async def request_expired(self, req: AccessRequest) -> None:
        await self.refresh_card(req.id)
        guild, _ = self._guild(req.guild_id)
        text = request_expired_dm(req, guild.name if guild else None)
        await self.dm(req.requester_id, text, request_id=req.id)

    @after_answer
    async def remind_approvers(self, req: AccessRequest) -> None:
        guild, gp = self._guild(req.guild_id)
        if req.card_channel_id is None or (guild is not None and gp is None):
            return
        # Not cached here (another process's shard): this process claimed the reminder, so it posts by id.
        channel = (
            guild.get_channel(req.card_channel_id)
            if guild is not None
            else self.client.get_partial_messageable(req.card_channel_id, guild_id=req.guild_id)
        )
        if not isinstance(channel, discord.abc.Messageable):
            return
        text = approver_reminder(req)
        reference = (
            channel.get_partial_message(req.card_message_id).to_reference(fail_if_not_exists=False)
            if req.card_message_id
            else None
        )
        await self._safely(
            "remind approvers",
            channel.send(text, reference=reference, allowed_mentions=NO_PINGS),  # type: ignore[arg-type]
            guild_id=req.guild_id,
            request_id=req.id,
        )

    # ---- held changes (audit rules with outcome "approve") ---------------------------------------

    def _admins_text(self, guild: discord.Guild, gp: GuildPolicy) -> str:
        named = describe_refs(guild, gp.admins) if gp.admins else ""
        owner = f"<@{guild.owner_id}> (the server owner)" if guild.owner_id else "the server owner"
        return f"{named}, or {owner}" if named else f"{owner} only (name `admins` in the policy)"

    async def held_change_created(self, held: HeldChange) -> None:
        """Post a held change's Approve / Deny card to the approvals channel, and remember where."""
        found = self._approvals_channel(held.guild_id)
        if found is None:
            return
        guild, gp, channel = found
        card = held_card(held, self._admins_text(guild, gp))
        msg = await self._post_card(
            "post the held change card", channel, card, guild_id=guild.id, held_change_id=held.id
        )
        if msg is not None:
            await self._remember(HeldChange, held.id, msg, "card_channel_id", "card_message_id")
            held.card_channel_id, held.card_message_id = msg.channel.id, msg.id

    @after_answer
    async def held_change_updated(self, held: HeldChange) -> None:
        """Re-render a held change's card from the database (approved, denied, expired)."""
        async with transaction(self.session_factory) as session:
            row = await fresh(session, HeldChange, held.id)
        if row is None or row.card_channel_id is None or row.card_message_id is None:
            return
        guild, gp = self._guild(row.guild_id)
        if guild is None or gp is None:
            return
        channel = guild.get_channel(row.card_channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        card = held_card(row, self._admins_text(guild, gp))
        message = channel.get_partial_message(row.card_message_id)
        await self._edit_card(
            "update the held change card", message, card, guild_id=row.guild_id, held_change_id=row.id
        )

    # ---- grants -------------------------------------------------------------------------------

    @after_answer
    async def grant_applied(self, grant: Grant) -> None:
        guild, gp = self._guild(grant.guild_id)
        req = None
        if grant.request_id:
            req = (await self.refresh_card(grant.request_id))[0]
        approvers = [v.approver_id for v in req.votes if v.approve] if req else []
        text = grant_applied_dm(grant, guild.name if guild else str(grant.guild_id), approvers)
        await self.dm(grant.subject_id, text, grant_id=grant.id)
        if req is not None and req.requester_id != grant.subject_id:
            await self.dm(req.requester_id, f"Granted for <@{grant.subject_id}>: {text}", grant_id=grant.id)
        if grant.breakglass and guild is not None and gp is not None:
            await self._post_review(guild, gp, grant, req.reason if req else "")

    async def _post_review(self, guild: discord.Guild, gp: GuildPolicy, grant: Grant, reason: str) -> None:
        scope = self.guilds.policy.scope(gp, grant.scope_id)
        channel = resolve_channel(guild, gp.approvals_channel)
        if scope is None or not isinstance(channel, discord.abc.Messageable):
            return
        card = review_card(grant, reason, self._approvers_text(guild, scope))
        msg = await self._post_card(
            "post the break-glass review card", channel, card, guild_id=guild.id, grant_id=grant.id
        )
        if msg is not None:
            await self._remember(Grant, grant.id, msg, "review_channel_id", "review_message_id")

    @after_answer
    async def refresh_review(self, grant_id: int) -> None:
        async with transaction(self.session_factory) as session:
            grant = await session.get(Grant, grant_id)
            req = await session.get(AccessRequest, grant.request_id) if grant and grant.request_id else None
        if grant is None or grant.review_message_id is None or grant.review_channel_id is None:
            return
        guild, gp = self._guild(grant.guild_id)
        scope = self.guilds.policy.scope(gp, grant.scope_id) if gp else None
        if guild is None or scope is None:
            return
        channel = guild.get_channel(grant.review_channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        embed, view = review_card(grant, req.reason if req else "", self._approvers_text(guild, scope))
        await self._safely(
            "update the review card",
            channel.get_partial_message(grant.review_message_id).edit(embed=embed, view=view),
            grant_id=grant.id,
        )

    async def deliver_token(self, grant: Grant, issued: IssuedToken) -> str | None:
        """DM an access token to its holder, once. None when Discord took it; else why not.

        The token is in this one message only: never in a log line (masked while it is sent, since
        discord.py logs request bodies at DEBUG), an exception, the database or a narrative.
        """
        guild, _ = self._guild(grant.guild_id)
        value = issued.value.reveal()
        text = token_delivery_dm(grant, guild.name if guild else str(grant.guild_id), value, issued.info.id)
        with redacting(value):
            try:
                channel = await self.client.create_dm(discord.Object(grant.subject_id))
                await channel.send(text, allowed_mentions=NO_PINGS)
            except DISCORD_ERRORS as exc:
                why = describe_error(exc)
                log.warning(
                    "could not deliver an access token by DM: %s",
                    why,
                    extra={"grant_id": grant.id, "token_id": issued.info.id},
                )
                return why
        return None

    @after_answer
    async def token_revoked(self, info: TokenInfo, why: str) -> None:
        await self.dm(info.subject_id, token_revoked_dm(info.scope_id, info.id, why), token_id=info.id)

    @after_answer
    async def grant_failed(self, grant: Grant) -> None:
        if grant.request_id:
            req = (await self.refresh_card(grant.request_id))[0]
            if req is not None:
                await self.dm(req.requester_id, grant_failed_dm(grant, req), grant_id=grant.id)

    async def _tell_holder(self, grant: Grant, text: str) -> None:
        """DM whoever answers for the access: the member holding it, or — a bot cannot read DMs —
        the member who asked for the bot's access."""
        if not grant.subject_is_bot:
            await self.dm(grant.subject_id, text, grant_id=grant.id)
            return
        req = (await self._load(grant.request_id))[0] if grant.request_id else None
        if req is not None:
            await self.dm(req.requester_id, f"For <@{grant.subject_id}>: {text}", grant_id=grant.id)

    @after_answer
    async def grant_ended(self, grant: Grant) -> None:
        if grant.request_id:
            await self.refresh_card(grant.request_id)
        await self._tell_holder(grant, grant_ended_dm(grant))

    @after_answer
    async def grant_expiring(self, grant: Grant) -> None:
        await self._tell_holder(grant, grant_expiring_dm(grant))

    @after_answer
    async def grant_extended(self, grant: Grant, req: AccessRequest) -> None:
        await self.refresh_card(req.id)
        if grant.request_id:
            await self.refresh_card(grant.request_id)
        await self._tell_holder(grant, grant_extended_dm(grant))


ChannelResolver = Callable[[int], Awaitable[discord.abc.Messageable | None]]


def governance_resolver(client: discord.Client, guilds: GuildDirectory) -> ChannelResolver:
    """Where a guild's narratives go (used by the ledger's narrative poster)."""

    async def resolve(guild_id: int) -> discord.abc.Messageable | None:
        guild = client.get_guild(guild_id)
        if guild is None:
            return await resolve_over_rest(guild_id)
        gp = guilds.get(guild_id)
        channel = resolve_channel(guild, gp.governance_channel) if gp else None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def resolve_over_rest(guild_id: int) -> discord.abc.Messageable | None:
        # A guild on another process's shard (that process may be down): no cache here, so find
        # the channel over REST; posting by channel id works from any process.
        fetched = await client.fetch_guild(guild_id, with_counts=False)
        if guilds.get(guild_id) is None:
            await guilds.refresh()  # the process that sees the guild may have pinned it since
        gp = guilds.get(guild_id)  # by id or pin, never by name alone
        if gp is None:
            return None
        ref = str(gp.governance_channel)
        if ref.isdigit():
            return client.get_partial_messageable(int(ref), guild_id=guild_id)
        name = ref.removeprefix("#").casefold()
        for channel in await fetched.fetch_channels():
            if channel.name.casefold() == name and isinstance(channel, discord.abc.Messageable):
                return client.get_partial_messageable(channel.id, guild_id=guild_id)
        return None

    return resolve
