"""The Discord mutations that revert an audit event, as data.

:func:`plan_revert` is pure: from an event and what the classifier found, it lists
the mutations that undo the change (``actions``) and the ones that put it back if
approvers approve (``reapply``). A :class:`~bot.audit.ports.Reverter` performs them.

Warden never takes away what it did not give by mistake: the planner never removes
a role or an overwrite that an active grant sanctions, and a role edit only clears
the bits the event added (never the role's other permissions), so later sanctioned
changes survive a revert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, get_args

from bot.audit.events import AuditEvent
from bot.policy import permission_names


@dataclass(frozen=True)
class _Action:
    """One mutation in one guild; ``kind`` names it in the stored JSON."""

    kind: ClassVar[str]
    #: What it does, for the governance narrative (``str.format`` over the fields).
    says: ClassVar[str] = ""
    guild_id: int

    def describe(self) -> str:
        return self.says.format(**asdict(self))


@dataclass(frozen=True)
class _MemberRole(_Action):
    member_id: int
    role_id: int


@dataclass(frozen=True)
class RemoveMemberRole(_MemberRole):
    kind = "remove_member_role"
    says = "remove <@&{role_id}> from <@{member_id}>"


@dataclass(frozen=True)
class AddMemberRole(_MemberRole):
    kind = "add_member_role"
    says = "give <@&{role_id}> back to <@{member_id}>"


@dataclass(frozen=True)
class EditRolePermissions(_Action):
    """Clear ``remove_bits`` and set ``add_bits`` on the role's *current* permissions."""

    kind = "edit_role_permissions"
    role_id: int
    remove_bits: int = 0
    add_bits: int = 0

    def apply_to(self, current: int) -> int:
        return (current & ~self.remove_bits) | self.add_bits

    def describe(self) -> str:
        parts = []
        if self.remove_bits:
            parts.append("remove " + ", ".join(permission_names(self.remove_bits)))
        if self.add_bits:
            parts.append("restore " + ", ".join(permission_names(self.add_bits)))
        return f"on <@&{self.role_id}>: " + "; ".join(parts or ["no change"])


@dataclass(frozen=True)
class _Overwrite(_Action):
    channel_id: int
    target_id: int


@dataclass(frozen=True)
class DeleteOverwrite(_Overwrite):
    kind = "delete_overwrite"
    says = "delete the overwrite for {target_id} on <#{channel_id}>"


@dataclass(frozen=True)
class SetOverwrite(_Overwrite):
    kind = "set_overwrite"
    target_type: Literal["role", "member"]
    allow: int
    deny: int

    def describe(self) -> str:
        allow = ", ".join(permission_names(self.allow)) or "nothing"
        return f"set the overwrite for {self.target_id} on <#{self.channel_id}> back to allow {allow}"


@dataclass(frozen=True)
class DeleteWebhook(_Action):
    kind = "delete_webhook"
    webhook_id: int
    channel_id: int | None = None

    def describe(self) -> str:
        where = f" in <#{self.channel_id}>" if self.channel_id else ""
        return f"delete webhook {self.webhook_id}{where}"


@dataclass(frozen=True)
class SetGuildSetting(_Action):
    kind = "set_guild_setting"
    says = "set the server's {key} back to {value}"
    key: str
    value: int


RevertAction = (
    RemoveMemberRole
    | AddMemberRole
    | EditRolePermissions
    | DeleteOverwrite
    | SetOverwrite
    | DeleteWebhook
    | SetGuildSetting
)

_KINDS: dict[str, type[RevertAction]] = {cls.kind: cls for cls in get_args(RevertAction)}


def action_to_json(action: RevertAction) -> dict[str, Any]:
    return {**asdict(action), "kind": action.kind}


def action_from_json(data: dict[str, Any]) -> RevertAction:
    fields = dict(data)
    return _KINDS[fields.pop("kind")](**fields)


@dataclass(frozen=True)
class RevertPlan:
    """What undoes the change, what re-applies it if approved, and what cannot be undone."""

    actions: tuple[RevertAction, ...] = ()
    reapply: tuple[RevertAction, ...] = ()
    not_revertible: str | None = None

    def describe(self) -> list[str]:
        return [a.describe() for a in self.actions]


@dataclass(frozen=True)
class Quarantine:
    """A bot's current roles and its own managed role, for quarantining it."""

    role_ids: tuple[int, ...] = ()
    managed_role_id: int | None = None
    managed_role_permissions: int = 0


@dataclass(frozen=True)
class PlanInput:
    """What the classifier found that the planner needs (all ids in the event's guild)."""

    #: Roles the decision is about (added or removed by the event) — never sanctioned ones.
    roles: frozenset[int] = frozenset()
    #: Roles an active grant gives the member: never removed.
    sanctioned_roles: frozenset[int] = frozenset()
    #: The member's overwrite on the channel is an active channel grant: never touched.
    sanctioned_overwrite: bool = False
    quarantine: Quarantine | None = None


