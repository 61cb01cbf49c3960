"""What people see of the inventory: the paginated `/warden inventory` page and the owner DM.

Custom ids are written here once; the buttons (bot/inventory/buttons.py) match them by template,
so a page or a DM posted before a restart keeps working, and every press re-reads the database.
"""

from __future__ import annotations

import discord

from bot.approvals.cards import persistent_view
from bot.durations import discord_ts as ts
from bot.escape import user_text
from bot.inventory.service import InventoryItem, InventoryPage

PER_PAGE = 5
PAGE_TEMPLATE = r"warden:inv:(?P<guild_id>[0-9]{1,20}):(?P<page>[0-9]{1,6})"
OWNER_TEMPLATE = (
    r"warden:own:(?P<guild_id>[0-9]{1,20}):(?P<identity_id>[0-9]{1,18}):(?P<owner_id>[0-9]{1,20})"
)
ORANGE, RED, GREEN = 0xE67E22, 0xE74C3C, 0x2ECC71

SOURCE_TEXT = {
    "explicit": "set by an admin",
    "inferred": "inferred from the audit log, not yet confirmed",
    "confirmed": "confirmed by the owner",
}


def page_id(guild_id: int, page: int) -> str:
    return f"warden:inv:{guild_id}:{page}"


def owner_confirm_id(guild_id: int, identity_id: int, owner_id: int) -> str:
    return f"warden:own:{guild_id}:{identity_id}:{owner_id}"


def owner_text(item: InventoryItem) -> str:
    if item.owner_id is None:
        return "⚠️ **no owner** — set one with `/warden owner set`"
    return f"<@{item.owner_id}> ({SOURCE_TEXT.get(item.owner_source or '', item.owner_source or '')})"


def item_title(item: InventoryItem) -> str:
    return f"#{item.id} · {item.kind} · {user_text(item.name)}"


def inventory_page(page: InventoryPage, guild_id: int) -> tuple[discord.Embed, discord.ui.View]:
    """One page, riskiest first: each item with its score, the reasons for it, and its owner."""
    unowned = sum(1 for i in page.items if i.flagged_unowned)
    embed = discord.Embed(
        title=f"Non-human identity inventory — page {page.page} of {page.pages}",
        colour=RED if unowned else ORANGE if page.items else GREEN,
        description=(
            f"{page.total} bots, webhooks, integrations and tokens, riskiest first."
            if page.total
            else "Warden has recorded no bots, webhooks, integrations or tokens in this server."
        ),
    )
    for item in page.items:
        reasons = "\n".join(f"+{r.points} {r.text}" for r in item.risk.reasons) or "no risk factors"
        seen = f"\nlast activity {ts(item.last_activity_at)}" if item.last_activity_at else ""
        embed.add_field(
            name=f"{item_title(item)} — risk {item.risk.score}"[:256],
            value=f"Owner: {owner_text(item)}\n{reasons}{seen}"[:1024],
            inline=False,
        )
    embed.set_footer(text="Scores and reasons: docs/inventory.md · export: warden inventory export")
    # Distinct ids even when disabled (page 0 and pages+1 are never served).
    return embed, persistent_view(
        discord.ui.Button(
            label="◀ Previous",
            style=discord.ButtonStyle.secondary,
            disabled=page.page <= 1,
            custom_id=page_id(guild_id, page.page - 1),
        ),
        discord.ui.Button(
            label="Next ▶",
            style=discord.ButtonStyle.secondary,
            disabled=page.page >= page.pages,
            custom_id=page_id(guild_id, page.page + 1),
        ),
    )


def owner_prompt(item: InventoryItem, guild_name: str, *, done: bool = False) -> tuple[str, discord.ui.View]:
    """The DM asking the member the audit log names to confirm they own an identity."""
    how = "created it" if item.kind == "webhook" else "added it"
    text = (
        f"Warden's inventory in **{user_text(guild_name)}** names you as the owner of {item.kind} "
        f"**{user_text(item.name)}** (item #{item.id}): the audit log says you {how}. "
        "Owners answer for what it can do and are asked to attest it is still needed. "
        "If that is you, confirm below; if not, tell a server admin (`/warden owner set`)."
    )
    if done:
        text = f"You confirmed you own {item.kind} **{user_text(item.name)}** (item #{item.id}). Thank you."
    assert item.owner_id is not None
    return text, persistent_view(
        discord.ui.Button(
            label="Yes, I own it",
            style=discord.ButtonStyle.success,
            disabled=done,
            custom_id=owner_confirm_id(item.guild_id, item.id, item.owner_id),
        )
    )
