"""InventoryService: the guild's non-human identities, their owners, baselines and risk.

Fed with :class:`~bot.inventory.snapshot.GuildSnapshot` (plain data), so the composition root can
build snapshots from discord.py's cache, the sandbox, or a test. Every method takes the guild id
and refuses ids of another guild (a policy is pinned to its guild).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import AccessToken, Identity, IdentityKind, OwnerSource, TokenStatus
from bot.decisions import outcomes
from bot.decisions.service import DecisionService
from bot.inventory.permissions import SEND_MESSAGES, VIEW_CHANNEL, permission_names
from bot.inventory.risk import DEFAULT_DORMANT_AFTER, RiskFacts, RiskScore, score
from bot.inventory.snapshot import GuildSnapshot, Reach, bot_reach
from bot.services.base import transaction
from bot.services.errors import AlreadyDecided, BadInput, NotAllowed, NotFound
from bot.values import from_attributes

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 25


@dataclass(frozen=True, slots=True)
class InventoryItem:
    """One identity as shown and exported: its facts, its owner, and its risk with reasons."""

    id: int
    guild_id: int
    kind: str
    external_id: str
    name: str
    channel_id: int | None
    role_ids: tuple[int, ...]
    scopes: tuple[str, ...]
    permissions: int
    channel_permissions: dict[int, int]
    channel_count: int
    baseline_permissions: int | None
    owner_id: int | None
    owner_source: str | None
    creator_id: int | None
    last_activity_at: dt.datetime | None
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    gone_at: dt.datetime | None
    risk: RiskScore

    @property
    def flagged_unowned(self) -> bool:
        return self.owner_id is None

    @property
    def channel_reach(self) -> int:
        return sum(1 for p in self.channel_permissions.values() if p & (VIEW_CHANNEL | SEND_MESSAGES))

    def record(self) -> dict[str, object]:
        """A flat, JSON-friendly description (permission bits as names), for export."""

        def when(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        drift = (
            permission_names(self.permissions & ~self.baseline_permissions)
            if self.baseline_permissions is not None
            else []
        )
        return {
            "id": self.id,
            "guild_id": str(self.guild_id),
            "kind": self.kind,
            "external_id": self.external_id,
            "name": self.name,
            "channel_id": str(self.channel_id) if self.channel_id is not None else None,
            "role_ids": [str(r) for r in self.role_ids],
            "scopes": list(self.scopes),
            "permissions": permission_names(self.permissions),
            "drift_since_baseline": drift,
            "channel_reach": self.channel_reach,
            "channel_count": self.channel_count,
            "owner_id": str(self.owner_id) if self.owner_id is not None else None,
            "owner_source": self.owner_source,
            "creator_id": str(self.creator_id) if self.creator_id is not None else None,
            "last_activity_at": when(self.last_activity_at),
            "first_seen_at": when(self.first_seen_at),
            "last_seen_at": when(self.last_seen_at),
            "gone_at": when(self.gone_at),
            "risk_score": self.risk.score,
            "risk_reasons": [f"+{r.points} {r.text}" for r in self.risk.reasons],
        }


@dataclass(frozen=True, slots=True)
class InventoryPage:
    items: tuple[InventoryItem, ...]
    page: int  # 1-based
    pages: int
    total: int


@dataclass(frozen=True, slots=True)
class RefreshReport:
    added: tuple[int, ...]
    updated: tuple[int, ...]
    gone: tuple[int, ...]
    owners_inferred: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Seen:
    kind: IdentityKind
    external_id: str
    name: str
    permissions: int
    channel_permissions: dict[int, int]
    channel_id: int | None = None
    role_ids: tuple[int, ...] = ()
    scopes: tuple[str, ...] = ()
    creator_id: int | None = None
    last_activity_at: dt.datetime | None = None
    token_owner: int | None = None


class InventoryService:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        dormant_after: dt.timedelta = DEFAULT_DORMANT_AFTER,
        decisions: DecisionService | None = None,
    ) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._dormant_after = dormant_after
        # The running bot records owner changes in the ledger; the export CLI only reads.
        self._decisions = decisions

    # ------------------------------------------------------------------ snapshot

    async def refresh(
        self, snapshot: GuildSnapshot, *, unread: frozenset[IdentityKind] = frozenset()
    ) -> RefreshReport:
        """Record what the guild holds now: new identities get their baseline; missing ones are gone.

        A new identity's baseline is what it holds when first seen; later growth is drift until
        :meth:`accept_baseline` (after an attestation) moves the baseline. Kinds in ``unread`` could
        not be listed (Discord refused): their recorded items are left as they were, not marked gone.
        """
        now = self._clock.now()
        channel_count = len(snapshot.countable_channels)
        seen = self._describe(snapshot)
        added: list[int] = []
        updated: list[int] = []
        gone: list[int] = []
        inferred: list[int] = []
        async with transaction(self._sessions) as s:
            seen.extend(await self._tokens(s, snapshot.guild_id, now))
            rows = {
                (r.kind, r.external_id): r
                for r in (
                    await s.execute(select(Identity).where(Identity.guild_id == snapshot.guild_id))
                ).scalars()
            }
            for item in seen:
                row = rows.pop((item.kind.value, item.external_id), None)
                if row is None:
                    row = Identity(
                        guild_id=snapshot.guild_id,
                        kind=item.kind.value,
                        external_id=item.external_id,
                        first_seen_at=now,
                        last_seen_at=now,
                        baseline_permissions=item.permissions,
                        baseline_scopes=list(item.scopes),
                        baseline_set_at=now,
                        role_ids=[],
                        scopes=[],
                        channel_permissions={},
                        permissions=0,
                        channel_count=0,
                    )
                    s.add(row)
                    is_new = True
                else:
                    is_new = False
                row.name = item.name[:200]
                row.channel_id = item.channel_id
                row.role_ids = list(item.role_ids)
                row.scopes = list(item.scopes)
                row.permissions = item.permissions
                row.channel_permissions = {str(k): v for k, v in item.channel_permissions.items()}
                row.channel_count = channel_count
                row.creator_id = item.creator_id if item.creator_id is not None else row.creator_id
                row.last_seen_at = now
                row.gone_at = None
                if item.last_activity_at is not None and (
                    row.last_activity_at is None or item.last_activity_at > row.last_activity_at
                ):
                    row.last_activity_at = item.last_activity_at
                owner_inferred = False
                if item.token_owner is not None and row.owner_id is None:
                    # A token belongs to the member it was issued to.
                    self._own(row, item.token_owner, OwnerSource.EXPLICIT, None, now)
                elif row.owner_id is None and item.creator_id is not None:
                    self._own(row, item.creator_id, OwnerSource.INFERRED, None, now)
                    owner_inferred = True
                await s.flush()
                if owner_inferred:
                    inferred.append(row.id)
                (added if is_new else updated).append(row.id)
            for row in rows.values():
                if row.gone_at is None and row.kind not in unread:
                    row.gone_at = now
                    gone.append(row.id)
        log.info(
            "inventory of guild %s refreshed: %d new, %d seen again, %d gone, %d owners inferred",
            snapshot.guild_id,
            len(added),
            len(updated),
            len(gone),
            len(inferred),
        )
        return RefreshReport(tuple(added), tuple(updated), tuple(gone), tuple(inferred))

    def _describe(self, snapshot: GuildSnapshot) -> list[_Seen]:
        out: list[_Seen] = []
        reach_of_bot: dict[int, Reach] = {}
        for bot in snapshot.bots:
            reach = bot_reach(snapshot, bot)
            reach_of_bot[bot.id] = reach
            out.append(
                _Seen(
                    kind=IdentityKind.BOT,
                    external_id=str(bot.id),
                    name=bot.name,
                    permissions=reach.permissions,
                    channel_permissions=reach.channels,
                    role_ids=bot.role_ids,
                    creator_id=bot.added_by,
                )
            )
        for hook in snapshot.webhooks:
            # A webhook posts into its one channel; it has no other permission.
            posts = VIEW_CHANNEL | SEND_MESSAGES
            out.append(
                _Seen(
                    kind=IdentityKind.WEBHOOK,
                    external_id=str(hook.id),
                    name=hook.name,
                    permissions=posts,
                    channel_permissions={hook.channel_id: posts},
                    channel_id=hook.channel_id,
                    creator_id=hook.creator_id,
                )
            )
        for integ in snapshot.integrations:
            reach_ = reach_of_bot.get(integ.bot_id) if integ.bot_id is not None else None
            out.append(
                _Seen(
                    kind=IdentityKind.INTEGRATION,
                    external_id=str(integ.id),
                    name=integ.name,
                    permissions=reach_.permissions if reach_ else 0,
                    channel_permissions=reach_.channels if reach_ else {},
                    scopes=integ.scopes,
                    creator_id=integ.added_by,
                )
            )
        return out

    async def _tokens(self, s: AsyncSession, guild_id: int, now: dt.datetime) -> list[_Seen]:
        # A token past its expiry is gone even before the expiry sweep marks it.
        rows = (
            await s.execute(
                select(AccessToken).where(
                    AccessToken.guild_id == guild_id,
                    AccessToken.status == TokenStatus.ACTIVE,
                    AccessToken.expires_at > now,
                )
            )
        ).scalars()
        return [
            _Seen(
                kind=IdentityKind.TOKEN,
                external_id=str(t.id),
                name=f"token {t.id} for scope {t.scope_id}",
                permissions=0,
                channel_permissions={},
                scopes=(t.scope_id,),
                last_activity_at=t.last_used_at or t.created_at,
                token_owner=t.subject_id,
            )
            for t in rows
        ]

    async def record_activity(
        self, guild_id: int, kind: IdentityKind, external_id: str, at: dt.datetime
    ) -> bool:
        """Note activity seen (a webhook's message, a bot's interaction); False if not inventoried."""
        async with transaction(self._sessions) as s:
            row = await self._by_external(s, guild_id, kind, external_id)
            if row is None:
                return False
            if row.last_activity_at is None or at > row.last_activity_at:
                row.last_activity_at = at
            return True

    # ------------------------------------------------------------------ owners

    async def set_owner(
        self, guild_id: int, identity_id: int, owner_id: int, *, actor_id: int
    ) -> InventoryItem:
        """An admin names the owner (``/warden owner set``): explicit, replaces any inferred owner."""
        async with transaction(self._sessions) as s:
            row = await self._get(s, guild_id, identity_id)
            if row.gone_at is not None:
                raise AlreadyDecided(
                    f"{row.kind} {row.name!r} is no longer in the server; nothing was changed."
                )
            previous = row.owner_id
            self._own(row, owner_id, OwnerSource.EXPLICIT, actor_id, self._clock.now())
            await self._record_owner(s, row, previous, actor_id, confirmed=False)
            return self._item(row)

    async def infer_owner(
        self, guild_id: int, kind: IdentityKind, external_id: str, creator_id: int
    ) -> InventoryItem | None:
        """The audit log names a creator: they become the inferred owner unless someone already owns it.

        Returns the item when its owner changed, None otherwise (unknown identity, or already owned).
        """
        async with transaction(self._sessions) as s:
            row = await self._by_external(s, guild_id, kind, external_id)
            if row is None:
                return None
            row.creator_id = creator_id
            if row.owner_id is not None and row.owner_source != OwnerSource.INFERRED:
                return None
            if row.owner_id == creator_id:
                return None
            self._own(row, creator_id, OwnerSource.INFERRED, None, self._clock.now())
            return self._item(row)

    async def confirm_owner(self, guild_id: int, identity_id: int, member_id: int) -> InventoryItem:
        """The inferred owner confirms; nobody else may confirm for them."""
        async with transaction(self._sessions) as s:
            row = await self._get(s, guild_id, identity_id)
            if row.owner_id != member_id:
                raise NotAllowed(
                    f"Only the owner Warden inferred for {row.kind} {row.name!r} can confirm it; "
                    "ask a server admin to use `/warden owner set` instead."
                )
            if row.owner_source != OwnerSource.INFERRED:
                raise AlreadyDecided(f"You are already the confirmed owner of {row.kind} {row.name!r}.")
            row.owner_source = OwnerSource.CONFIRMED
            row.owner_set_at = self._clock.now()
            row.owner_set_by = member_id
            await self._record_owner(s, row, member_id, member_id, confirmed=True)
            return self._item(row)

    async def _record_owner(
        self, s: AsyncSession, row: Identity, previous: int | None, actor_id: int, *, confirmed: bool
    ) -> None:
        """The owner change is a ledger decision (with its narrative), committed with the change."""
        if self._decisions is None or row.owner_id is None:
            return
        decision = outcomes.owner_set(
            guild_id=row.guild_id,
            item=row.id,
            kind=row.kind,
            name=row.name,
            owner_id=row.owner_id,
            previous_owner_id=previous,
            actor_id=actor_id,
            confirmed=confirmed,
        )
        await self._decisions.record(s, decision)

    async def accept_baseline(self, guild_id: int, identity_id: int) -> InventoryItem:
        """What it holds now becomes its baseline (after its owner attested it is still needed)."""
        async with transaction(self._sessions) as s:
            row = await self._get(s, guild_id, identity_id)
            row.baseline_permissions = row.permissions
            row.baseline_scopes = list(row.scopes)
            row.baseline_set_at = self._clock.now()
            return self._item(row)

    # ------------------------------------------------------------------ reading

    async def get(self, guild_id: int, identity_id: int) -> InventoryItem:
        async with transaction(self._sessions) as s:
            return self._item(await self._get(s, guild_id, identity_id))

    async def items(self, guild_id: int, *, include_gone: bool = False) -> list[InventoryItem]:
        """Every identity, riskiest first (ties: kind, then id — a stable order for paging)."""
        query = select(Identity).where(Identity.guild_id == guild_id)
        if not include_gone:
            query = query.where(Identity.gone_at.is_(None))
        async with transaction(self._sessions) as s:
            rows = (await s.execute(query)).scalars().all()
            items = [self._item(r) for r in rows]
        items.sort(key=lambda i: (-i.risk.score, i.kind, i.id))
        return items

    async def page(self, guild_id: int, page: int = 1, *, per_page: int = 10) -> InventoryPage:
        if not 1 <= per_page <= MAX_PAGE_SIZE:
            raise BadInput(f"A page holds 1 to {MAX_PAGE_SIZE} items; you asked for {per_page}.")
        items = await self.items(guild_id)
        pages = max(1, math.ceil(len(items) / per_page))
        if not 1 <= page <= pages:
            raise BadInput(
                f"There {'is' if pages == 1 else 'are'} {pages} page(s); pick a page from 1 to {pages}."
            )
        start = (page - 1) * per_page
        return InventoryPage(tuple(items[start : start + per_page]), page, pages, len(items))

    # ------------------------------------------------------------------ internals

    def _own(
        self, row: Identity, owner_id: int, source: OwnerSource, by: int | None, now: dt.datetime
    ) -> None:
        row.owner_id = owner_id
        row.owner_source = source
        row.owner_set_at = now
        row.owner_set_by = by

    async def _get(self, s: AsyncSession, guild_id: int, identity_id: int) -> Identity:
        row = await s.get(Identity, identity_id)
        if row is None or row.guild_id != guild_id:
            raise NotFound(
                f"There is no inventory item {identity_id} in this server; `/warden inventory` lists them."
            )
        return row

    async def _by_external(
        self, s: AsyncSession, guild_id: int, kind: IdentityKind, external_id: str
    ) -> Identity | None:
        query = select(Identity).where(
            Identity.guild_id == guild_id, Identity.kind == kind.value, Identity.external_id == external_id
        )
        return (await s.execute(query)).scalar_one_or_none()

    def _item(self, row: Identity) -> InventoryItem:
        channels = {int(k): int(v) for k, v in (row.channel_permissions or {}).items()}
        scopes = tuple(row.scopes or ())
        facts = from_attributes(
            RiskFacts,
            row,
            channel_permissions=channels,
            scopes=scopes,
            baseline_scopes=tuple(row.baseline_scopes) if row.baseline_scopes is not None else None,
            owner_confirmed=row.owner_source != OwnerSource.INFERRED,
        )
        return from_attributes(
            InventoryItem,
            row,
            role_ids=tuple(row.role_ids or ()),
            scopes=scopes,
            channel_permissions=channels,
            risk=score(facts, now=self._clock.now(), dormant_after=self._dormant_after),
        )
