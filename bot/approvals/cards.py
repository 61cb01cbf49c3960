"""The approval and break-glass review cards, and the custom ids their buttons carry.

A button carries only a kind and a record id in its custom id; bot/approvals/buttons.py
matches them with DynamicItem templates and re-reads the database, so a card keeps
working after a restart. Views built here are never stored by discord.py (they are
stopped before sending): the templates do the dispatch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import discord

from bot.db.models import AccessRequest, Grant, GrantStatus, RequestKind, RequestStatus
from bot.durations import discord_ts as ts
from bot.durations import format_duration
from bot.escape import user_text
from bot.policy import Scope

# Each custom id is written here once: its format and the template that matches it.
VOTE_TEMPLATE = r"warden:vote:(?P<request_id>[0-9]{1,18}):(?P<choice>approve|deny)"
REVIEW_TEMPLATE = r"warden:review:(?P<grant_id>[0-9]{1,18})"
DENY_MODAL_PREFIX = "warden:deny:"


def vote_id(request_id: int, choice: str) -> str:
    return f"warden:vote:{request_id}:{choice}"


def review_id(grant_id: int) -> str:
    return f"warden:review:{grant_id}"


def deny_modal_id(request_id: int) -> str:
    return f"{DENY_MODAL_PREFIX}{request_id}"


BLUE = discord.Colour.blurple()
GREEN = discord.Colour.green()
RED = discord.Colour.red()
GREY = discord.Colour.light_grey()
ORANGE = discord.Colour.orange()


def _status_line(req: AccessRequest, grant: Grant | None) -> tuple[str, discord.Colour]:
    if req.status == RequestStatus.PENDING:
        return f"Waiting for approval — expires {ts(req.pending_until, 'R')}", BLUE
    if req.status == RequestStatus.DENIED:
        return f"Denied by <@{req.decided_by}>: {user_text(req.decision_note, 'no reason given')}", RED
    if req.status == RequestStatus.EXPIRED:
        return "Expired — nobody decided in time", GREY
    if req.status == RequestStatus.CANCELLED:
        return "Withdrawn" + (f" ({user_text(req.decision_note)})" if req.decision_note else ""), GREY
    # approved
    if req.kind == RequestKind.EXTENSION:
        return "Approved — the grant was extended", GREEN
    if grant is None:
        return "Approved", GREEN
    return {
        GrantStatus.APPROVED: ("Approved — applying in Discord…", GREEN),
        GrantStatus.APPLYING: ("Approved — applying in Discord…", GREEN),
        GrantStatus.ACTIVE: (f"Granted until {ts(grant.expires_at)} ({ts(grant.expires_at, 'R')})", GREEN),
        GrantStatus.REMOVING: ("Ending — removal from Discord in progress", ORANGE),
        GrantStatus.EXPIRED: (f"Expired {ts(grant.ended_at)} — access removed", GREY),
        GrantStatus.REVOKED: (f"Revoked by <@{grant.ended_by}> {ts(grant.ended_at)}", GREY),
        GrantStatus.FAILED: (f"Failed — nothing was granted: {grant.last_error or 'Discord refused'}", RED),
    }.get(GrantStatus(grant.status), ("Approved", GREEN))


def persistent_view(*items: discord.ui.Item[discord.ui.View]) -> discord.ui.View:
    """A message's buttons (or select). Clicks are dispatched through the DynamicItem templates (by
    custom id, so they work after a restart), never through this instance."""
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    view.stop()
    return view


#: The label and style of each choice on an Approve / Deny card.
CHOICES = {"approve": ("Approve", discord.ButtonStyle.success), "deny": ("Deny", discord.ButtonStyle.danger)}


def choice_button(choice: str, custom_id: str, *, disabled: bool = False) -> discord.ui.Button[Any]:
    """The Approve or Deny button of a card (any choice but ``approve`` is Deny), carrying ``custom_id``."""
    label, style = CHOICES["approve" if choice == "approve" else "deny"]
    return discord.ui.Button(label=label, style=style, disabled=disabled, custom_id=custom_id)


def approve_deny_view(custom_id: Callable[[str], str], *, pending: bool) -> discord.ui.View:
    """A card's Approve and Deny buttons, ``custom_id(choice)`` on each; clickable while ``pending``."""
    return persistent_view(*(choice_button(c, custom_id(c), disabled=not pending) for c in CHOICES))


