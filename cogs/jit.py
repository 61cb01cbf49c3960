"""/jit — request, list, extend, cancel, revoke and break-glass. Thin: parse, call a service, render."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import discord
from bot.db.models import MAX_ROW_ID, AccessRequest, Grant
from bot.discord_io.replies import answer_read
from bot.durations import DurationError, format_duration, parse_duration
from bot.durations import discord_ts as ts
from bot.requests.cards import mine_embed
from bot.requests.service import Mine
from bot.services.errors import BadInput, row_id
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from bot.client import WardenBot


def _member(interaction: discord.Interaction[WardenBot]) -> discord.Member:
    if interaction.guild is None or not isinstance(interaction.user, discord.Member):
        raise BadInput("Use Warden's commands in a server, not in DMs.")
    return interaction.user


Row = TypeVar("Row", AccessRequest, Grant)
# A request or grant id option: Discord refuses anything outside this range before it reaches Warden.
RowId = app_commands.Range[int, 1, MAX_ROW_ID]


def _choices(rows: list[Row], current: str, label: Callable[[Row], str]) -> list[app_commands.Choice[int]]:
    """The rows whose id or scope matches what was typed, for autocomplete (Discord shows 25)."""
    return [
        app_commands.Choice(name=label(r), value=r.id)
        for r in rows
        if current in str(r.id) or current.casefold() in r.scope_id.casefold()
    ][:25]


COMMON_DURATIONS = ("15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "7d")


@app_commands.guild_only()
class Jit(commands.GroupCog, group_name="jit", group_description="Just-in-time access"):
    def __init__(self, bot: WardenBot) -> None:
        self.bot = bot
        super().__init__()

    async def scope_autocomplete(
        self, interaction: discord.Interaction[WardenBot], current: str
    ) -> list[app_commands.Choice[str]]:
        if not isinstance(interaction.user, discord.Member):
            return []
        scopes = self.bot.services.requests.requestable_scopes(interaction.user)
        needle = current.casefold()
        return [
            app_commands.Choice(
                name=(f"{s.id} — {s.description}" if s.description else s.id)[:100], value=s.id
            )
            for s in scopes
            if needle in s.id.casefold() or needle in s.description.casefold()
        ][:25]

    async def duration_autocomplete(
        self, interaction: discord.Interaction[WardenBot], current: str
    ) -> list[app_commands.Choice[str]]:
        """Durations this scope allows, its default first; what was typed is checked as you type."""
        if not isinstance(interaction.user, discord.Member):
            return []
        scope = self.bot.services.requests.find_scope(
            interaction.user.guild.id, str(getattr(interaction.namespace, "scope", ""))
        )
        limit = scope.max_duration if scope else None
        options: dict[str, str] = {}  # value → label, in order; the first label for a value wins
        typed = current.strip()
        if typed:
            try:
                wanted = parse_duration(typed)
            except DurationError as exc:
                return [app_commands.Choice(name=str(exc)[:100], value=typed[:100])]
            if limit is not None and wanted > limit:
                note = f"{format_duration(wanted)} is over the maximum {format_duration(limit)}"
                return [app_commands.Choice(name=note, value=format_duration(wanted))]
            options.setdefault(format_duration(wanted), format_duration(wanted))
        if scope is not None:
            default = format_duration(scope.default_duration)
            options.setdefault(default, f"{default} (default)")
        for text in COMMON_DURATIONS:
            if limit is None or parse_duration(text) <= limit:
                options.setdefault(text, text)
        return [app_commands.Choice(name=label, value=value) for value, label in options.items()][:25]

    async def _own_grants(
        self, interaction: discord.Interaction[WardenBot], current: str
    ) -> list[app_commands.Choice[int]]:
        now = self.bot.clock.now()

        def label(g: Grant) -> str:
            if g.expires_at is None:
                return f"grant #{g.id} {g.scope_id} — {g.status}"
            return f"grant #{g.id} {g.scope_id} — ends in {format_duration(max(g.expires_at - now, dt.timedelta(0)))}"

        mine = await self._mine(interaction)
        return _choices(mine.active if mine else [], current, label)

    async def _own_requests(
        self, interaction: discord.Interaction[WardenBot], current: str
    ) -> list[app_commands.Choice[int]]:
        mine = await self._mine(interaction)
        return _choices(
            mine.pending if mine else [], current, lambda r: f"request #{r.id} {r.scope_id} (pending)"
        )

    async def _mine(self, interaction: discord.Interaction[WardenBot]) -> Mine | None:
        if not isinstance(interaction.user, discord.Member):
            return None
        return await self.bot.services.requests.mine(interaction.user)

    @app_commands.command(name="request", description="Ask for a scope for a limited time")
    @app_commands.describe(
        scope="What you need access to",
        duration="How long, e.g. 30m, 2h, 1d (default: the scope's default)",
        reason="Why you need it (shown to approvers and in the audit log)",
        for_="Ask on behalf of another member or a bot",
    )
    @app_commands.rename(for_="for")
    @app_commands.autocomplete(scope=scope_autocomplete, duration=duration_autocomplete)
    async def request(
        self,
        interaction: discord.Interaction[WardenBot],
        scope: str,
        duration: str | None = None,
        reason: str | None = None,
        for_: discord.Member | None = None,
    ) -> None:
        async with self.bot.follow_ups.answering(interaction):
            member = _member(interaction)
            await interaction.response.defer(ephemeral=True, thinking=True)
            out = await self.bot.services.requests.create(member, scope, duration, reason, for_)
            req = out.request
            length = format_duration(dt.timedelta(seconds=req.duration_seconds))
            if out.grant is not None:
                if out.grant.status == "active":
                    text = (
                        f"Request #{req.id} was approved automatically ({out.auto_rule}) and applied: "
                        f"`{out.scope.id}` until {ts(out.grant.expires_at)}."
                    )
                else:
                    text = (
                        f"Request #{req.id} was approved automatically, but Warden could not apply it: "
                        f"{out.grant.last_error}. Nothing was granted; a server admin has been told."
                    )
            else:
                text = (
                    f"Request #{req.id} for `{out.scope.id}` ({length}) is waiting for approval: "
                    f"{req.approvals_required} approval{'s' if req.approvals_required != 1 else ''} needed, "
                    f"deadline {ts(req.pending_until, 'R')}. You'll get a DM when it is decided."
                )
            await interaction.followup.send(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )

    @app_commands.command(name="mine", description="Your pending requests and active grants")
    async def mine(self, interaction: discord.Interaction[WardenBot]) -> None:
        async with self.bot.follow_ups.answering(interaction):
            read = self.bot.services.requests.mine(_member(interaction))
            await answer_read(interaction, read, lambda out: mine_embed(out.pending, out.active))

    @app_commands.command(name="revoke", description="End a grant now (its holder or an approver)")
    @app_commands.describe(grant="The grant id (see /jit mine)", reason="Why it ends early")
    @app_commands.autocomplete(grant=_own_grants)
    async def revoke(
        self, interaction: discord.Interaction[WardenBot], grant: RowId, reason: str | None = None
    ) -> None:
        async with self.bot.follow_ups.answering(interaction):
            member = _member(interaction)
            await interaction.response.defer(ephemeral=True, thinking=True)
            out = await self.bot.services.grants.revoke(member, row_id(grant, "grant"), reason)
            text = f"Grant #{out.id} (`{out.scope_id}`) is revoked" + (
                " and removed." if out.status == "revoked" else "; removal from Discord is being retried."
            )
            await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="extend", description="Ask to keep a grant longer (needs approval again)")
    @app_commands.describe(
        grant="The grant id (see /jit mine)", duration="How much longer, e.g. 30m", reason="Why"
    )
    @app_commands.autocomplete(grant=_own_grants)
    async def extend(
        self,
        interaction: discord.Interaction[WardenBot],
        grant: RowId,
        duration: str,
        reason: str | None = None,
    ) -> None:
        async with self.bot.follow_ups.answering(interaction):
            member = _member(interaction)
            await interaction.response.defer(ephemeral=True, thinking=True)
            out = await self.bot.services.requests.extend(member, row_id(grant, "grant"), duration, reason)
            await interaction.followup.send(
                f"Extension request #{out.request.id} for grant #{grant} is waiting for approval.",
                ephemeral=True,
            )

    @app_commands.command(name="cancel", description="Withdraw one of your pending requests")
    @app_commands.describe(request="The request id (see /jit mine)")
    @app_commands.autocomplete(request=_own_requests)
    async def cancel(self, interaction: discord.Interaction[WardenBot], request: RowId) -> None:
        async with self.bot.follow_ups.answering(interaction):
            member = _member(interaction)
            await interaction.response.defer(ephemeral=True, thinking=True)
            req = await self.bot.services.requests.cancel(member, row_id(request, "request"))
            await interaction.followup.send(f"Request #{req.id} is withdrawn.", ephemeral=True)

    @app_commands.command(
        name="breakglass", description="Emergency access now, reviewed by approvers afterwards"
    )
    @app_commands.describe(
        scope="A scope that allows break-glass", reason="The emergency (approvers will review)"
    )
    @app_commands.autocomplete(scope=scope_autocomplete)
    async def breakglass(self, interaction: discord.Interaction[WardenBot], scope: str, reason: str) -> None:
        async with self.bot.follow_ups.answering(interaction):
            member = _member(interaction)
            await interaction.response.defer(ephemeral=True, thinking=True)
            out = await self.bot.services.requests.breakglass(member, scope, reason)
            grant = out.grant
            if grant is not None and grant.status == "active":
                text = (
                    f"Break-glass: `{out.scope.id}` is yours until {ts(grant.expires_at)} (grant #{grant.id}). "
                    "This was announced in the governance channel and approvers must review it."
                )
            else:
                text = f"Break-glass was recorded but Warden could not apply it: {grant.last_error if grant else '?'}."
            await interaction.followup.send(text, ephemeral=True)


async def setup(bot: WardenBot) -> None:
    await bot.add_cog(Jit(bot))
