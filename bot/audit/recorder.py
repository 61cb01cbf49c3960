"""``DecisionRecorder`` over ``DecisionService``: an audit decision becomes a signed ledger entry
and, unless it is folded into a burst or merely allowed, a narrative in the outbox."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.audit.decision import AuditDecision, AuditOutcome, BurstSummary
from bot.decisions.service import Decision, DecisionService, Outcome

#: The ledger's outcome for each audit outcome (the narrative's title and colour follow it).
OUTCOMES: dict[AuditOutcome, Outcome] = {
    AuditOutcome.ALLOW: Outcome.ALLOW,
    AuditOutcome.ALERT: Outcome.ALERT,
    AuditOutcome.BLOCK: Outcome.BLOCK,
    AuditOutcome.APPROVE: Outcome.APPROVE,
    AuditOutcome.REVERTED: Outcome.REVERTED,
    AuditOutcome.REVERT_FAILED: Outcome.REVERT_FAILED,
}

RULE_BURST = "audit-burst"
#: A burst summary lists at most this many entry ids (every entry is its own ledger entry anyway).
BURST_IDS_SHOWN = 20


class LedgerRecorder:
    def __init__(self, decisions: DecisionService) -> None:
        self._decisions = decisions

    async def record(self, session: AsyncSession, decision: AuditDecision) -> int:
        proof = dict(decision.proof)
        if decision.audit_entry_id:
            proof.setdefault("audit_log_entry", str(decision.audit_entry_id))
        entry = await self._decisions.record(
            session,
            Decision(
                outcome=OUTCOMES[decision.outcome],
                rule=decision.rule,
                reason=decision.reason,
                guild_id=decision.guild_id,
                proof=proof,
                actor_id=decision.actor_id,
                controls=decision.controls or None,
            ),
            narrate=decision.narrate,
        )
        return entry.id

    async def record_summary(self, session: AsyncSession, summary: BurstSummary) -> None:
        ids = [str(i) for i in summary.entry_ids]
        proof: dict[str, object] = {
            "event": summary.action,
            "count": summary.count,
            "first_at": summary.first_at.isoformat(),
            "last_at": summary.last_at.isoformat(),
            "outcomes": dict(sorted(summary.outcomes.items())),
            "rules": list(summary.rules),
            "audit_log_entries": ids[:BURST_IDS_SHOWN]
            + ([f"… {len(ids) - BURST_IDS_SHOWN} more"] if len(ids) > BURST_IDS_SHOWN else []),
        }
        if summary.actor_id is not None:
            proof["actor_id"] = summary.actor_id
        await self._decisions.record(
            session,
            Decision(
                outcome=Outcome.BURST,
                rule=RULE_BURST,
                reason=summary.reason(),
                guild_id=summary.guild_id,
                proof=proof,
                actor_id=summary.actor_id,
            ),
        )
