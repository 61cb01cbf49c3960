"""A tiny but real discord.py bot (Client + CommandTree + views + modal) used against the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import discord
from discord import app_commands

from sandbox import SandboxDiscord

SCOPES = ["deploy", "deploy-prod", "db-read", "billing"]


class DenyModal(discord.ui.Modal, title="Deny request"):
    reason = discord.ui.TextInput(label="Reason", custom_id="reason", min_length=2)

    def __init__(self, bot: TinyBot) -> None:
        super().__init__(custom_id="deny-modal")
        self.bot = bot

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.bot.seen["modal_reason"] = self.reason.value
        await interaction.response.send_message(f"Denied: {self.reason.value}", ephemeral=True)


class ApprovalView(discord.ui.View):
    def __init__(self, bot: TinyBot) -> None:
        super().__init__(timeout=None)
        self.bot = bot

    @discord.ui.button(label="Approve", style=discord.ButtonStyle.success, custom_id="card:approve")
    async def approve(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.bot.seen["approved_by"] = interaction.user.id
        await interaction.response.edit_message(content=f"Approved by {interaction.user.name}", view=None)

    @discord.ui.button(label="Deny", style=discord.ButtonStyle.danger, custom_id="card:deny")
    async def deny(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_modal(DenyModal(self.bot))

    @discord.ui.button(label="Later", style=discord.ButtonStyle.secondary, custom_id="card:later")
    async def later(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        await asyncio.sleep(0.05)
        await interaction.edit_original_response(content="Snoozed")


class TinyBot:
    def __init__(self, sb: SandboxDiscord, *, intents: discord.Intents | None = None) -> None:
        self.sb = sb
        if intents is None:
            intents = discord.Intents.default()
            intents.members = True
        self.client = discord.Client(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self.client)

        async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
            return None  # discord.py waits 5 s before a re-IDENTIFY (Discord's 1-per-5s limit)

        self.client.before_identify_hook = no_identify_delay  # type: ignore[method-assign]
        self.seen: dict[str, Any] = {}
        self.events: list[tuple[str, Any]] = []
        self.resumed = asyncio.Event()
        self.member_updates: asyncio.Queue = asyncio.Queue()
        self.audit_entries: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._register()

    def _register(self) -> None:
        tree, bot, client = self.tree, self, self.client
        jit = app_commands.Group(name="jit", description="Just-in-time access")

        @jit.command(name="request", description="Request a scope")
        @app_commands.describe(scope="what", duration="how long", reason="why")
        @app_commands.rename(for_="for")
        async def request(
            interaction: discord.Interaction,
            scope: str,
            duration: str,
            reason: str,
            for_: discord.Member | None = None,
        ) -> None:
            subject = for_ or interaction.user
            bot.seen["request"] = (scope, duration, reason, subject.id)
            await interaction.response.send_message(
                f"Requested {scope} for {subject.name} ({duration}): {reason}", ephemeral=True
            )

        @request.autocomplete("scope")
        async def scope_ac(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=s, value=s) for s in SCOPES if s.startswith(current)]

        tree.add_command(jit)

        @tree.command(name="ping", description="Ping with an approval card")
        async def ping(interaction: discord.Interaction) -> None:
            embed = discord.Embed(title="Approval needed", description="deploy for alice")
            embed.add_field(name="Quorum", value="1")
            await interaction.response.send_message("Pong", embed=embed, view=ApprovalView(bot))

        @tree.command(name="dmme", description="DM me")
        async def dmme(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            try:
                await interaction.user.send(f"DM: {text}")
            except discord.Forbidden as e:
                await interaction.followup.send(f"cannot DM ({e.code})", ephemeral=True)
                return
            await interaction.followup.send("sent", ephemeral=True)

        @tree.command(name="twice", description="Answer twice")
        async def twice(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first")
            interaction.response._response_type = None  # bypass discord.py's local guard: ask Discord
            try:
                await interaction.response.send_message("second")
            except discord.HTTPException as e:
                bot.seen["twice_error"] = (e.status, e.code)

        @tree.command(name="slow", description="Answer late")
        async def slow(interaction: discord.Interaction, seconds: float) -> None:
            await asyncio.sleep(seconds)
            try:
                await interaction.response.send_message("late")
            except discord.HTTPException as e:
                bot.seen["slow_error"] = (e.status, e.code)

        @tree.command(name="count", description="Integer + bool + role options")
        async def count(
            interaction: discord.Interaction,
            n: int,
            loud: bool,
            role: discord.Role,
            where: discord.TextChannel,
        ) -> None:
            bot.seen["count"] = (n, loud, role.id, where.id)
            await interaction.response.send_message(f"{n} {loud} {role.name} {where.name}")

        @client.event
        async def on_ready() -> None:
            client.add_view(ApprovalView(bot))

        @client.event
        async def on_resumed() -> None:
            bot.resumed.set()

        @client.event
        async def on_member_update(before: discord.Member, after: discord.Member) -> None:
            bot.member_updates.put_nowait((before, after))

        @client.event
        async def on_audit_log_entry_create(entry: discord.AuditLogEntry) -> None:
            bot.audit_entries.put_nowait(entry)

    async def start(self, *, sync: bool = True) -> None:
        self._task = asyncio.create_task(self.client.start(self.sb.token))
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, self._task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            self._task.result()
        assert ready in done, "client did not become ready"
        if sync:
            await self.tree.sync()

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)
