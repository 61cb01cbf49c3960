"""Start-up state comparison: drift that exists even when its audit-log entry is gone.

Two kinds, turned into synthetic events (``source="state"``) so the same rules decide
them and the same planner reverts them:

- a member holding a JIT-managed role with no active grant → ``member_role_update``
  adding that role (the default rule ``jit-role-by-hand``);
- a JIT-managed role whose permissions exceed its scope's ``permission_ceiling`` →
  ``role_update`` gaining the excess (``role-above-ceiling``).
"""

from __future__ import annotations

import datetime as dt

from bot.audit.classify import Classifier
from bot.audit.events import AuditEvent
from bot.audit.ports import GrantLedger, GuildSnapshot
from bot.policy import permission_names, permissions_from_names


async def state_drift_events(
    guild_id: int, classifier: Classifier, snapshot: GuildSnapshot, grants: GrantLedger, *, now: dt.datetime
) -> list[AuditEvent]:
    gp = classifier.guild_policy(guild_id)
    out: list[AuditEvent] = []
    for role_id, scopes in sorted(classifier.role_scopes(guild_id, gp).items()):
        for member_id in sorted(snapshot.members_with_role(guild_id, role_id) or ()):
            if member_id == classifier.warden_user_id:
                continue
            if await grants.sanctioning_grant(guild_id, member_id, "role", role_id) is None:
                out.append(
                    AuditEvent(
                        entry_id=0,
                        guild_id=guild_id,
                        action="member_role_update",
                        target_id=member_id,
                        target_type="member",
                        roles_added=(role_id,),
                        created_at=now,
                        source="state",
                    )
                )
        current = classifier.facts.role_permissions(guild_id, role_id)
        ceilings = [s.permission_ceiling for s in scopes if s.permission_ceiling is not None]
        if current is None or not ceilings:
            continue
        allowed = 0
        for ceiling in ceilings:
            allowed |= permissions_from_names(ceiling).value
        excess = current & ~allowed
        if excess:
            out.append(
                AuditEvent(
                    entry_id=0,
                    guild_id=guild_id,
                    action="role_update",
                    target_id=role_id,
                    target_type="role",
                    permissions_before=current & ~excess,
                    permissions_after=current,
                    permissions_gained=frozenset(permission_names(excess)),
                    created_at=now,
                    source="state",
                )
            )
    return out
