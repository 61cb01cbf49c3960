"""The drift-aware risk score of a non-human identity, always with its reasons.

Deterministic: the same facts give the same score and the same reasons, in the same order.
The weights (points out of a 100 cap) are documented here and in docs/tokens.md:

==============================  ======  =================================================
factor                          points  when
==============================  ======  =================================================
administrator                   40      the identity has Administrator (implies the rest)
privileged permission           each    manage_guild 15, manage_roles 15, manage_webhooks 10,
                                        manage_channels 10, ban_members 10, kick_members 5,
                                        moderate_members 5, mention_everyone 5,
                                        manage_messages 5, view_audit_log 3, manage_nicknames 3,
                                        manage_expressions 3, manage_events 3, manage_threads 3
                                        (at most 40 together)
scope expansion since baseline  8 each  a permission it did not have at its baseline
                                        (12 if privileged), at most 30 together; likewise
                                        an OAuth2 scope added to an integration
broad channel reach             5 / 10  it sees or can send in at least 50 % / 90 % of channels
dormancy                        15      no activity seen for ``dormant_after`` (default 30 days)
missing owner                   20      nobody owns it
unconfirmed owner               5       the owner was inferred from the audit log, not confirmed
==============================  ======  =================================================
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bot.inventory.permissions import (
    ADMINISTRATOR,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    names_to_value,
    permission_names,
)

CAP = 100
ADMINISTRATOR_POINTS = 40
PRIVILEGED_POINTS: dict[str, int] = {
    "manage_guild": 15,
    "manage_roles": 15,
    "manage_webhooks": 10,
    "manage_channels": 10,
    "ban_members": 10,
    "kick_members": 5,
    "moderate_members": 5,
    "mention_everyone": 5,
    "manage_messages": 5,
    "view_audit_log": 3,
    "manage_nicknames": 3,
    "manage_expressions": 3,
    "manage_events": 3,
    "manage_threads": 3,
}
PRIVILEGED_CAP = 40
PRIVILEGED = names_to_value(PRIVILEGED_POINTS) | ADMINISTRATOR
EXPANSION_POINTS = 8
EXPANSION_PRIVILEGED_POINTS = 12
EXPANSION_CAP = 30
REACH_HALF_POINTS = 5
REACH_MOST_POINTS = 10
DORMANT_POINTS = 15
NO_OWNER_POINTS = 20
UNCONFIRMED_OWNER_POINTS = 5
DEFAULT_DORMANT_AFTER = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class RiskFacts:
    """What the score is computed from (plain values, so stored rows and snapshots both fit)."""

    permissions: int
    baseline_permissions: int | None
    channel_permissions: dict[int, int] = field(default_factory=dict)
    channel_count: int = 0
    scopes: tuple[str, ...] = ()
    baseline_scopes: tuple[str, ...] | None = None
    owner_id: int | None = None
    owner_confirmed: bool = True
    last_activity_at: dt.datetime | None = None
    first_seen_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RiskReason:
    points: int
    text: str


@dataclass(frozen=True, slots=True)
class RiskScore:
    score: int
    reasons: tuple[RiskReason, ...]

    def explain(self) -> list[str]:
        return [f"+{r.points} {r.text}" for r in self.reasons]


def _pretty(names: list[str]) -> str:
    return ", ".join(names)


def score(
    facts: RiskFacts, *, now: dt.datetime, dormant_after: dt.timedelta = DEFAULT_DORMANT_AFTER
) -> RiskScore:
    reasons: list[RiskReason] = []

    # Privileged permissions (Administrator implies every other one: counted once).
    if facts.permissions & ADMINISTRATOR:
        reasons.append(
            RiskReason(ADMINISTRATOR_POINTS, "has Administrator (every permission, bypasses overwrites)")
        )
    else:
        held = [n for n in PRIVILEGED_POINTS if facts.permissions & names_to_value([n])]
        if held:
            points = min(PRIVILEGED_CAP, sum(PRIVILEGED_POINTS[n] for n in held))
            reasons.append(RiskReason(points, f"privileged permissions: {_pretty(held)}"))

    # Drift: scope expansion since the baseline.
    if facts.baseline_permissions is not None:
        gained = facts.permissions & ~facts.baseline_permissions
        if gained:
            names = permission_names(gained)
            points = sum(
                EXPANSION_PRIVILEGED_POINTS if names_to_value([n]) & PRIVILEGED else EXPANSION_POINTS
                for n in names
            )
            reasons.append(
                RiskReason(min(EXPANSION_CAP, points), f"gained since its baseline: {_pretty(names)}")
            )
    if facts.baseline_scopes is not None:
        added = sorted(set(facts.scopes) - set(facts.baseline_scopes))
        if added:
            points = min(EXPANSION_CAP, EXPANSION_POINTS * len(added))
            reasons.append(RiskReason(points, f"OAuth2 scopes added since its baseline: {_pretty(added)}"))

    # Broad channel reach.
    if facts.channel_count > 0:
        reach = sum(1 for p in facts.channel_permissions.values() if p & (VIEW_CHANNEL | SEND_MESSAGES))
        fraction = reach / facts.channel_count
        if fraction >= 0.9:
            reasons.append(
                RiskReason(
                    REACH_MOST_POINTS, f"reaches {reach} of {facts.channel_count} channels ({fraction:.0%})"
                )
            )
        elif fraction >= 0.5:
            reasons.append(
                RiskReason(
                    REACH_HALF_POINTS, f"reaches {reach} of {facts.channel_count} channels ({fraction:.0%})"
                )
            )

    # Dormancy: no activity for the period (counted from first sight if none was ever seen).
    since = facts.last_activity_at or facts.first_seen_at
    if since is not None and now - since >= dormant_after:
        days = (now - since).days
        what = "no activity seen for" if facts.last_activity_at else "no activity seen since first seen,"
        reasons.append(RiskReason(DORMANT_POINTS, f"{what} {days} days"))

    # Ownership.
    if facts.owner_id is None:
        reasons.append(RiskReason(NO_OWNER_POINTS, "has no owner"))
    elif not facts.owner_confirmed:
        reasons.append(
            RiskReason(UNCONFIRMED_OWNER_POINTS, "owner inferred from the audit log, not yet confirmed")
        )

    # Stable order: heaviest first, then by text.
    reasons.sort(key=lambda r: (-r.points, r.text))
    return RiskScore(score=min(CAP, sum(r.points for r in reasons)), reasons=tuple(reasons))
