"""What owners and approvers read about attestations, and the custom ids their buttons carry.

Each custom id is written here once (format and matching template); bot/attest/buttons.py matches
them with DynamicItem templates and re-reads the database on every click, so a DM sent before a
restart keeps working. Views built here are stopped before sending: the templates dispatch.
"""

from __future__ import annotations

import datetime as dt

import discord

from bot.approvals.cards import persistent_view
from bot.db.models import AttestCampaign, AttestItem, AttestStatus
from bot.durations import discord_ts as ts
from bot.durations import format_duration
from bot.escape import user_text

ANSWER_TEMPLATE = r"warden:attest:(?P<item_id>[0-9]{1,18}):(?P<choice>keep|revoke|transfer)"
PICK_TEMPLATE = r"warden:attest-to:(?P<item_id>[0-9]{1,18})"
TAKE_TEMPLATE = r"warden:attest-take:(?P<item_id>[0-9]{1,18}):(?P<choice>accept|decline)"
RESTORE_TEMPLATE = r"warden:attest-restore:(?P<item_id>[0-9]{1,18})"


def answer_id(item_id: int, choice: str) -> str:
    return f"warden:attest:{item_id}:{choice}"


def pick_id(item_id: int) -> str:
    return f"warden:attest-to:{item_id}"


def take_id(item_id: int, choice: str) -> str:
    return f"warden:attest-take:{item_id}:{choice}"


def restore_id(item_id: int) -> str:
    return f"warden:attest-restore:{item_id}"


KIND_WORDS = {
    "bot": "Bot",
    "webhook": "Webhook",
    "token": "Access token",
    "integration": "Integration",
    "standing": "Standing role",
}


def item_title(item: AttestItem) -> str:
    return f"{KIND_WORDS.get(item.kind, item.kind)} {user_text(item.name)}"


def held_text(item: AttestItem) -> str:
    """What the item holds, as people read it."""
    parts = []
    roles = item.access.get("role_ids") or []
    if roles:
        parts.append("roles " + ", ".join(f"<@&{r}>" for r in roles))
    if item.channel_id:
        parts.append(f"posts in <#{item.channel_id}>")
    perms = item.access.get("permissions") or []
    if perms:
        shown = ", ".join(f"`{p}`" for p in perms[:12]) + (" …" if len(perms) > 12 else "")
        parts.append(f"permissions {shown}")
    if item.access.get("scopes"):
        parts.append(
            ("OAuth2 scopes " if item.kind == "integration" else "scope ")
            + ", ".join(f"`{user_text(s)}`" for s in item.access["scopes"])
        )
    if item.kind == "standing":
        parts.insert(0, f"<@{item.external_id}> holds it without a Warden grant")
    return "; ".join(parts) or "no permissions"


def _buttons(item: AttestItem, *, transfer: bool) -> discord.ui.View:
    choices = [
        ("Still needed", discord.ButtonStyle.success, "keep"),
        ("Revoke", discord.ButtonStyle.danger, "revoke"),
    ]
    if transfer:
        choices.append(("Transfer", discord.ButtonStyle.secondary, "transfer"))
    return persistent_view(
        *(
            discord.ui.Button(label=label, style=style, custom_id=answer_id(item.id, choice))
            for label, style, choice in choices
        )
    )


