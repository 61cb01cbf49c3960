"""Who may request, who may approve, and what a policy name or id points at in a guild.

Policy refers to roles and channels by name or id; these helpers resolve them against
the live guild so a renamed role by id, or a role by name, both work.
"""

from __future__ import annotations

from collections.abc import Iterable

import discord

from bot.policy import Approver, Scope

EVERYONE = "@everyone"


def _matches_name(name: str, ref: str) -> bool:
    return name.casefold() == ref.removeprefix("@").casefold()


def _as_id(ref: str | int) -> int | None:
    if isinstance(ref, int):
        return ref
    return int(ref) if ref.isdigit() else None


def resolve_role(guild: discord.Guild, ref: str | int | None) -> discord.Role | None:
    if ref is None or ref == "":
        return None
    rid = _as_id(ref)
    if rid is not None:
        return guild.get_role(rid)
    return next((r for r in guild.roles if _matches_name(r.name, str(ref))), None)


def resolve_channel(guild: discord.Guild, ref: str | int | None) -> discord.abc.GuildChannel | None:
    if ref is None or ref == "":
        return None
    cid = _as_id(ref)
    if cid is not None:
        return guild.get_channel(cid)
    name = str(ref).removeprefix("#")
    return next((c for c in guild.channels if c.name.casefold() == name.casefold()), None)


def _holds(member: discord.Member, ref: str | int, guild: discord.Guild) -> bool:
    if ref == EVERYONE:
        return True
    rid = _as_id(ref)
    if rid is not None and (rid == member.id or member.get_role(rid) is not None):
        return True
    role = resolve_role(guild, ref) if rid is None else None
    return role is not None and member.get_role(role.id) is not None


def may_request(scope: Scope, member: discord.Member) -> bool:
    return any(_holds(member, ref, member.guild) for ref in scope.requesters)


def approver_matches(approver: Approver, member: discord.Member) -> bool:
    if approver.kind == "user":
        return member.id == int(approver.ref)
    if approver.kind == "role":
        role = resolve_role(member.guild, approver.ref)
        return role is not None and member.get_role(role.id) is not None
    return _holds(member, approver.ref, member.guild)  # a bare id: a role or a user


def may_approve(scope: Scope, member: discord.Member) -> bool:
    return any(approver_matches(a, member) for a in scope.approvers)


def is_member_of(member: discord.Member, ref: str | int) -> bool:
    return _holds(member, ref, member.guild)


def describe_refs(guild: discord.Guild, refs: Iterable[str | int | Approver]) -> str:
    """Human text for a list of roles/users, as mentions (cards send with no pings)."""
    out: list[str] = []
    for ref in refs:
        kind = "any"
        if isinstance(ref, Approver):
            kind, ref = ref.kind, ref.ref
        if ref == EVERYONE:
            out.append("everyone")
            continue
        if kind == "user":
            out.append(f"<@{ref}>")
            continue
        role = resolve_role(guild, ref)
        if role is not None:
            out.append(role.mention)
        elif _as_id(ref) is not None:
            out.append(f"<@{ref}>")
        else:
            out.append(f"@{ref} (no such role)")
    return ", ".join(out) or "nobody"
