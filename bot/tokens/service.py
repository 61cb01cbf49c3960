"""Issue and verify access tokens; only a SHA-256 hash of each token is ever stored.

A token looks like ``wdn1.<lookup id>.<secret>``: the lookup id (64 random bits, hex) finds the row,
the secret (256 random bits, URL-safe base64) is what proves possession. The database keeps
``sha256(token)``; with 256 bits of entropy a fast hash is enough (no password-style stretching
is needed: there is nothing to guess). Verification is introspection: a service asks Warden,
Warden compares in constant time, checks status and expiry with the injected clock, and records
the use — uses are what dormancy measures, which an offline (signed-token) check could not see,
and a revocation takes effect at the next check instead of at the token's expiry.

The token value exists in clear only in :class:`IssuedToken` (returned once, to be DM'd) and in the
caller's hands; its ``repr`` and ``str`` hide it, and nothing here logs it or puts it in an exception.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import AccessToken, TokenStatus
from bot.durations import format_duration
from bot.services.base import claim, transaction
from bot.services.errors import AlreadyDecided, BadInput, NotFound
from bot.values import from_attributes

log = logging.getLogger(__name__)

TOKEN_PREFIX = "wdn1"
MAX_TTL = dt.timedelta(days=30)
_TOKEN_RE = re.compile(r"^wdn1\.(?P<lookup>[0-9a-f]{16})\.(?P<secret>[A-Za-z0-9_-]{43})$")
# Compared against when the lookup id is unknown, so that path costs the same as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"warden: no such token").hexdigest()


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class TokenValue:
    """The clear token. Shown once; ``repr``/``str`` never reveal it, and it refuses to be pickled."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The token itself: call only where it is handed to its holder (the DM)."""
        return self._value

    def __repr__(self) -> str:
        return "TokenValue('wdn1.…hidden…')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a token value is never serialised")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token's record, without anything secret."""

    id: int
    guild_id: int
    scope_id: str
    subject_id: int
    grant_id: int | None
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    last_used_at: dt.datetime | None
    use_count: int
    revoked_at: dt.datetime | None
    revoke_reason: str | None

    @classmethod
    def of(cls, row: AccessToken) -> TokenInfo:
        return from_attributes(cls, row)

    def idle_since(self) -> dt.datetime:
        """Dormancy counts from the last use, or from issue if it was never used."""
        return self.last_used_at or self.created_at


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What :meth:`TokenService.issue` returns: deliver ``value.reveal()`` once, by DM, and drop it."""

    info: TokenInfo
    value: TokenValue


class VerifyOutcome(enum.StrEnum):
    VALID = "valid"
    MALFORMED = "malformed"  # not a Warden token at all
    UNKNOWN = "unknown"  # well-formed, but no such token (or a wrong secret)
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """The answer to an introspection. ``info`` is set only when the token was recognised."""

    outcome: VerifyOutcome
    info: TokenInfo | None = None

    @property
    def valid(self) -> bool:
        return self.outcome is VerifyOutcome.VALID


# Awaited inside the transaction that ends a token (its ledger decision commits with it).
OnEnd = Callable[[AsyncSession, "TokenInfo"], Awaitable[None]]


class TokenService:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = session_factory
        self._clock = clock

    async def issue(
        self,
        *,
        guild_id: int,
        scope_id: str,
        subject_id: int,
        ttl: dt.timedelta,
        grant_id: int | None = None,
        not_after: dt.datetime | None = None,
    ) -> IssuedToken:
        """A new token valid for ``ttl`` — never beyond ``not_after`` (its grant's end), never over 30 days."""
        now = self._clock.now()
        if ttl <= dt.timedelta(0):
            raise BadInput("A token's lifetime must be positive; give a duration such as 1h.")
        if ttl > MAX_TTL:
            raise BadInput("A token may live at most 30 days; give a shorter duration.")
        expires_at = now + ttl
        if not_after is not None:
            if not_after <= now:
                raise BadInput("The grant this token belongs to has already ended; nothing was issued.")
            expires_at = min(expires_at, not_after)
        lookup = secrets.token_hex(8)
        value = f"{TOKEN_PREFIX}.{lookup}.{secrets.token_urlsafe(32)}"
        async with transaction(self._sessions) as s:
            row = AccessToken(
                guild_id=guild_id,
                lookup_id=lookup,
                secret_sha256=hash_token(value),
                scope_id=scope_id,
                subject_id=subject_id,
                grant_id=grant_id,
                status=TokenStatus.ACTIVE,
                created_at=now,
                expires_at=expires_at,
                use_count=0,
            )
            s.add(row)
            await s.flush()
            info = TokenInfo.of(row)
        log.info("token %s issued for scope %s to %s until %s", info.id, scope_id, subject_id, expires_at)
        return IssuedToken(info=info, value=TokenValue(value))

    async def verify(self, token: str) -> TokenCheck:
        """Introspect a presented token; a valid one has its use recorded (count and time)."""
        match = _TOKEN_RE.match(token.strip())
        if match is None:
            hmac.compare_digest(_DUMMY_HASH, hash_token(token))
            return TokenCheck(VerifyOutcome.MALFORMED)
        presented = hash_token(token.strip())
        now = self._clock.now()
        async with transaction(self._sessions) as s:
            row = (
                await s.execute(select(AccessToken).where(AccessToken.lookup_id == match["lookup"]))
            ).scalar_one_or_none()
            if not hmac.compare_digest(row.secret_sha256 if row is not None else _DUMMY_HASH, presented):
                return TokenCheck(VerifyOutcome.UNKNOWN)
            assert row is not None
            if row.status == TokenStatus.REVOKED:
                return TokenCheck(VerifyOutcome.REVOKED, TokenInfo.of(row))
            if row.status == TokenStatus.EXPIRED or row.expires_at <= now:
                return TokenCheck(VerifyOutcome.EXPIRED, TokenInfo.of(row))
            # Conditional update: a revocation committed since the read wins.
            active = (AccessToken.id == row.id, AccessToken.status == TokenStatus.ACTIVE)
            if not await claim(
                s, AccessToken, *active, use_count=AccessToken.use_count + 1, last_used_at=now
            ):
                return TokenCheck(VerifyOutcome.REVOKED, TokenInfo.of(row))
            await s.refresh(row)
            info = TokenInfo.of(row)
        log.info("token %s verified (use %s)", info.id, info.use_count)
        return TokenCheck(VerifyOutcome.VALID, info)

    async def get(self, token_id: int) -> TokenInfo:
        async with transaction(self._sessions) as s:
            row = await s.get(AccessToken, token_id)
            if row is None:
                raise NotFound(
                    f"There is no token {token_id}; `/warden inventory` lists the tokens Warden issued."
                )
            return TokenInfo.of(row)

    async def list_tokens(self, guild_id: int, *, active_only: bool = False) -> list[TokenInfo]:
        query = select(AccessToken).where(AccessToken.guild_id == guild_id).order_by(AccessToken.id)
        if active_only:
            query = query.where(AccessToken.status == TokenStatus.ACTIVE)
        async with transaction(self._sessions) as s:
            return [TokenInfo.of(r) for r in (await s.execute(query)).scalars()]

    async def revoke(self, token_id: int, *, reason: str) -> TokenInfo:
        async with transaction(self._sessions) as s:
            row = await s.get(AccessToken, token_id, with_for_update=True)
            if row is None:
                raise NotFound(
                    f"There is no token {token_id}; `/warden inventory` lists the tokens Warden issued."
                )
            if row.status != TokenStatus.ACTIVE:
                raise AlreadyDecided(f"Token {token_id} is already {row.status}; nothing was changed.")
            self._end(row, TokenStatus.REVOKED, reason)
            info = TokenInfo.of(row)
        log.info("token %s revoked: %s", token_id, reason)
        return info

    async def revoke_for_grant(self, grant_id: int, *, reason: str = "its grant ended") -> list[TokenInfo]:
        """End every active token of a grant (it expires with its grant). Returns those ended."""
        criteria = [AccessToken.grant_id == grant_id, AccessToken.status == TokenStatus.ACTIVE]
        return await self._end_all(criteria, TokenStatus.REVOKED, reason)

    async def revoke_dormant(
        self,
        now: dt.datetime,
        max_idle: dt.timedelta,
        *,
        guild_id: int | None = None,
        record: OnEnd | None = None,
    ) -> list[TokenInfo]:
        """Revoke active, unexpired tokens not used for ``max_idle`` (since issue if never used).

        Only ``guild_id``'s tokens when given (each guild has its own dormancy period). ``record`` is
        awaited for each token inside the revoking transaction (its ledger decision commits with it).
        Returns the tokens revoked so the caller can DM each holder.
        """
        if max_idle <= dt.timedelta(0):
            raise BadInput("The dormancy period must be positive, such as 30d.")
        cutoff = now - max_idle
        idle_since = func.coalesce(AccessToken.last_used_at, AccessToken.created_at)
        criteria = [
            AccessToken.status == TokenStatus.ACTIVE,
            AccessToken.expires_at > now,
            idle_since <= cutoff,
        ]
        if guild_id is not None:
            criteria.append(AccessToken.guild_id == guild_id)
        return await self._end_all(
            criteria,
            TokenStatus.REVOKED,
            f"dormant: not used for {format_duration(max_idle)}",
            now=now,
            record=record,
        )

    async def active_guilds(self) -> list[int]:
        """Guilds that have at least one active token (what the dormancy sweep looks at)."""
        query = select(AccessToken.guild_id).where(AccessToken.status == TokenStatus.ACTIVE).distinct()
        async with transaction(self._sessions) as s:
            return sorted((await s.execute(query)).scalars())

    async def expire_due(self, now: dt.datetime) -> list[TokenInfo]:
        """Mark tokens whose time ran out as expired (verification already refuses them)."""
        criteria = [AccessToken.status == TokenStatus.ACTIVE, AccessToken.expires_at <= now]
        return await self._end_all(criteria, TokenStatus.EXPIRED, None, now=now)

    # ------------------------------------------------------------------ internals

    def _end(
        self, row: AccessToken, status: TokenStatus, reason: str | None, now: dt.datetime | None = None
    ) -> None:
        row.status = status
        if status is TokenStatus.REVOKED:
            row.revoked_at = now or self._clock.now()
            row.revoke_reason = reason

    async def _end_all(
        self,
        criteria: Sequence[ColumnElement[bool]],
        status: TokenStatus,
        reason: str | None,
        *,
        now: dt.datetime | None = None,
        record: OnEnd | None = None,
    ) -> list[TokenInfo]:
        ended: list[TokenInfo] = []
        async with transaction(self._sessions) as s:
            query = select(AccessToken).where(*criteria).order_by(AccessToken.id).with_for_update()
            rows = (await s.execute(query)).scalars().all()
            for row in rows:
                self._end(row, status, reason, now)
                ended.append(TokenInfo.of(row))
                if record is not None:
                    await record(s, ended[-1])
        for info in ended:
            log.info("token %s %s%s", info.id, status, f": {reason}" if reason else "")
        return ended
