"""Grantability: who may request or approve, what a policy name or id points at, and
whether Discord would accept a grant (role hierarchy, managed roles, ceilings, permissions).

Requests check a scope here before anything is written; /warden doctor runs the same
checks for every scope. Policy refers to roles and channels by name or id; these helpers
resolve them against the live guild so a renamed role by id, or a role by name, both work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import discord

from bot.policy import Approver, Scope, permission_names, permissions_from_names
from bot.services.errors import CannotGrant

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
    # A name must point at exactly one role: anyone with Manage Roles can create a look-alike, and
    # picking "the first match" would hand them the policy's trust. Ambiguous names match nothing.
    matches = named_roles(guild, ref)
    return matches[0] if len(matches) == 1 else None


def named_roles(guild: discord.Guild, ref: str | int) -> list[discord.Role]:
    """Every role a policy name could mean (names compare without case, as people read them)."""
    return [r for r in guild.roles if _matches_name(r.name, str(ref))]


def ambiguous_names(guild: discord.Guild, refs: Iterable[str | int]) -> list[str]:
    """Policy names that match more than one role here: nobody is matched by them until fixed."""
    out = []
    for ref in refs:
        if ref == EVERYONE or _as_id(ref) is not None:
            continue
        matches = named_roles(guild, ref)
        if len(matches) > 1:
            ids = ", ".join(str(r.id) for r in matches)
            out.append(f"`{ref}` matches {len(matches)} roles ({ids}); write the role's id in the policy")
    return out


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


@dataclass(frozen=True)
class GrantPlan:
    """What a grant would change in Discord: a role, or a member overwrite on a channel."""

    kind: str  # "role" | "channel" | "token"
    target_id: int  # the role or channel; 0 for a token (nothing changes in Discord)
    allow_bits: int
    deny_bits: int


def check_grantable(guild: discord.Guild, scope: Scope) -> GrantPlan:
    """Would Discord accept this grant? Raises CannotGrant saying why not (/warden doctor shows it too)."""
    me = guild.me
    if scope.kind == "token":
        return GrantPlan("token", 0, 0, 0)  # an access token for a system outside Discord
    if scope.kind == "role":
        role = resolve_role(guild, scope.role)
        if role is None:
            raise CannotGrant(
                f"`{scope.id}` names the role `{scope.role}`, which does not exist in this server. "
                "A server admin must fix the policy or create the role."
            )
        if role.managed or role.is_default():
            raise CannotGrant(
                f"{role.mention} is managed by an integration (or is @everyone) and cannot be given to "
                "anyone. A server admin must point the scope at an ordinary role."
            )
        if not me.guild_permissions.manage_roles:
            raise CannotGrant(
                "Warden lacks the Manage Roles permission, so Discord would refuse (50013). "
                "A server admin must give Warden's role Manage Roles."
            )
        if role >= me.top_role:
            raise CannotGrant(
                f"{role.mention} is not below Warden's highest role ({me.top_role.mention}), so Discord "
                "would refuse (50013). A server admin must move Warden's role above it."
            )
        if scope.permission_ceiling is not None:
            ceiling = permissions_from_names(scope.permission_ceiling).value
            extra = permission_names(role.permissions.value & ~ceiling)
            if extra:
                raise CannotGrant(
                    f"{role.mention} carries permissions beyond the scope's ceiling: {', '.join(extra)}. "
                    "A server admin must remove them from the role or raise the ceiling."
                )
        return GrantPlan("role", role.id, 0, 0)
    channel = resolve_channel(guild, scope.channel)
    if channel is None:
        raise CannotGrant(
            f"`{scope.id}` names the channel `{scope.channel}`, which does not exist here. "
            "A server admin must fix the policy."
        )
    perms = channel.permissions_for(me)
    if not (perms.manage_roles or perms.administrator):
        raise CannotGrant(
            f"Warden cannot edit permissions in {channel.mention} (it needs Manage Permissions there). "
            "A server admin must allow it."
        )
    allow = permissions_from_names(scope.allow)
    deny = permissions_from_names(scope.deny)
    missing = permission_names(allow.value & ~perms.value)
    if missing and not perms.administrator:
        raise CannotGrant(
            f"Discord only lets Warden grant permissions it has itself in {channel.mention}; "
            f"it lacks: {', '.join(missing)}."
        )
    return GrantPlan("channel", channel.id, allow.value, deny.value)
