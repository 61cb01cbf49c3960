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

Posting goes through an outbox (``bot.decisions.outbox.NarrativePoster``) so a Discord
outage never loses a narrative and two bot processes never post one twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from typing import Any

import discord

from bot.controls import ControlMap
from bot.db.models import LedgerEntry
from bot.durations import discord_ts, format_duration
from bot.escape import user_text
from bot.policy import permission_names

log = logging.getLogger(__name__)

# Narratives and cards never ping anyone: not @everyone, not roles, not users.
NO_PINGS = discord.AllowedMentions.none()

# Discord embed limits.
TITLE_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
DESCRIPTION_LIMIT = 4096
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
    # Which approval follows depends on what the rule could open (see ``narrative_style``).
    "approval-required": ("Change reverted", ORANGE),
    "reverted": ("Change undone", GREEN),
    "revert-failed": ("Control failed: change not undone", RED),
    "burst": ("Many changes at once", ORANGE),
    "owner-set": ("Owner recorded", BLUE),
    "attestation-started": ("Attestation campaign started", BLUE),
    "attested": ("Access attested: still needed", GREEN),
    "attestation-revoked": ("Access revoked by its owner", GREY),
    "ownership-transfer": ("Ownership transfer", BLUE),
    "attestation-escalated": ("Attestation escalated", ORANGE),
    "attestation-missed": ("Attestation missed", ORANGE),
    "access-remediated": ("Unattested access removed", ORANGE),
    "remediation-failed": ("Remediation failed (control failed)", RED),
    "access-restored": ("Removed access restored", GREEN),
    "attestation-closed": ("Attestation campaign closed", GREY),
    "change-restored": ("Reverted change restored by an admin", GREEN),
    "restore-failed": ("Control failed: restore not complete", RED),
    "restore-denied": ("Restore denied: the change stays reverted", GREY),
    "restore-expired": ("Restore expired: the change stays reverted", GREY),
}

#: An ``approval-required`` decision's title says what approvers can actually do, from its proof:
#: a held change card (one click restores it) or an adopted request (the usual request card).
APPROVAL_TITLES: dict[str, str] = {
    "held_change_id": "Change reverted — approvers can restore it",
    "adopted_request_id": "Change reverted pending approval",
}


def narrative_style(entry: LedgerEntry) -> tuple[str, discord.Colour]:
    """The embed's title and colour: by outcome, and for an approval by what approvers were given."""
    if entry.outcome == "approval-required":
        proof = entry.proof or {}
        for key, title in APPROVAL_TITLES.items():
            if key in proof:
                return title, ORANGE
        return "Change reverted — nothing for approvers to restore", ORANGE
    return OUTCOME_STYLE.get(entry.outcome, (entry.outcome.replace("-", " ").capitalize(), GREY))


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
    return discord_ts(when, style) if when else _text(value)


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        # Free text (a requester's reason) must not be able to fake formatting or mentions.
        return user_text(value, empty="")
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
        return format_duration(dt.timedelta(seconds=value))
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


def clip(text: str, limit: int) -> str:
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
    title, colour = narrative_style(entry)
    title = clip(title, TITLE_LIMIT)
    footer = clip(f"ledger #{entry.id} · sha256 {entry.hash[:16]} · key {entry.key_id}", FOOTER_LIMIT)
    rule = clip(f"`{entry.rule}`" if entry.rule else "none", FIELD_VALUE_LIMIT)
    # The reason sentence quotes people (names, notes): escaped like every other free text.
    reason = clip(user_text(entry.reason, empty="none"), FIELD_VALUE_LIMIT)

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
