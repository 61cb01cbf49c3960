"""The held change's approval card and the custom ids its buttons carry.

Like the request card (bot/approvals/cards.py): the buttons carry only the held change's id and
the choice; bot/audit/buttons.py matches them with a DynamicItem template and re-reads the row,
so a card posted before a restart keeps working.
"""

from __future__ import annotations

import discord

from bot.approvals.cards import BLUE, GREEN, GREY, RED, approve_deny_view
from bot.audit.actions import action_from_json
from bot.db.models import HeldChange, HeldStatus
from bot.durations import discord_ts as ts
from bot.escape import user_text

# Each custom id is written here once: its format and the template that matches it.
HELD_TEMPLATE = r"warden:held:(?P<held_id>[0-9]{1,18}):(?P<choice>approve|deny)"


def held_button_id(held_change_id: int, choice: str) -> str:
    return f"warden:held:{held_change_id}:{choice}"


def _target(held: HeldChange) -> str | None:
    kind, _, ref = (held.target or "").partition(":")
    if not ref.isdigit():
        return None
    return f"<@&{ref}>" if kind == "role" else f"<@{ref}>" + (" (bot)" if kind == "bot" else "")


def _status(held: HeldChange) -> tuple[str, discord.Colour]:
    not_approved = {
        HeldStatus.PENDING: (f"Waiting for an admin — expires {ts(held.expires_at, 'R')}", BLUE),
        HeldStatus.DENIED: (
            f"Denied by <@{held.decided_by}> {ts(held.decided_at)} — it stays reverted",
            GREY,
        ),
        HeldStatus.EXPIRED: ("Expired — nobody decided in time; it stays reverted", GREY),
    }
    if held.status in not_approved:
        return not_approved[held.status]
    # approved
    if held.restored_at is None:
        return f"Approved by <@{held.decided_by}> — restoring in Discord…", GREEN
    if held.failures:
        failed = "\n".join(f"• {user_text(f)}" for f in held.failures)
        return (
            f"Approved by <@{held.decided_by}>, but Discord refused part of the restore "
            f"(a failed control; see the governance channel):\n{failed}"
        )[:1024], RED
    return f"Approved by <@{held.decided_by}> — restored {ts(held.restored_at)}", GREEN


def held_card(held: HeldChange, approvers_text: str) -> tuple[discord.Embed, discord.ui.View]:
    status, colour = _status(held)
    embed = discord.Embed(
        title=f"Held change #{held.id} — {held.rule}",
        colour=colour,
        description=user_text(held.reason),
    )
    embed.add_field(name="Change", value=f"`{held.event}`")
    target = _target(held)
    if target:
        embed.add_field(name="Target", value=target)
    if held.actor_id:
        embed.add_field(name="Made by", value=f"<@{held.actor_id}>")
    if held.reverted:
        embed.add_field(
            name="Warden reverted", value="\n".join(f"• {r}" for r in held.reverted)[:1024], inline=False
        )
    restores = [action_from_json(a).describe() for a in held.reapply]
    embed.add_field(
        name="Approve restores", value="\n".join(f"• {r}" for r in restores)[:1024] or "nothing", inline=False
    )
    embed.add_field(name="Who may approve", value=f"{approvers_text} — not whoever made the change"[:1024])
    embed.add_field(name="Approvals", value="1 needed")
    embed.add_field(name="Status", value=status, inline=False)
    footer = f"held change #{held.id}"
    if held.ledger_entry_id:
        footer += f" · ledger #{held.ledger_entry_id}"
    if held.audit_entry_id:
        footer += f" · audit-log entry {held.audit_entry_id}"
    embed.set_footer(text=footer)
    pending = held.status == HeldStatus.PENDING
    return embed, approve_deny_view(lambda choice: held_button_id(held.id, choice), pending=pending)


def held_receipt(held: HeldChange) -> str:
    """What the admin who clicked sees (the card itself is updated for everyone)."""
    if held.status == HeldStatus.DENIED:
        return f"You denied held change #{held.id}: it stays reverted."
    if held.failures:
        return (
            f"You approved held change #{held.id}, but Discord refused part of the restore: "
            + "; ".join(held.failures)
            + ". It is recorded as a failed control; re-apply the rest by hand once Warden's permissions are fixed."
        )
    return f"You approved held change #{held.id}: Warden restored it."
