"""What the audit room hands to the recorder: one decision per event, one summary per burst."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
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