def _inverse(actions: Iterable[RevertAction]) -> tuple[RevertAction, ...]:
    out: list[RevertAction] = []
    for a in actions:
        if isinstance(a, RemoveMemberRole):
            out.append(AddMemberRole(a.guild_id, a.member_id, a.role_id))
        elif isinstance(a, AddMemberRole):
            out.append(RemoveMemberRole(a.guild_id, a.member_id, a.role_id))
        elif isinstance(a, EditRolePermissions):
            out.append(
                EditRolePermissions(a.guild_id, a.role_id, remove_bits=a.add_bits, add_bits=a.remove_bits)
            )
    return tuple(out)


def plan_revert(event: AuditEvent, found: PlanInput) -> RevertPlan:
    """The mutations that undo ``event`` (for ``block`` and ``approve`` outcomes)."""
    gid = event.guild_id
    if gid is None or not event.classified:
        return RevertPlan(not_revertible="the event could not be classified")
    action = event.action
    if action == "member_role_update" and event.target_id is not None:
        member = event.target_id
        undo: list[RevertAction] = [
            RemoveMemberRole(gid, member, r)
            for r in event.roles_added
            if r in found.roles and r not in found.sanctioned_roles
        ]
        undo += [AddMemberRole(gid, member, r) for r in event.roles_removed if r in found.roles]
        if not undo:
            return RevertPlan(
                not_revertible="no role in the change may be taken back (sanctioned by an active grant, or only removed)"
            )
        return RevertPlan(tuple(undo), _inverse(undo))
    if action in ("role_update", "role_create") and event.target_id is not None:
        before, after = event.permissions_before or 0, event.permissions_after or 0
        added, lost = after & ~before, before & ~after
        if not added and not lost:
            return RevertPlan(not_revertible="the role's permissions did not change")
        edit = EditRolePermissions(gid, event.target_id, remove_bits=added, add_bits=lost)
        return RevertPlan((edit,), _inverse([edit]))
    if action.startswith("overwrite_") and event.channel_id and event.overwrite_target_id:
        if found.sanctioned_overwrite:
            return RevertPlan(not_revertible="the overwrite is an active channel grant")
        kind = event.overwrite_target_type or "role"
        ch, tgt = event.channel_id, event.overwrite_target_id
        after_ow = SetOverwrite(gid, ch, tgt, kind, event.permissions_after or 0, event.deny_after or 0)
        before_ow = SetOverwrite(gid, ch, tgt, kind, event.permissions_before or 0, event.deny_before or 0)
        if action == "overwrite_create":
            return RevertPlan((DeleteOverwrite(gid, ch, tgt),), (after_ow,))
        if action == "overwrite_update":
            return RevertPlan((before_ow,), (after_ow,))
        return RevertPlan((before_ow,), (DeleteOverwrite(gid, ch, tgt),))
    if action == "webhook_create" and event.target_id is not None:
        # A deleted webhook cannot be re-created with its URL; approval lets its owner make a new one.
        return RevertPlan((DeleteWebhook(gid, event.target_id, event.channel_id),))
    if action == "bot_add" and found.quarantine:
        return _quarantine(gid, event.target_id, found.quarantine)
    if action == "guild_update":
        undo = []
        for key in ("mfa_level", "verification_level"):
            change = event.change(key)
            if change is not None and isinstance(change.before, int) and not isinstance(change.before, bool):
                undo.append(SetGuildSetting(gid, key, change.before))
        if undo:
            redo = [
                SetGuildSetting(gid, a.key, c.after)
                for a in undo
                if isinstance(a, SetGuildSetting)
                and (c := event.change(a.key)) is not None
                and isinstance(c.after, int)
            ]
            return RevertPlan(tuple(undo), tuple(redo))
        return RevertPlan(not_revertible="no setting Warden can restore changed")
    return RevertPlan(not_revertible=f"Warden cannot undo a {action.replace('_', ' ')} automatically")


def _quarantine(gid: int, bot_id: int | None, q: Quarantine) -> RevertPlan:
    if bot_id is None:
        return RevertPlan(not_revertible="the event names no bot")
    undo: list[RevertAction] = [
        RemoveMemberRole(gid, bot_id, r) for r in q.role_ids if r != q.managed_role_id
    ]
    # A bot's own managed role cannot be removed from it: strip its permissions instead.
    if q.managed_role_id is not None and q.managed_role_permissions:
        undo.append(EditRolePermissions(gid, q.managed_role_id, remove_bits=q.managed_role_permissions))
    if not undo:
        return RevertPlan(not_revertible="the bot holds no role Warden can take away")
    return RevertPlan(tuple(undo), _inverse(undo))
