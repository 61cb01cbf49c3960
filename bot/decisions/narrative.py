"""Narratives: each ledger entry as one embed in the guild's governance channel.

Rule → reason → proof → control map, readable in ten seconds. The embed is built
from the ledger entry alone, so what people read is what was signed.

Proof conventions (what services put in ``Decision.proof``; other keys render as
``key: value``):

- ``*_id`` / ``*_ids`` naming a person (``actor``, ``requester``, ``subject``,
  ``approver``, ``user``, ``member``, ``owner``, ``moderator``, ``executor``,
  ``by`` …) → ``<@id>`` mentions; ``*role_id(s)`` → ``<@&id>``;
  ``*channel_id(s)`` → ``<#id>``; other ids (request, grant, audit-log entry)
  are shown as code.
- ``*_at`` / ``until`` (ISO 8601 strings or unix seconds) → ``<t:unix:f>``.
- ``*_seconds`` → a duration such as ``1h 30m``.
- ``*permissions*`` / ``*_bits`` as an int → permission names; lists are joined.
- ``votes``: a list of ``{"approver_id", "approve", "at", "reason"?}`` →
  ``✓ <@id> at <t:…:f>`` lines.
- nested mappings (``before`` / ``after``) are flattened one level:
  ``before roles: <@&1>, <@&2>``.

Posting goes through an outbox (see ``NarrativePoster``) so a Discord outage never
loses a narrative and two bot processes never post one twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import discord
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.controls import ControlMap
from bot.db.models import LedgerEntry, NarrativeOutbox
from bot.services.base import rowcount

log = logging.getLogger(__name__)

# Narratives and cards never ping anyone: not @everyone, not roles, not users.
NO_PINGS = discord.AllowedMentions.none()

# Discord embed limits.
TITLE_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
TOTAL_LIMIT = 6000
FIELD_LIMIT = 25
PROOF_FIELDS_MAX = 3  # "Proof" and up to two "Proof (continued)"
LINE_LIMIT = 900

GREEN = discord.Colour.green()
RED = discord.Colour.red()
ORANGE = discord.Colour.orange()
GREY = discord.Colour.light_grey()
BLUE = discord.Colour.blue()

# outcome value → (title, colour). Keyed by the string so old entries still render.
OUTCOME_STYLE: dict[str, tuple[str, discord.Colour]] = {
    "requested": ("Access requested", BLUE),
    "voted": ("Vote recorded", BLUE),
    "approved": ("Request approved", GREEN),
    "auto-approved": ("Request auto-approved", GREEN),
    "denied": ("Request denied", RED),
    "break-glass": ("Break-glass access", ORANGE),
    "granted": ("Access granted", GREEN),
    "extended": ("Access extended", GREEN),
    "revoked": ("Access revoked", GREY),
    "expired": ("Access expired", GREY),
    "failed": ("Access could not be applied", RED),
    "cancelled": ("Request cancelled", GREY),
    "request-expired": ("Request expired undecided", GREY),
    "reviewed": ("Break-glass reviewed", GREEN),
    "removal-stuck": ("Access removal stuck", RED),
    "allowed": ("Change allowed", GREEN),
    "alert": ("Change needs attention", ORANGE),
    "blocked": ("Change blocked", RED),
    "approval-required": ("Change reverted pending approval", ORANGE),
}

PERSON_WORDS = frozenset(
    {
        "actor",
        "requester",
        "subject",
        "approver",
        "approvers",
        "user",
        "users",
        "member",
        "members",
        "owner",
        "owners",
        "moderator",
        "executor",
        "reviewer",
        "revoker",
        "by",
        "target_user",
        "new_owner",
        "previous_owner",
        "decided_by",
        "ended_by",
        "voter",
    }
)


# --------------------------------------------------------------------- values


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _as_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def discord_time(value: Any, style: str = "f") -> str:
    when = _as_time(value)
    return f"<t:{int(when.timestamp())}:{style}>" if when else _text(value)


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds <= 0:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts)


def permission_names(bits: int) -> list[str]:
    return [name for name, on in discord.Permissions(bits) if on]


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        # Free text (a requester's reason) must not be able to fake formatting or mentions.
        text = discord.utils.escape_markdown(value)
        return discord.utils.escape_mentions(text) if "@" in text else text
    return str(value)


def _kind(key: str) -> str:
    k = key.lower()
    base = re.sub(r"_ids?$", "", k)
    if k.endswith(("role_id", "role_ids", "_role", "_roles")) or k in {"role", "roles"}:
        return "role"
    if k.endswith(("channel_id", "channel_ids", "_channel")) or k in {"channel", "channels"}:
        return "channel"
    if k in {"request", "grant", "entry", "ledger_entry"}:
        return "id"
    if base in PERSON_WORDS or base.endswith(("_user", "_member", "_by")):
        return "user"
    if k.endswith("_id") or k.endswith("_ids"):
        return "id"
    if k.endswith("_at") or k in {"until", "at", "since", "expires"}:
        return "time"
    if k.endswith("_seconds"):
        return "duration"
    if "permission" in k or k.endswith("_bits"):
        return "permissions"
    if k in {"hash", "prev_hash"} or k.endswith("_hash"):
        return "code"
    return "text"


def _label(key: str) -> str:
    label = re.sub(r"_(ids?|at|seconds|bits)$", lambda m: "s" if m.group(1) == "ids" else "", key)
    return label.replace("_", " ") or key


def _one(kind: str, value: Any) -> str:
    as_int = _as_int(value)
    if kind == "user" and as_int is not None:
        return f"<@{as_int}>"
    if kind == "role" and as_int is not None:
        return f"<@&{as_int}>"
    if kind == "channel" and as_int is not None:
        return f"<#{as_int}>"
    if kind in {"id", "code"} and value is not None:
        return f"`{value}`"
    if kind == "time":
        return discord_time(value)
    if kind == "duration" and isinstance(value, int | float) and not isinstance(value, bool):
        return human_duration(value)
    if kind == "permissions":
        if as_int is not None:
            return ", ".join(f"`{name}`" for name in permission_names(as_int)) or "none"
        if isinstance(value, str) and re.fullmatch(r"[a-z_]+", value):
            return f"`{value}`"
    return _text(value)


def _join(items: list[str], limit: int = LINE_LIMIT) -> str:
    out: list[str] = []
    size = 0
    for i, item in enumerate(items):
        if size + len(item) + 2 > limit - 16:
            out.append(f"and {len(items) - i} more")
            break
        out.append(item)
        size += len(item) + 2
    return ", ".join(out) if out else "none"


def _vote_line(vote: Any) -> str:
    if not isinstance(vote, Mapping):
        return f"vote: {_text(vote)}"
    who = next(
        (
            vote[k]
            for k in ("approver_id", "approver", "voter_id", "voter", "user_id", "user", "by")
            if k in vote
        ),
        None,
    )
    approve = vote.get("approve")
    if approve is None and "vote" in vote:
        approve = str(vote["vote"]).lower() in {"approve", "approved", "yes", "true"}
    mark = "✓" if approve else "✗"
    line = f"vote: {mark} {_one('user', who)}"
    at = next((vote[k] for k in ("at", "created_at", "voted_at") if k in vote), None)
    if at is not None:
        line += f" at {discord_time(at)}"
    if vote.get("reason"):
        line += f" — {_text(vote['reason'])}"
    return line


def _value(key: str, value: Any) -> str:
    kind = _kind(key)
    if isinstance(value, list | tuple):
        return _join([_one(kind, v) for v in value])
    return _one(kind, value)


def proof_lines(proof: Mapping[str, Any]) -> list[str]:
    """The proof as readable ``key: value`` lines (see the module docstring)."""
    lines: list[str] = []
    for key, value in proof.items():
        if key == "votes" and isinstance(value, list):
            lines.extend([_vote_line(v) for v in value] or ["votes: none"])
        elif isinstance(value, Mapping):
            if not value:
                lines.append(f"{_label(key)}: none")
            for sub, subval in value.items():
                rendered = _text(subval) if isinstance(subval, Mapping) else _value(sub, subval)
                lines.append(f"{_label(key)} {_label(sub)}: {rendered}")
        else:
            lines.append(f"{_label(key)}: {_value(key, value)}")
    return [line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 1] + "…" for line in lines]


# --------------------------------------------------------------------- embed


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pack(
    lines: list[str], chunk_limit: int, max_chunks: int, budget: int, reserve: int
) -> tuple[list[str], int]:
    """Greedily put lines into at most ``max_chunks`` chunks; returns (chunks, lines used)."""
    chunks: list[str] = [""]
    spent = 0
    used = 0
    for line in lines:
        current = chunks[-1]
        extra = len(line) + (1 if current else 0)
        last_chunk = len(chunks) == max_chunks
        room = chunk_limit - len(current) - (reserve if last_chunk else 0)
        if extra <= room and spent + extra + reserve <= budget:
            chunks[-1] = f"{current}\n{line}" if current else line
            spent += extra
            used += 1
            continue
        if (
            not last_chunk
            and current
            and len(line) + reserve <= chunk_limit
            and spent + len(line) + reserve <= budget
        ):
            chunks.append(line)
            spent += len(line)
            used += 1
            continue
        break
    return [c for c in chunks if c], used


def _lines_within(lines: list[str], limit: int) -> str:
    if not lines:
        return "none mapped"
    chunks, used = _pack(lines, limit, 1, limit, 0)
    if used < len(lines):
        chunks, used = _pack(lines, limit, 1, limit, 24)
        chunks = [*chunks, f"… ({len(lines) - used} more)"]
    return "\n".join(chunks)


def render_narrative(entry: LedgerEntry, controls: ControlMap) -> discord.Embed:
    """The governance-channel embed for one ledger entry, within Discord's limits."""
    title, colour = OUTCOME_STYLE.get(entry.outcome, (entry.outcome.replace("-", " ").capitalize(), GREY))
    title = _clip(title, TITLE_LIMIT)
    footer = _clip(f"ledger #{entry.id} · sha256 {entry.hash[:16]} · key {entry.key_id}", FOOTER_LIMIT)
    rule = _clip(f"`{entry.rule}`" if entry.rule else "none", FIELD_VALUE_LIMIT)
    reason = _clip(entry.reason or "none", FIELD_VALUE_LIMIT)

    control_text = _lines_within([controls.describe(c) for c in entry.controls or ()], FIELD_VALUE_LIMIT)

    fixed = len(title) + len(footer) + len(rule) + len(reason) + len(control_text)
    fixed += len("Rule") + len("Reason") + len("Control map") + len("Proof (continued)") * PROOF_FIELDS_MAX
    budget = TOTAL_LIMIT - fixed - 16

    lines = proof_lines(entry.proof or {}) or ["none"]
    chunks, used = _pack(lines, FIELD_VALUE_LIMIT, PROOF_FIELDS_MAX, budget, 0)
    if used < len(lines):
        marker_len = len(f"… ({len(lines)} more, see ledger #{entry.id})") + 1
        chunks, used = _pack(lines, FIELD_VALUE_LIMIT, PROOF_FIELDS_MAX, budget, marker_len)
        marker = f"… ({len(lines) - used} more, see ledger #{entry.id})"
        if chunks:
            chunks[-1] = f"{chunks[-1]}\n{marker}"
        else:
            chunks = [marker]

    embed = discord.Embed(title=title, colour=colour, timestamp=entry.created_at)
    embed.add_field(name="Rule", value=rule, inline=False)
    embed.add_field(name="Reason", value=reason, inline=False)
    for i, chunk in enumerate(chunks):
        embed.add_field(name="Proof" if i == 0 else "Proof (continued)", value=chunk, inline=False)
    embed.add_field(name="Control map", value=control_text, inline=False)
    embed.set_footer(text=footer)
    return embed