def request_card(
    req: AccessRequest,
    scope: Scope,
    approvers_text: str,
    grant: Grant | None = None,
    requester_roles: str | None = None,
) -> tuple[discord.Embed, discord.ui.View]:
    status, colour = _status_line(req, grant)
    title = {
        RequestKind.EXTENSION: f"Extension request #{req.id} — {scope.id}",
        RequestKind.BREAKGLASS: f"Break-glass #{req.id} — {scope.id}",
    }.get(RequestKind(req.kind), f"Access request #{req.id} — {scope.id}")
    embed = discord.Embed(title=title, colour=colour, description=scope.description or None)
    embed.add_field(name="Requester", value=f"<@{req.requester_id}>")
    if requester_roles is not None:
        embed.add_field(name="Requester's roles", value=requester_roles[:1024] or "none")
    subject = f"<@{req.subject_id}>" + (" (bot)" if req.subject_is_bot else "")
    embed.add_field(name="Subject", value=subject)
    embed.add_field(name="Duration", value=format_duration(dt.timedelta(seconds=req.duration_seconds)))
    if req.extends_grant_id:
        embed.add_field(name="Extends", value=f"grant #{req.extends_grant_id}")
    embed.add_field(name="Reason", value=user_text(req.reason), inline=False)
    approvals = sum(1 for v in req.votes if v.approve)
    embed.add_field(name="Who may approve", value=approvers_text)
    embed.add_field(name="Approvals", value=f"{approvals} of {req.approvals_required} needed")
    if req.votes:
        lines = [
            f"{'✅ approved' if v.approve else '❌ denied'} by <@{v.approver_id}> {ts(v.created_at)}"
            + (f" — {user_text(v.reason)}" if v.reason else "")
            for v in req.votes
        ]
        embed.add_field(name="Votes", value="\n".join(lines)[:1024], inline=False)
    embed.add_field(name="Status", value=status, inline=False)
    embed.set_footer(text=f"request #{req.id}" + (f" · grant #{grant.id}" if grant else ""))
    pending = req.status == RequestStatus.PENDING
    return embed, approve_deny_view(lambda choice: vote_id(req.id, choice), pending=pending)


def review_card(grant: Grant, reason: str, approvers_text: str) -> tuple[discord.Embed, discord.ui.View]:
    done = grant.review_acknowledged_at is not None
    embed = discord.Embed(
        title=f"Break-glass review — grant #{grant.id} ({grant.scope_id})",
        colour=GREY if done else ORANGE,
        description=(
            f"<@{grant.subject_id}> took `{grant.scope_id}` without approval. "
            "An approver must review this use."
        ),
    )
    embed.add_field(name="Reason", value=user_text(reason), inline=False)
    embed.add_field(name="Until", value=ts(grant.expires_at))
    embed.add_field(name="Reviewers", value=approvers_text)
    embed.add_field(
        name="Review",
        value=f"Reviewed by <@{grant.review_acknowledged_by}> {ts(grant.review_acknowledged_at)}"
        if done
        else "Not yet reviewed",
        inline=False,
    )
    return embed, persistent_view(
        discord.ui.Button(
            label="Acknowledge review",
            style=discord.ButtonStyle.primary,
            disabled=done,
            custom_id=review_id(grant.id),
        )
    )


def approver_reminder(req: AccessRequest) -> str:
    """Posted as a reply to the card half-way through the pending time."""
    approvals = sum(1 for v in req.votes if v.approve)
    missing = max(req.approvals_required - approvals, 1)
    return (
        f"Reminder: request #{req.id} (`{req.scope_id}` for <@{req.subject_id}>) still needs {missing} "
        f"approval{'s' if missing != 1 else ''}; it expires {ts(req.pending_until, 'R')}."
    )
