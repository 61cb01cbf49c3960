"""/warden doctor: can Warden really do what the policy asks, in this server, right now?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord

from bot.escape import user_text
from bot.grantability import EVERYONE, ambiguous_names, check_grantable, resolve_channel, resolve_role
from bot.policy import Approver
from bot.services.errors import WardenError

if TYPE_CHECKING:
    from bot.client import WardenBot


@dataclass
class DoctorReport:
    guild: str
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a problem

    @property
    def problems(self) -> int:
        return sum(len(p) for _, p in self.sections)

    def render(self, limit: int = 1900) -> str:
        head = f"**Warden doctor — {self.guild}**: " + (
            "everything checks out." if not self.problems else f"{self.problems} problem(s) found."
        )
        lines = [head]
        lines.extend(f"ℹ️ {note}" for note in self.notes)
        for title, problems in self.sections:
            if problems:
                lines.append(f"❌ **{title}**")
                lines.extend(f"  • {p}" for p in problems)
            else:
                lines.append(f"✅ {title}")
        text = "\n".join(lines)
        return text if len(text) <= limit else text[: limit - 40] + "\n… (more; fix these first)"


def _channel_problems(guild: discord.Guild, ref: object, what: str) -> list[str]:
    channel = resolve_channel(guild, ref)  # type: ignore[arg-type]
    if channel is None:
        return [
            f"the {what} channel `{ref}` does not exist — create it or fix `{what}_channel` in config.toml"
        ]
    perms = channel.permissions_for(guild.me)
    missing = [n for n in ("view_channel", "send_messages", "embed_links") if not getattr(perms, n)]
    if missing:
        return [
            f"Warden cannot {', '.join(missing)} in {channel.mention} — allow them for Warden's role there"
        ]
    return []


def _ref_problem(guild: discord.Guild, ref: str | int, key: str) -> str | None:
    if ref == EVERYONE or isinstance(ref, int) or str(ref).isdigit():
        return None  # ids may be users; they cannot be checked without fetching
    ambiguous = ambiguous_names(guild, [ref])
    if ambiguous:
        return f"`{key}`: {ambiguous[0]} — until then nobody is matched by it"
    if resolve_role(guild, ref) is None:
        return f"`{key}` names the role `{ref}`, which does not exist — create it or fix the name"
    return None


def diagnose(bot: WardenBot, guild: discord.Guild) -> DoctorReport:
    report = DoctorReport(guild.name)
    gp = bot.services.guilds.get(guild.id)
    if gp is None:
        why = bot.services.guilds.explain(guild.id, guild.name, show=user_text)
        report.sections.append(
            (
                "Policy",
                [
                    why
                    or f"config.toml has no [guild] section for '{user_text(guild.name)}' ({guild.id}) — add one"
                ],
            )
        )
        return report
    pinned = bot.services.guilds.pin(guild.id)
    if pinned is not None:
        table, pin = pinned
        report.notes.append(
            f"[guild.{table.key}] is pinned to this server (id {guild.id}): only it gets that policy, "
            + (
                f"confirmed by <@{pin.confirmed_by}>."
                if pin.confirmed_by
                else "not confirmed yet — check the id and confirm with `/warden pin`."
            )
        )
    me = guild.me
    server: list[str] = []
    if not me.guild_permissions.manage_roles:
        server.append(
            "Warden lacks Manage Roles — it cannot grant or remove roles; give its role Manage Roles"
        )
    if not me.guild_permissions.view_audit_log:
        server.append(
            "Warden lacks View Audit Log — it cannot see changes made by hand; give its role View Audit Log"
        )
    intents = bot.intents
    if not intents.members:
        server.append("the Server Members intent is off — enable it in the Developer Portal and in Warden")
    if not intents.moderation:
        server.append("the moderation intent is off — audit-log events will not arrive")
    server += _channel_problems(guild, gp.approvals_channel, "approvals")
    server += _channel_problems(guild, gp.governance_channel, "governance")
    if gp.ping_role and resolve_role(guild, gp.ping_role) is None:
        server.append(f"`ping_role` names `{gp.ping_role}`, which does not exist")
    report.sections.append(("Server permissions, intents and channels", server))
    for scope in bot.policy.scopes_for(gp):
        problems: list[str] = []
        for ref in (scope.role,) if scope.kind == "role" and scope.role is not None else ():
            p = _ref_problem(guild, ref, "role")
            if p and "matches" in p:
                problems.append(p)
        try:
            check_grantable(guild, scope)
        except WardenError as exc:
            problems.append(exc.message)
        for approver in scope.approvers:
            if isinstance(approver, Approver) and approver.kind != "user":
                p = _ref_problem(guild, approver.ref, "approvers")
                if p:
                    problems.append(p)
        for ref in scope.requesters:
            p = _ref_problem(guild, ref, "requesters")
            if p:
                problems.append(p)
        for rule in scope.auto_approve:
            p = _ref_problem(guild, rule.members_of, "auto_approve.members_of")
            if p:
                problems.append(p)
        report.sections.append((f"scope `{scope.id}` ({scope.kind})", problems))
    return report


async def waiting_problems(bot: WardenBot, guild: discord.Guild) -> list[str]:
    """What the database knows is stuck: narratives the governance channel refused, reverts
    Discord refused. Both are in the ledger already; these say what is still to happen."""
    problems: list[str] = []
    backlog = await bot.services.poster.backlog(guild.id)
    if backlog.waiting:
        why = f" (last error: {backlog.last_error})" if backlog.last_error else ""
        problems.append(
            f"{backlog.waiting} narrative(s) could not be posted to the governance channel{why} — the "
            "decisions are in the ledger; fix the channel and Warden posts them, summarised"
        )
    pending = await bot.services.audit.listener.pending_reverts(guild.id)
    if pending:
        entries = ", ".join(str(p.entry_id) for p in pending[:5])
        problems.append(
            f"{len(pending)} revert(s) Discord refused are still pending (audit-log entries {entries}) — "
            "check Warden's role position and permissions; it retries them"
        )
    return problems


async def diagnose_now(bot: WardenBot, guild: discord.Guild) -> DoctorReport:
    """``diagnose`` plus what is waiting in the database (the slash command and the start-up log)."""
    report = diagnose(bot, guild)
    if bot.services.guilds.get(guild.id) is not None:
        report.sections.append(("Governance channel and audit listener", await waiting_problems(bot, guild)))
    return report
