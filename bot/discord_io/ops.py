"""Every mutation Warden makes in Discord, with an audit-log reason and retries.

discord.py already waits out 429s and retries some 5xx; on top of that we retry
transient failures with backoff (tenacity) so one bad second at Discord does not
fail a grant. What cannot succeed (unknown role, missing permission after retries)
is raised to the caller, which records it and tells people.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

import aiohttp
import discord
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Discord's cap on X-Audit-Log-Reason.
AUDIT_REASON_LIMIT = 512
# Audit-log action types (Discord's AuditLogEvent) for the changes Warden makes.
CHANNEL_OVERWRITE_CREATE: Final = 13
CHANNEL_OVERWRITE_UPDATE: Final = 14
MEMBER_ROLE_UPDATE: Final = 25


@dataclass(frozen=True)
class PriorState:
    """What the subject had before a grant: Warden restores exactly this when the grant ends."""

    held: bool = False  # role scopes: the subject already held the role (standing access)
    allow: int | None = None  # channel scopes: the subject's own overwrite, None if there was none
    deny: int | None = None

    @property
    def had_overwrite(self) -> bool:
        return self.allow is not None


@dataclass(frozen=True)
class GrantTarget:
    """What a grant changes in Discord: a role on a member, or a member overwrite on a channel."""

    guild_id: int
    subject_id: int
    kind: str  # "role" | "channel"
    target_id: int
    allow_bits: int = 0
    deny_bits: int = 0
    prior: PriorState = PriorState()

    def overwrite(self) -> tuple[int, int]:
        """The member's overwrite while the grant lasts: theirs, with the grant's bits laid on top."""
        allow, deny = self.prior.allow or 0, self.prior.deny or 0
        return (allow & ~self.deny_bits) | self.allow_bits, (deny & ~self.allow_bits) | self.deny_bits

    @property
    def changes_nothing(self) -> bool:
        """A role the subject already held: Warden neither adds nor ever removes it."""
        return self.kind == "role" and self.prior.held


# Failures after which a change may or may not have reached Discord (the request was sent).
NETWORK_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError, aiohttp.ClientError)
# Everything a Discord call can fail with that Warden handles (the rest is a bug).
DISCORD_ERRORS: tuple[type[BaseException], ...] = (discord.HTTPException, *NETWORK_ERRORS)


def uncertain(exc: BaseException) -> bool:
    """Discord may have made the change although the call failed (5xx, timeout, lost connection)."""
    return isinstance(exc, (discord.DiscordServerError, discord.RateLimited, *NETWORK_ERRORS))


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (discord.DiscordServerError, discord.RateLimited, *NETWORK_ERRORS)):
        return True
    # 403 can be transient too: an admin may be fixing the bot's role right now.
    return isinstance(exc, discord.Forbidden)


def gone(exc: BaseException) -> bool:
    """The thing to remove no longer exists (member left, role or channel deleted)."""
    return isinstance(exc, discord.NotFound)


def describe_error(exc: BaseException) -> str:
    """A short, secret-free explanation of a Discord failure for narratives and logs."""
    if isinstance(exc, discord.Forbidden):
        if exc.code == 50013:
            return "Discord refused: Missing Permissions (50013) — the bot needs Manage Roles and a role above the target"
        if exc.code == 50007:
            return "Discord refused: the member does not accept DMs (50007)"
        return f"Discord refused with 403 (code {exc.code})"
    if isinstance(exc, discord.NotFound):
        return f"Discord says it does not exist (404, code {exc.code})"
    if isinstance(exc, discord.HTTPException):
        return f"Discord error {exc.status} (code {exc.code})"
    return f"{type(exc).__name__}"


def audit_reason(text: str) -> str:
    return text if len(text) <= AUDIT_REASON_LIMIT else text[: AUDIT_REASON_LIMIT - 1] + "…"


class DiscordOps:
    """Applies and removes grants through a connected discord.py client."""

    def __init__(
        self,
        client: discord.Client,
        *,
        attempts: int = 4,
        max_wait: float = 8.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._client = client
        self._attempts = attempts
        self._max_wait = max_wait
        self._sleep = sleep  # None: tenacity's own (asyncio.sleep)

    def _retrying(self) -> AsyncRetrying:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.25, max=self._max_wait),
            reraise=True,
        )
        return retrying if self._sleep is None else retrying.copy(sleep=self._sleep)

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """One Discord call, retried like a grant change (transient failures and 403s, with back-off)."""
        async for attempt in self._retrying():
            with attempt:
                result = await make()
        return result

    async def prior_state(self, target: GrantTarget) -> PriorState:
        """What the subject has now, before Warden changes anything (the cache, else Discord's REST)."""
        if target.kind == "role":
            roles = await self._member_roles(target.guild_id, target.subject_id)
            return PriorState(held=target.target_id in roles)
        for who, kind, allow, deny in await self._channel_overwrites(target.target_id):
            if who == target.subject_id and kind == 1:
                return PriorState(allow=allow, deny=deny)
        return PriorState()

    async def _member_roles(self, guild_id: int, user_id: int) -> set[int]:
        guild = self._client.get_guild(guild_id)
        member = guild.get_member(user_id) if guild else None
        if member is not None:
            return {r.id for r in member.roles}
        async for attempt in self._retrying():
            with attempt:
                data = await self._client.http.get_member(guild_id, user_id)
        return {int(r) for r in data.get("roles", [])}

    async def _channel_overwrites(self, channel_id: int) -> list[tuple[int, int, int, int]]:
        """(target id, type 0 role / 1 member, allow, deny) for each overwrite on the channel."""
        channel = self._client.get_channel(channel_id)
        if isinstance(channel, discord.abc.GuildChannel):
            out = []
            for who, ow in channel.overwrites.items():
                allow, deny = ow.pair()
                out.append((who.id, 0 if isinstance(who, discord.Role) else 1, allow.value, deny.value))
            return out
        async for attempt in self._retrying():
            with attempt:
                data = await self._client.http.get_channel(channel_id)
        return [
            (int(o["id"]), int(o["type"]), int(o.get("allow") or 0), int(o.get("deny") or 0))
            for o in data.get("permission_overwrites") or []  # type: ignore[attr-defined]
        ]

    async def apply(self, target: GrantTarget, reason: str) -> None:
        if target.changes_nothing:
            return
        async for attempt in self._retrying():
            with attempt:
                await self._apply_once(target, audit_reason(reason))

    async def remove(self, target: GrantTarget, reason: str) -> None:
        """End a grant: restore what the subject had before; a target that no longer exists counts as done."""
        if target.changes_nothing:
            return
        try:
            async for attempt in self._retrying():
                with attempt:
                    await self._remove_once(target, audit_reason(reason))
        except discord.NotFound:
            log.info(
                "grant target already gone",
                extra={"guild_id": target.guild_id, "subject_id": target.subject_id},
            )

    async def audit_entry_for(self, target: GrantTarget, reason: str) -> str | None:
        """The id of the audit-log entry Discord wrote for Warden's change, or None.

        Best effort (needs View Audit Log): it is evidence for the narrative, never a reason
        to fail a grant. The reason names the grant, so it identifies the entry exactly.
        """
        me = self._client.user
        if me is None:
            return None
        actions: tuple[Literal[13, 14, 25], ...]
        if target.kind == "role":
            actions, target_id = (MEMBER_ROLE_UPDATE,), target.subject_id
        else:
            actions, target_id = (CHANNEL_OVERWRITE_CREATE, CHANNEL_OVERWRITE_UPDATE), target.target_id
        wanted = audit_reason(reason)
        try:
            for action in actions:
                data = await self._client.http.get_audit_logs(
                    target.guild_id, limit=10, user_id=me.id, action_type=action
                )
                for entry in data.get("audit_log_entries", []):
                    if str(entry.get("target_id")) == str(target_id) and entry.get("reason") == wanted:
                        return str(entry["id"])
        except DISCORD_ERRORS as exc:
            log.info(
                "audit-log entry not found: %s", describe_error(exc), extra={"guild_id": target.guild_id}
            )
        return None

    async def _apply_once(self, t: GrantTarget, reason: str) -> None:
        http = self._client.http
        if t.kind == "role":
            await http.add_role(t.guild_id, t.subject_id, t.target_id, reason=reason)
        else:
            allow, deny = t.overwrite()
            await http.edit_channel_permissions(
                t.target_id, t.subject_id, str(allow), str(deny), 1, reason=reason
            )

    async def _remove_once(self, t: GrantTarget, reason: str) -> None:
        http = self._client.http
        if t.kind == "role":
            await http.remove_role(t.guild_id, t.subject_id, t.target_id, reason=reason)
        elif t.prior.had_overwrite:
            # The member had an overwrite of their own (a mute, say): put back exactly that.
            allow, deny = t.prior.allow or 0, t.prior.deny or 0
            await http.edit_channel_permissions(
                t.target_id, t.subject_id, str(allow), str(deny), 1, reason=reason
            )
        else:
            # Only this member's overwrite goes; other overwrites on the channel stay untouched.
            await http.delete_channel_permissions(t.target_id, t.subject_id, reason=reason)
