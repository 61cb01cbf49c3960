"""Acting as a server admin: changes that emit the gateway events and audit-log entries Discord would."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sandbox import gateway as gw
from sandbox.models import (
    SChannel,
    SGuild,
    SIntegration,
    SMember,
    SMessage,
    SRole,
    SUser,
    SWebhook,
    integration_payload,
    overwrite_payload,
    permission_value,
    role_payload,
)

if TYPE_CHECKING:
    from sandbox.server import SandboxDiscord

# What admin methods accept: an object or its name, and who acts (default: the guild owner).
MemberRef = SMember | SUser | str
RoleRef = SRole | str
ChannelRef = SChannel | str
Actor = SMember | SUser | None


class Admin:
    """``sb.admin``: a human (the guild owner unless ``actor=`` says otherwise) changing the server."""

    def __init__(self, sandbox: SandboxDiscord) -> None:
        self.sb = sandbox

    @staticmethod
    def _actor(g: SGuild, actor: Actor) -> int:
        if actor is None:
            assert g.owner is not None
            return g.owner.id
        return actor.id

    @staticmethod
    def _role(g: SGuild, role: RoleRef) -> SRole:
        return role if isinstance(role, SRole) else g.role(role)

    @staticmethod
    def _member(g: SGuild, member: MemberRef) -> SMember:
        if isinstance(member, SMember):
            return member
        return g.member(member.id if isinstance(member, SUser) else member)

    @staticmethod
    def _channel(g: SGuild, channel: ChannelRef) -> SChannel:
        return channel if isinstance(channel, SChannel) else g.channel(channel)

    def _audit_role(
        self, g: SGuild, action: int, actor_id: int, role: SRole, side: str, reason: str | None
    ) -> None:
        """A role created (30, its new values) or deleted (32, its old values), in the audit log."""
        changes = [{"key": "name", side: role.name}, {"key": "permissions", side: str(role.permissions)}]
        self.sb._audit(g, action, actor_id, role.id, changes, reason=reason)

    async def rename_guild(
        self, g: SGuild, name: str, actor: Actor = None, reason: str | None = None
    ) -> None:
        """PATCH /guilds/{id} with a new name: the audit-log entry (GUILD_UPDATE, 1) and GUILD_UPDATE event."""
        changes = [{"key": "name", "old_value": g.name, "new_value": name}]
        g.name = name
        self.sb._audit(g, 1, self._actor(g, actor), g.id, changes, reason=reason)
        self.sb.gateway.dispatch("GUILD_UPDATE", self.sb._guild_payload(g), gw.GUILDS)

    async def add_role(
        self, g: SGuild, member: MemberRef, role: RoleRef, actor: Actor = None, reason: str | None = None
    ) -> None:
        self._change_roles(g, member, [self._role(g, role)], [], actor, reason)

    async def remove_role(
        self, g: SGuild, member: MemberRef, role: RoleRef, actor: Actor = None, reason: str | None = None
    ) -> None:
        self._change_roles(g, member, [], [self._role(g, role)], actor, reason)

    def _change_roles(
        self,
        g: SGuild,
        member: MemberRef,
        add: list[SRole],
        remove: list[SRole],
        actor: Actor,
        reason: str | None,
    ) -> None:
        self.sb._apply_member_roles(
            g, self._member(g, member), add, remove, actor_id=self._actor(g, actor), reason=reason
        )

    async def set_role_permissions(
        self,
        g: SGuild,
        role: RoleRef,
        permissions: Iterable[str] | int,
        actor: Actor = None,
        reason: str | None = None,
    ) -> None:
        r, value = self._role(g, role), permission_value(permissions)
        self.sb._set_role_permissions(g, r, value, actor_id=self._actor(g, actor), reason=reason)

    async def create_role(
        self,
        g: SGuild,
        name: str,
        permissions: Iterable[str] | int | None = None,
        position: int | None = None,
        actor: Actor = None,
        reason: str | None = None,
    ) -> SRole:
        role = self.sb._create_role(g, name, permissions, position=position)
        self._audit_role(g, 30, self._actor(g, actor), role, "new_value", reason)
        return role

    async def delete_role(
        self, g: SGuild, role: RoleRef, actor: Actor = None, reason: str | None = None
    ) -> None:
        self._delete(g, self._role(g, role), actor, reason)

    async def add_bot(
        self,
        g: SGuild,
        name: str,
        permissions: Iterable[str] | int | None = None,
        actor: Actor = None,
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
        self._integration_created(g, integration, actor_id, reason, member=member)
        sb._audit(g, 28, actor_id, user.id, reason=reason)
        if roles:
            self._audit_role(g, 30, actor_id, roles[0], "new_value", reason)
        return member

    async def add_integration(
        self,
        g: SGuild,
        name: str,
        *,
        type: str = "twitch",
        scopes: Iterable[str] = (),
        application: bool = False,
        actor: Actor = None,
        reason: str | None = None,
    ) -> SIntegration:
        """An integration without a bot user: a Twitch/YouTube subscription, or (``type="discord"``,
        ``application=True``) an OAuth2 app authorised without the ``bot`` scope."""
        sb = self.sb
        actor_id = self._actor(g, actor)
        integration = SIntegration(
            sb.snowflake(),
            g.id,
            name,
            type=type,
            application_id=sb.snowflake() if application else None,
            user=sb.users.get(actor_id),
            scopes=list(scopes),
        )
        g.integrations.append(integration)
        self._integration_created(g, integration, actor_id, reason)
        return integration

    def _integration_created(
        self,
        g: SGuild,
        integration: SIntegration,
        actor_id: int,
        reason: str | None,
        *,
        member: SMember | None = None,
    ) -> None:
        """The gateway events (and the bot's GUILD_MEMBER_ADD) and audit entry of a new integration."""
        sb = self.sb
        sb.gateway.dispatch(
            "INTEGRATION_CREATE",
            {**integration_payload(integration), "guild_id": str(g.id)},
            gw.GUILD_INTEGRATIONS,
        )
        sb.gateway.dispatch("GUILD_INTEGRATIONS_UPDATE", {"guild_id": str(g.id)}, gw.GUILD_INTEGRATIONS)
        if member is not None:
            sb._member_add_event(g, member)
        changes = [
            {"key": "type", "new_value": integration.type},
            {"key": "name", "new_value": integration.name},
        ]
        sb._audit(g, 80, actor_id, integration.id, changes, reason=reason)

    async def remove_integration(
        self, g: SGuild, integration: SIntegration | str, actor: Actor = None, reason: str | None = None
    ) -> None:
        i = (
            integration
            if isinstance(integration, SIntegration)
            else next(x for x in g.integrations if x.name == integration)
        )
        self.sb._delete_integration(g, i, actor_id=self._actor(g, actor), reason=reason)

    async def create_webhook(
        self, g: SGuild, channel: ChannelRef, name: str, actor: Actor = None, reason: str | None = None
    ) -> SWebhook:
        return self.sb._create_webhook(
            g, self._channel(g, channel), name, actor_id=self._actor(g, actor), reason=reason
        )

    async def post(
        self, g: SGuild, channel: ChannelRef, author: MemberRef, content: str = "hello"
    ) -> SMessage:
        """A member (or another bot) posts in a channel: MESSAGE_CREATE to Guild Messages sessions."""
        return self.sb._new_message(
            self._channel(g, channel), content=content, author=self._member(g, author).user
        )

    async def post_as_webhook(self, g: SGuild, webhook: SWebhook, content: str = "build green") -> SMessage:
        """A channel webhook posts (Execute Webhook by its token): the author is the webhook itself
        (its id and name, flagged bot), and the message carries ``webhook_id``, as Discord sends it."""
        channel = self.sb.channels[webhook.channel_id]
        author = SUser(webhook.id, webhook.name, bot=True)
        return self.sb._new_message(channel, content=content, author=author, webhook_id=webhook.id)

    async def delete_webhook(
        self, g: SGuild, webhook: SWebhook, actor: Actor = None, reason: str | None = None
    ) -> None:
        self.sb._delete_webhook(g, webhook, actor_id=self._actor(g, actor), reason=reason)

    async def set_overwrite(
        self,
        g: SGuild,
        channel: ChannelRef,
        target: SRole | SMember | SUser,
        allow: Iterable[str] | int | None = None,
        deny: Iterable[str] | int | None = None,
        actor: Actor = None,
        reason: str | None = None,
    ) -> None:
        c = self._channel(g, channel)
        type_ = 0 if isinstance(target, SRole) else 1
        allow_bits, deny_bits = permission_value(allow), permission_value(deny)
        self.sb._set_overwrite(
            g, c, target.id, type_, allow_bits, deny_bits, actor_id=self._actor(g, actor), reason=reason
        )

    async def remove_overwrite(
        self,
        g: SGuild,
        channel: ChannelRef,
        target: SRole | SMember | SUser,
        actor: Actor = None,
        reason: str | None = None,
    ) -> None:
        c = self._channel(g, channel)
        self.sb._delete_overwrite(g, c, target.id, actor_id=self._actor(g, actor), reason=reason)

    async def update_guild(
        self,
        g: SGuild,
        *,
        mfa_level: int | None = None,
        verification_level: int | None = None,
        actor: Actor = None,
        reason: str | None = None,
    ) -> None:
        """Server settings changed (GUILD_UPDATE and audit entry 1 with each key's old and new value)."""
        changes = []
        for key, value in (("mfa_level", mfa_level), ("verification_level", verification_level)):
            if value is not None and getattr(g, key) != value:
                changes.append({"key": key, "old_value": getattr(g, key), "new_value": value})
                setattr(g, key, value)
        if not changes:
            return
        self.sb.gateway.dispatch("GUILD_UPDATE", self.sb._guild_payload(g), gw.GUILDS)
        self.sb._audit(g, 1, self._actor(g, actor), g.id, changes, reason=reason)

    async def create_channel(
        self,
        g: SGuild,
        name: str,
        *,
        private: bool = False,
        actor: Actor = None,
        reason: str | None = None,
    ) -> SChannel:
        """A text channel (CHANNEL_CREATE, audit entry 10); ``private`` hides it from @everyone."""
        overwrites: dict[Any, Any] | None = {g.everyone: ([], ["view_channel"])} if private else None
        c = self.sb._create_channel(g, name, overwrites=overwrites)
        changes: list[dict[str, Any]] = [
            {"key": "name", "new_value": c.name},
            {"key": "type", "new_value": c.type},
            {
                "key": "permission_overwrites",
                "new_value": [overwrite_payload(o) for o in c.overwrites],
            },
        ]
        self.sb._audit(g, 10, self._actor(g, actor), c.id, changes, reason=reason)
        return c

    async def delete_channel(
        self, g: SGuild, channel: ChannelRef, actor: Actor = None, reason: str | None = None
    ) -> None:
        """A channel deleted (CHANNEL_DELETE, audit entry 12 with its old values)."""
        self._delete(g, self._channel(g, channel), actor, reason)

    def _delete(self, g: SGuild, thing: SRole | SChannel, actor: Actor, reason: str | None) -> None:
        """A role (audit entry 32) or channel (12) deleted: its gateway event, and the audit entry
        with its old values."""
        old: dict[str, object]
        if isinstance(thing, SRole):
            self.sb._delete_role(g, thing)
            action, old = 32, {"name": thing.name, "permissions": str(thing.permissions)}
        else:
            self.sb._delete_channel(g, thing)
            action, old = 12, {"name": thing.name, "type": thing.type}
        changes = [{"key": key, "old_value": value} for key, value in old.items()]
        self.sb._audit(g, action, self._actor(g, actor), thing.id, changes, reason=reason)

    async def add_member(self, g: SGuild, name: str, roles: Iterable[SRole | str] = (), **kw: Any) -> SMember:
        return g.add_member(name, roles=roles, **kw)

    def role_payload(self, role: SRole) -> dict:
        return role_payload(role)