def ask_dm(
    item: AttestItem, campaign: AttestCampaign, guild_name: str, *, reminder: bool = False
) -> tuple[str, discord.Embed, discord.ui.View]:
    """The DM an owner (or, for standing access, an approver) gets for one item."""
    lead = "Reminder: still waiting for your answer" if reminder else "Please attest"
    content = (
        f"{lead} — attestation campaign #{campaign.id} in **{user_text(guild_name)}**, item #{item.id}: "
        f"{item_title(item)}. Answer by {ts(campaign.deadline_at)} ({ts(campaign.deadline_at, 'R')})."
    )
    embed = discord.Embed(
        title=f"Attestation #{campaign.id}: {item_title(item)}",
        colour=discord.Colour.orange() if reminder else discord.Colour.blurple(),
        description=(
            "You own this webhook and nothing has been posted through it for a long while (it is "
            "dormant), so Warden asks you whether it is still needed."
            if campaign.kind == "dormancy"
            else "You own this, so Warden asks you whether it is still needed."
            if item.kind != "standing"
            else "You approve this role, so Warden asks you whether this standing access is still needed. "
            "You cannot answer for your own access."
        ),
    )
    embed.add_field(name="What it holds", value=held_text(item)[:1024], inline=False)
    if item.kind == "integration":
        missed = (
            "Warden escalates it to the server's admins; it never deletes an integration by itself, "
            "because Discord cannot restore one (it has to be authorised again). Revoke does the same."
        )
    elif campaign.on_missed == "remediate":
        missed = "Warden removes it at the deadline (an approver can restore it for a while)."
    else:
        missed = "Warden escalates it to the server's admins."
    embed.add_field(name="If nobody answers", value=missed, inline=False)
    embed.set_footer(text=f"campaign #{campaign.id} · item #{item.id}")
    return content, embed, _buttons(item, transfer=item.kind != "standing")


def offer_dm(item: AttestItem, campaign: AttestCampaign, guild_name: str) -> tuple[str, discord.ui.View]:
    content = (
        f"<@{item.transfer_from}> wants to hand {item_title(item)} in **{user_text(guild_name)}** over to you "
        f"(attestation campaign #{campaign.id}, item #{item.id}). It holds: {held_text(item)}. "
        "Accepting makes you its owner and vouches that it is still needed."
    )
    return content, persistent_view(
        discord.ui.Button(
            label="Accept", style=discord.ButtonStyle.success, custom_id=take_id(item.id, "accept")
        ),
        discord.ui.Button(
            label="Decline", style=discord.ButtonStyle.secondary, custom_id=take_id(item.id, "decline")
        ),
    )


def pick_view(item_id: int) -> discord.ui.View:
    return persistent_view(
        discord.ui.UserSelect(
            custom_id=pick_id(item_id), placeholder="Pick the new owner", min_values=1, max_values=1
        )
    )


def answer_receipt(item: AttestItem) -> str:
    if item.status == AttestStatus.ATTESTED:
        return f"Thanks: {item_title(item)} is attested as still needed (item #{item.id})."
    if item.status == AttestStatus.REMOVED:
        return f"{item_title(item)} is removed (item #{item.id}). An approver can restore it during the grace period."
    if item.status == AttestStatus.ESCALATED:
        return (
            f"You revoked {item_title(item)} (item #{item.id}). Discord cannot restore a deleted integration, "
            "so Warden does not delete it itself: the server's admins have been asked to remove it by hand."
        )
    if item.status == AttestStatus.REMOVING:
        return (
            f"You revoked {item_title(item)}, but Discord refused the removal for now: {item.last_error}. "
            "Warden keeps trying and the admins have been told."
        )
    return f"Item #{item.id}: {item.status}."


def transfer_receipt(item: AttestItem) -> str:
    return (
        f"Asked <@{item.transfer_to}> to take over {item_title(item)}; it stays yours until they accept. "
        "If they decline, Warden asks you again."
    )


def take_receipt(item: AttestItem, accepted: bool) -> str:
    if accepted:
        return f"You now own {item_title(item)}, attested as still needed."
    return f"You declined {item_title(item)}; it stays with <@{item.transfer_from}>."


def transfer_answered_dm(item: AttestItem, member_id: int, accepted: bool) -> str:
    verb = "accepted" if accepted else "declined"
    return f"<@{member_id}> {verb} {item_title(item)} (campaign #{item.campaign_id}, item #{item.id})."


