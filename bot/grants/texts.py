"""What grant holders are told in DMs: the words live next to the grant rules."""

from __future__ import annotations

from bot.db.models import AccessRequest, Grant, GrantStatus
from bot.durations import discord_ts as ts


def grant_target_text(grant: Grant) -> str:
    if grant.kind == "token":
        return "an access token"
    return f"<@&{grant.target_id}>" if grant.kind == "role" else f"<#{grant.target_id}>"


def grant_applied_dm(grant: Grant, guild_name: str, approvers: list[int]) -> str:
    who = ", ".join(f"<@{a}>" for a in approvers) or (
        "break-glass (no approval)" if grant.breakglass else "automatic approval"
    )
    return (
        f"**{grant.scope_id}** is yours in **{guild_name}** ({grant_target_text(grant)}) until "
        f"{ts(grant.expires_at)} ({ts(grant.expires_at, 'R')}). Approved by {who}. Grant #{grant.id}."
    )


def grant_failed_dm(grant: Grant, req: AccessRequest) -> str:
    return (
        f"Your request #{req.id} for **{grant.scope_id}** was approved, but Warden could not apply "
        f"it, so you have no new access: {grant.last_error}. A server admin has been told in the "
        "governance channel."
    )


def grant_ended_dm(grant: Grant) -> str:
    if grant.status == GrantStatus.EXPIRED:
        return f"Your access **{grant.scope_id}** ({grant_target_text(grant)}) has ended. Grant #{grant.id} expired."
    by = f" by <@{grant.ended_by}>" if grant.ended_by and grant.ended_by != grant.subject_id else ""
    if grant.ended_by is None and grant.end_reason and grant.status == GrantStatus.REVOKED:
        return (
            f"Your access **{grant.scope_id}** ({grant_target_text(grant)}) was ended early by Warden: "
            f"{grant.end_reason} Grant #{grant.id}. Request it again if you still need it."
        )
    return (
        f"Your access **{grant.scope_id}** ({grant_target_text(grant)}) was revoked{by}. Grant #{grant.id}."
    )


def grant_expiring_dm(grant: Grant) -> str:
    return (
        f"Reminder: your access **{grant.scope_id}** (grant #{grant.id}) ends {ts(grant.expires_at, 'R')}, at "
        f"{ts(grant.expires_at)}. Need longer? `/jit extend grant:{grant.id}`."
    )


def grant_extended_dm(grant: Grant) -> str:
    return f"Grant #{grant.id} (**{grant.scope_id}**) was extended; it now ends {ts(grant.expires_at)}."


def token_delivery_dm(grant: Grant, guild_name: str, token: str, token_id: int) -> str:
    """The one message that ever shows the token (it is not stored, logged or shown again)."""
    return (
        f"**{grant.scope_id}** in **{guild_name}**: your access token (token {token_id}, grant #{grant.id}), "
        f"valid until {ts(grant.expires_at)} ({ts(grant.expires_at, 'R')}):\n"
        f"||{token}||\n"
        "Warden shows it **only this once** and keeps only a hash: copy it now into the system that needs "
        "it, then delete this message. It ends with your grant (`/jit revoke grant:"
        f"{grant.id}` ends both); a token left unused is revoked as dormant."
    )


def token_revoked_dm(scope_id: str, token_id: int, why: str) -> str:
    return f"Your access token {token_id} for **{scope_id}** was revoked: {why}. Request a new one if you still need it."
