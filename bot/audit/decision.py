"""What the audit room hands to the recorder: one decision per event, one summary per burst."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AuditOutcome(StrEnum):
    ALLOW = "allow"
    ALERT = "alert"
    BLOCK = "block"  # revert the change
    APPROVE = "approve"  # revert now; re-apply if approvers approve
    REVERTED = "reverted"  # a revert Discord accepted (its own decision)
    REVERT_FAILED = "revert-failed"  # a control that failed: Discord refused the revert


#: Rule ids the listener itself uses (never a policy rule's id).
RULE_NO_MATCH = "no-rule-matched"
RULE_UNCLASSIFIED = "unclassified"
RULE_GAP = "audit-log-gap"
RULE_SANCTIONED = "sanctioned-grant"
RULE_STANDING = "standing-access"  # held before Warden governed the guild: recorded, never reverted


@dataclass(frozen=True)
class AuditDecision:
    """One decision about one audit-log entry (or a revert of one): rule → reason → proof → controls.

    ``narrate`` false keeps it out of the governance channel (still a ledger entry): allowed
    changes, and events folded into a burst summary.
    """

    guild_id: int
    outcome: AuditOutcome
    rule: str
    reason: str
    proof: Mapping[str, Any]
    controls: tuple[str, ...] = ()
    actor_id: int | None = None
    audit_entry_id: int | None = None
    narrate: bool = True


def standing_access(guild_id: int, pairs: Iterable[tuple[int, int | None]]) -> AuditDecision:
    """Who held a JIT-managed role without a grant (role id, member id) when Warden first governed
    the guild: recorded once, never reverted."""
    held = list(pairs)
    return AuditDecision(
        guild_id=guild_id,
        outcome=AuditOutcome.ALLOW,
        rule=RULE_STANDING,
        reason=(
            f"When Warden first governed this server, {len(held)} member(s) already held a "
            "JIT-managed role without a grant. That is standing access Warden did not give: "
            "it is recorded and never taken away; only a role given by hand from now on is drift."
        ),
        proof={"standing": [{"role_id": r, "member_id": m} for r, m in held]},
    )


def audit_log_gap(
    guild_id: int, *, last_entry_id: int, synced_at: dt.datetime, caught_up_at: dt.datetime
) -> AuditDecision:
    """Warden read the guild's audit log again after so long that Discord may have dropped entries."""
    return AuditDecision(
        guild_id=guild_id,
        outcome=AuditOutcome.ALERT,
        rule=RULE_GAP,
        reason=(
            f"Warden last read this server's audit log {(caught_up_at - synced_at).days} days ago; "
            "Discord keeps entries for 45 days, so changes made in between may be missing from this record."
        ),
        proof={
            "last_audit_log_entry": str(last_entry_id),
            "last_synced_at": synced_at.isoformat(),
            "caught_up_at": caught_up_at.isoformat(),
        },
        controls=("SOC2:CC7.2", "ISO27001:A.8.15"),
    )


@dataclass(frozen=True)
class BurstSummary:
    """Many events of one kind by one actor within a short window, told once."""

    guild_id: int
    actor_id: int | None
    action: str
    count: int
    first_at: dt.datetime
    last_at: dt.datetime
    outcomes: Mapping[str, int]
    rules: tuple[str, ...]
    entry_ids: tuple[int, ...] = field(default=())

    def reason(self) -> str:
        who = f"<@{self.actor_id}>" if self.actor_id else "someone"
        seconds = max(1, round((self.last_at - self.first_at).total_seconds()))
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items()))
        return (
            f"{who} made {self.count} {self.action.replace('_', ' ')} changes within {seconds}s "
            f"({outcomes}); each is its own ledger entry."
        )