# --------------------------------------------------------------------- posting


@dataclasses.dataclass(frozen=True)
class _Claimed:
    outbox_id: int
    entry_id: int
    guild_id: int
    attempts: int
    entry: LedgerEntry


class NarrativePoster:
    """Posts queued narratives to governance channels, in ledger order per guild.

    Safe with several bot processes on one database: each row is claimed with a
    conditional UPDATE before it is posted, and a failed or in-flight row holds
    back the later rows of its guild (for ``HOLD_ATTEMPTS`` attempts, so one
    message Discord keeps refusing cannot silence a governance channel forever).
    """

    CLAIM_SECONDS = 60
    CLAIM_SECONDS_PER_ROW = 2  # a batch posts one row after another; later rows are claimed longer
    BACKOFF_BASE_SECONDS = 5
    BACKOFF_MAX_SECONDS = 600
    HOLD_ATTEMPTS = 5

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        controls: ControlMap,
        resolve_channel: Callable[[int], Awaitable[discord.abc.Messageable | None]],
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.controls = controls
        self.resolve_channel = resolve_channel

    def backoff(self, attempts: int) -> dt.timedelta:
        seconds = self.BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)
        return dt.timedelta(seconds=min(seconds, self.BACKOFF_MAX_SECONDS))

    async def deliver_due(self, limit: int = 50) -> int:
        """Post due narratives (at most ``limit``); returns how many were posted."""
        claimed = await self._claim(limit)
        posted = 0
        stalled: set[int] = set()
        for item in claimed:
            if item.guild_id in stalled:
                await self._release(item)  # keep ledger order: nothing after a failed row
                continue
            if await self._post(item):
                posted += 1
            elif item.attempts + 1 < self.HOLD_ATTEMPTS:
                stalled.add(item.guild_id)
        return posted

    async def _claim(self, limit: int) -> list[_Claimed]:
        now = self.clock.now()
        o = NarrativeOutbox
        due = and_(
            o.posted_at.is_(None),
            or_(o.next_attempt_at.is_(None), o.next_attempt_at <= now),
            or_(o.claimed_until.is_(None), o.claimed_until < now),
        )
        # Per guild, the first unposted row that is waiting (backing off or in flight elsewhere).
        barrier = (
            select(o.guild_id.label("guild_id"), func.min(o.entry_id).label("entry_id"))
            .where(
                o.posted_at.is_(None),
                o.attempts < self.HOLD_ATTEMPTS,
                or_(o.next_attempt_at > now, o.claimed_until >= now),
            )
            .group_by(o.guild_id)
            .subquery()
        )
        candidates = (
            select(o.id, o.entry_id, o.guild_id, o.attempts)
            .outerjoin(barrier, barrier.c.guild_id == o.guild_id)
            .where(
                due,
                o.guild_id.is_not(None),
                or_(barrier.c.entry_id.is_(None), o.entry_id < barrier.c.entry_id),
            )
            .order_by(o.entry_id)
            .limit(limit)
        )
        async with self.session_factory() as session:
            rows = (await session.execute(candidates)).all()
            mine: list[tuple[int, int, int, int]] = []
            lost: set[int] = set()
            for outbox_id, entry_id, guild_id, attempts in rows:
                assert guild_id is not None  # the query only selects rows with a guild
                if guild_id in lost:
                    continue
                until = now + dt.timedelta(
                    seconds=self.CLAIM_SECONDS + self.CLAIM_SECONDS_PER_ROW * len(mine)
                )
                result = await session.execute(
                    update(o)
                    .where(
                        o.id == outbox_id,
                        o.posted_at.is_(None),
                        or_(o.claimed_until.is_(None), o.claimed_until < now),
                    )
                    .values(claimed_until=until)
                    .execution_options(synchronize_session=False)
                )
                if rowcount(result) == 1:
                    mine.append((outbox_id, entry_id, guild_id, attempts))
                else:
                    lost.add(guild_id)  # another process has it: leave the rest of this guild to it
            await session.commit()
            if not mine:
                return []
            entries = {
                e.id: e
                for e in (
                    await session.scalars(select(LedgerEntry).where(LedgerEntry.id.in_([m[1] for m in mine])))
                ).all()
            }
        return [
            _Claimed(outbox_id, entry_id, guild_id, attempts, entries[entry_id])
            for outbox_id, entry_id, guild_id, attempts in mine
        ]

    async def _post(self, item: _Claimed) -> bool:
        context = {"guild_id": item.guild_id, "ledger_entry_id": item.entry_id}
        try:
            embed = render_narrative(item.entry, self.controls)
            channel = await self.resolve_channel(item.guild_id)
            if channel is None:
                log.warning(
                    "guild %s has no governance channel Warden can post in; narrative for ledger #%s "
                    "is waiting (set governance_channel in the policy and check the bot's permissions)",
                    item.guild_id,
                    item.entry_id,
                    extra=context,
                )
                await self._failed(item, "governance channel not found")
                return False
            message = await channel.send(embed=embed, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            error = _clip(f"HTTP {exc.status} (code {exc.code}): {exc.text or type(exc).__name__}", 300)
            await self._failed(item, error)
            log.warning(
                "narrative for ledger #%s in guild %s not posted: %s",
                item.entry_id,
                item.guild_id,
                error,
                extra=context,
            )
            return False
        except Exception as exc:  # a bug must not stop the other guilds' narratives
            await self._failed(item, _clip(f"{type(exc).__name__}: {exc}", 300))
            log.exception(
                "narrative for ledger #%s in guild %s failed unexpectedly",
                item.entry_id,
                item.guild_id,
                extra=context,
            )
            return False
        await self._posted(item, getattr(message, "id", None))
        return True

    async def _posted(self, item: _Claimed, message_id: int | None) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(NarrativeOutbox)
                .where(NarrativeOutbox.id == item.outbox_id, NarrativeOutbox.posted_at.is_(None))
                .values(
                    posted_at=self.clock.now(), message_id=message_id, claimed_until=None, last_error=None
                )
                .execution_options(synchronize_session=False)
            )

    async def _failed(self, item: _Claimed, error: str) -> None:
        attempts = item.attempts + 1
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(NarrativeOutbox)
                .where(NarrativeOutbox.id == item.outbox_id, NarrativeOutbox.posted_at.is_(None))
                .values(
                    attempts=attempts,
                    next_attempt_at=self.clock.now() + self.backoff(attempts),
                    claimed_until=None,
                    last_error=error,
                )
                .execution_options(synchronize_session=False)
            )

    async def _release(self, item: _Claimed) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(NarrativeOutbox)
                .where(NarrativeOutbox.id == item.outbox_id, NarrativeOutbox.posted_at.is_(None))
                .values(claimed_until=None)
                .execution_options(synchronize_session=False)
            )
