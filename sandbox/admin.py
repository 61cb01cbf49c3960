"""Acting as a server admin: changes that emit the gateway events and audit-log entries Discord would."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import gateway as gw
from .models import (
    SChannel,
    SGuild,
    SIntegration,
    SMember,
    SRole,
    SUser,
    SWebhook,
    integration_payload,
    member_payload,
    permission_value,
    role_payload,
)

if TYPE_CHECKING:
    from .server import SandboxDiscord


class Admin:
    """``sb.admin``: a human (the guild owner unless ``actor=`` says otherwise) changing the server."""

    def __init__(self, sandbox: SandboxDiscord) -> None:
        self.sb = sandbox

    @staticmethod
    def _actor(g: SGuild, actor: SMember | SUser | None) -> int:
        if actor is None:
            assert g.owner is not None
            return g.owner.id
        return actor.id

    @staticmethod
    def _role(g: SGuild, role: SRole | str) -> SRole:
        return role if isinstance(role, SRole) else g.role(role)

    @staticmethod
    def _member(g: SGuild, member: SMember | SUser | str) -> SMember:
        if isinstance(member, SMember):
            return member
        return g.member(member.id if isinstance(member, SUser) else member)

    async def add_role(
        self,
        g: SGuild,
        member: SMember | SUser | str,
        role: SRole | str,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> None:
        self.sb._apply_member_roles(
            g,
            self._member(g, member),
            [self._role(g, role)],
            [],
            actor_id=self._actor(g, actor),
            reason=reason,
        )

    async def remove_role(
        self,
        g: SGuild,
        member: SMember | SUser | str,
        role: SRole | str,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> None:
        self.sb._apply_member_roles(
            g,
            self._member(g, member),
            [],
            [self._role(g, role)],
            actor_id=self._actor(g, actor),
            reason=reason,
        )

    async def set_role_permissions(
        self,
        g: SGuild,
        role: SRole | str,
        permissions: Iterable[str] | int,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> None:
        self.sb._set_role_permissions(
            g,
            self._role(g, role),
            permission_value(permissions),
            actor_id=self._actor(g, actor),
            reason=reason,
        )

    async def create_role(
        self,
        g: SGuild,
        name: str,
        permissions: Iterable[str] | int | None = None,
        position: int | None = None,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> SRole:
        role = self.sb._create_role(g, name, permissions, position=position)
        self.sb._audit(
            g,
            30,
            self._actor(g, actor),
            role.id,
            [
                {"key": "name", "new_value": role.name},
                {"key": "permissions", "new_value": str(role.permissions)},
            ],
            reason=reason,
        )
        return role

    async def delete_role(
        self, g: SGuild, role: SRole | str, actor: SMember | SUser | None = None, reason: str | None = None
    ) -> None:
        r = self._role(g, role)
        g.roles.remove(r)
        for m in g.members:
            if r in m.roles:
                m.roles.remove(r)
        self.sb.gateway.dispatch(
            "GUILD_ROLE_DELETE", {"guild_id": str(g.id), "role_id": str(r.id)}, gw.GUILDS
        )
        self.sb._audit(
            g,
            32,
            self._actor(g, actor),
            r.id,
            [
                {"key": "name", "old_value": r.name},
                {"key": "permissions", "old_value": str(r.permissions)},
            ],
            reason=reason,
        )

    async def add_bot(
        self,
        g: SGuild,
        name: str,
        permissions: Iterable[str] | int | None = None,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> SMember:
        """Invite another bot: integration, managed role (if it asks for permissions), member, audit entries."""
        sb = self.sb
        actor_id = self._actor(g, actor)
        user = sb.user(name, bot=True, dms_open=False)
        perms = permission_value(permissions)
        integration = SIntegration(
            sb.snowflake(),
            g.id,
            name,
            account=user,
            application_id=user.id,
            bot=user,
            user=sb.users.get(actor_id),
        )
        g.integrations.append(integration)
        roles: list[SRole] = []
        if perms:
            role = sb._create_role(g, name, perms, managed=True, bot_id=user.id)
            role.integration_id = None
            integration.role_id = role.id
            roles.append(role)
        member = SMember(user, g.id, roles=roles, joined_at=sb._now())
        g.members.append(member)
        sb.gateway.dispatch(
            "INTEGRATION_CREATE",
            {**integration_payload(integration), "guild_id": str(g.id)},
            gw.GUILD_INTEGRATIONS,
        )
        sb.gateway.dispatch("GUILD_INTEGRATIONS_UPDATE", {"guild_id": str(g.id)}, gw.GUILD_INTEGRATIONS)
        sb.gateway.dispatch(
            "GUILD_MEMBER_ADD", {**member_payload(member), "guild_id": str(g.id)}, gw.GUILD_MEMBERS
        )
        sb._audit(
            g,
            80,
            actor_id,
            integration.id,
            [
                {"key": "type", "new_value": "discord"},
                {"key": "name", "new_value": name},
            ],
            reason=reason,
        )
        sb._audit(g, 28, actor_id, user.id, reason=reason)
        if roles:
            sb._audit(
                g,
                30,
                actor_id,
                roles[0].id,
                [
                    {"key": "name", "new_value": name},
                    {"key": "permissions", "new_value": str(perms)},
                ],
                reason=reason,
            )
        return member

    async def remove_integration(
        self,
        g: SGuild,
        integration: SIntegration | str,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> None:
        i = (
            integration
            if isinstance(integration, SIntegration)
            else next(x for x in g.integrations if x.name == integration)
        )
        self.sb._delete_integration(g, i, actor_id=self._actor(g, actor), reason=reason)

    async def create_webhook(
        self,
        g: SGuild,
        channel: SChannel | str,
        name: str,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> SWebhook:
        sb = self.sb
        c = channel if isinstance(channel, SChannel) else g.channel(channel)
        actor_id = self._actor(g, actor)
        w = SWebhook(
            sb.snowflake(), g.id, c.id, name, secrets.token_urlsafe(48), creator=sb.users.get(actor_id)
        )
        g.webhooks.append(w)
        sb._webhooks_update_event(g, c.id)
        sb._audit(
            g,
            50,
            actor_id,
            w.id,
            [
                {"key": "type", "new_value": w.type},
                {"key": "channel_id", "new_value": str(c.id)},
                {"key": "name", "new_value": name},
            ],
            reason=reason,
        )
        return w

    async def delete_webhook(
        self, g: SGuild, webhook: SWebhook, actor: SMember | SUser | None = None, reason: str | None = None
    ) -> None:
        self.sb._delete_webhook(g, webhook, actor_id=self._actor(g, actor), reason=reason)

    async def set_overwrite(
        self,
        g: SGuild,
        channel: SChannel | str,
        target: SRole | SMember | SUser,
        allow: Iterable[str] | int | None = None,
        deny: Iterable[str] | int | None = None,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> None:
        c = channel if isinstance(channel, SChannel) else g.channel(channel)
        type_ = 0 if isinstance(target, SRole) else 1
        self.sb._set_overwrite(
            g,
            c,
            target.id,
            type_,
            permission_value(allow),
            permission_value(deny),
            actor_id=self._actor(g, actor),
            reason=reason,
        )

    async def remove_overwrite(
        self,
        g: SGuild,
        channel: SChannel | str,
        target: SRole | SMember | SUser,
        actor: SMember | SUser | None = None,
        reason: str | None = None,
    ) -> None:
        c = channel if isinstance(channel, SChannel) else g.channel(channel)
        self.sb._delete_overwrite(g, c, target.id, actor_id=self._actor(g, actor), reason=reason)

    async def add_member(self, g: SGuild, name: str, roles: Iterable[SRole | str] = (), **kw: Any) -> SMember:
        return g.add_member(name, roles=roles, **kw)

    def role_payload(self, role: SRole) -> dict:
        return role_payload(role)