def removed_dm(item: AttestItem, why: str) -> str:
    return (
        f"Warden removed {item_title(item)} (campaign #{item.campaign_id}, item #{item.id}) because {why}. "
        f"An approver can restore it until {ts(item.restore_until)}."
    )


def restored_dm(item: AttestItem, member_id: int) -> str:
    return f"<@{member_id}> restored {item_title(item)} (campaign #{item.campaign_id}, item #{item.id})."


def removed_text(removed: dict[str, object] | None) -> str:
    removed = removed or {}
    parts = []
    roles = removed.get("role_ids")
    if isinstance(roles, list) and roles:
        parts.append("roles " + ", ".join(f"<@&{r}>" for r in roles))
    if removed.get("webhook"):
        parts.append(f"webhook {user_text(str(removed.get('name')))} in <#{removed.get('channel_id')}>")
    if removed.get("token"):
        parts.append(f"token {removed.get('token')} (revoked)")
    return "; ".join(parts) or "nothing (it was already gone)"


def restore_card(item: AttestItem) -> tuple[discord.Embed, discord.ui.View]:
    done = item.status == AttestStatus.RESTORED
    why = "its owner revoked it" if item.answer == "revoke" else "nobody attested it by the deadline"
    embed = discord.Embed(
        title=f"Removed: {item_title(item)} (campaign #{item.campaign_id}, item #{item.id})",
        colour=discord.Colour.green() if done else discord.Colour.orange(),
        description=f"Warden removed it because {why}.",
    )
    embed.add_field(name="Removed", value=removed_text(item.removed)[:1024], inline=False)
    if done:
        embed.add_field(
            name="Restored", value=f"by <@{item.restored_by}> {ts(item.restored_at)}", inline=False
        )
    else:
        embed.add_field(
            name="Restore",
            value=f"An admin (or an approver of the role) can put it back with one click until {ts(item.restore_until)}.",
            inline=False,
        )
    return embed, persistent_view(
        discord.ui.Button(
            label="Restore", style=discord.ButtonStyle.primary, disabled=done, custom_id=restore_id(item.id)
        )
    )


def restore_receipt(item: AttestItem) -> str:
    text = f"Restored {item_title(item)}: {removed_text(item.removed)}."
    if item.kind == "webhook":
        text += " Discord gives a restored webhook a new URL: its owner must update whatever posts to it."
    return text


def status_text(progress: list[tuple[AttestCampaign, dict[str, int]]]) -> str:
    """``/warden attest status``: each recent campaign's progress."""
    if not progress:
        return "No attestation campaign has run in this server yet; `/warden attest start` starts one."
    lines = []
    for c, counts in progress:
        total = sum(counts.values())
        waiting = counts.get(AttestStatus.PENDING, 0) + counts.get(AttestStatus.TRANSFERRING, 0)
        state = (
            f"closed {ts(c.closed_at, 'R')} ({user_text(c.close_reason or '')})"
            if c.closed_at
            else f"open, deadline {ts(c.deadline_at)} ({ts(c.deadline_at, 'R')})"
        )
        who = (
            "dormant-webhook review"
            if c.kind == "dormancy"
            else "scheduled"
            if c.started_by is None
            else f"started by <@{c.started_by}>"
        )
        detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no items"
        lines.append(
            f"**Campaign #{c.id}** — {who} {ts(c.started_at)}; {state}\n"
            f"{total - waiting} of {total} answered or settled — {detail}"
        )
    return "\n\n".join(lines)[:1900]


def started_text(campaign: AttestCampaign, items: int) -> str:
    return (
        f"Attestation campaign #{campaign.id} started: {items} item(s); owners are asked in their DMs and "
        f"must answer by {ts(campaign.deadline_at)}. Missed answers are "
        + (
            "removed (restorable for " + format_duration(dt.timedelta(seconds=campaign.grace_seconds)) + ")."
            if campaign.on_missed == "remediate"
            else "escalated."
        )
        + " `/warden attest status` shows the progress."
    )
