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
from typing import Final, Literal

import discord
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

log = logging.getLogger(__name__)

# Discord's cap on X-Audit-Log-Reason.
AUDIT_REASON_LIMIT = 512
# Audit-log action types (Discord's AuditLogEvent) for the changes Warden makes.
CHANNEL_OVERWRITE_CREATE: Final = 13
CHANNEL_OVERWRITE_UPDATE: Final = 14
MEMBER_ROLE_UPDATE: Final = 25


@dataclass(frozen=True)
class GrantTarget:
    """What a grant changes in Discord: a role on a member, or a member overwrite on a channel."""

    guild_id: int
    subject_id: int
    kind: str  # "role" | "channel"
    target_id: int
    allow_bits: int = 0
    deny_bits: int = 0


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, discord.DiscordServerError | discord.RateLimited | TimeoutError | ConnectionError):
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

    async def apply(self, target: GrantTarget, reason: str) -> None:
        async for attempt in self._retrying():
            with attempt:
                await self._apply_once(target, audit_reason(reason))

    async def remove(self, target: GrantTarget, reason: str) -> None:
        """Remove a grant; a target that no longer exists counts as removed."""
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
        except (discord.HTTPException, TimeoutError, ConnectionError) as exc:
            log.info(
                "audit-log entry not found: %s", describe_error(exc), extra={"guild_id": target.guild_id}
            )
        return None

    async def _apply_once(self, t: GrantTarget, reason: str) -> None:
        http = self._client.http
        if t.kind == "role":
            await http.add_role(t.guild_id, t.subject_id, t.target_id, reason=reason)
        else:
            await http.edit_channel_permissions(
                t.target_id, t.subject_id, str(t.allow_bits), str(t.deny_bits), 1, reason=reason
            )

    async def _remove_once(self, t: GrantTarget, reason: str) -> None:
        http = self._client.http
        if t.kind == "role":
            await http.remove_role(t.guild_id, t.subject_id, t.target_id, reason=reason)
        else:
            # Only this member's overwrite goes; other overwrites on the channel stay untouched.
            await http.delete_channel_permissions(t.target_id, t.subject_id, reason=reason)
