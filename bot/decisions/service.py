"""Record a decision: one signed ledger entry plus its narrative, in the caller's transaction.

Every outcome Warden reaches goes through ``DecisionService.record`` exactly once.
The narrative is not posted here: an outbox row is written with the entry and
``bot.decisions.outbox.NarrativePoster`` posts it after the transaction commits, so a
rolled-back decision never reaches the governance channel and a Discord outage
never loses one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.controls import ControlMap
from bot.db.models import LedgerEntry, NarrativeOutbox
from bot.health import metrics
from bot.ledger import Signer, append_entry

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    REQUESTED = "requested"
    VOTED = "voted"
    APPROVED = "approved"
    AUTO_APPROVED = "auto-approved"
    DENIED = "denied"
    BREAKGLASS = "break-glass"
    APPLIED = "granted"
    EXTENDED = "extended"
    REVOKED = "revoked"
    EXPIRED = "expired"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REQUEST_EXPIRED = "request-expired"
    REVIEWED = "reviewed"
    REMOVAL_STUCK = "removal-stuck"
    ALLOW = "allowed"
    ALERT = "alert"
    BLOCK = "blocked"
    APPROVE = "approval-required"
    REVERTED = "reverted"
    REVERT_FAILED = "revert-failed"
    BURST = "burst"
    OWNER_SET = "owner-set"  # an inventory item's owner named by an admin, or confirmed by the owner
    ATTEST_STARTED = "attestation-started"
    ATTESTED = "attested"
    ATTEST_REVOKED = "attestation-revoked"
    ATTEST_TRANSFER = "ownership-transfer"
    ATTEST_ESCALATED = "attestation-escalated"
    ATTEST_MISSED = "attestation-missed"
    ATTEST_REMEDIATED = "access-remediated"
    ATTEST_REMEDIATION_FAILED = "remediation-failed"
    ATTEST_RESTORED = "access-restored"
    ATTEST_CLOSED = "attestation-closed"
    # A change an ``approve`` rule reverted (a held change): an admin restored it, or did not.
    HELD_RESTORED = "change-restored"
    HELD_RESTORE_FAILED = "restore-failed"
    HELD_DENIED = "restore-denied"
    HELD_EXPIRED = "restore-expired"


@dataclass(frozen=True)
class Decision:
    """One outcome, explained: the rule that decided, why in one sentence, and the facts.

    ``proof`` keys follow the conventions in ``bot.decisions.narrative`` (``*_id`` for users,
    ``*role_id`` for roles, ``*channel_id`` for channels, ``*_at`` for times,
    ``votes`` …) so the narrative renders them as mentions and timestamps.
    ``controls=None`` takes them from the control map by outcome and rule.
    """

    outcome: Outcome
    rule: str
    reason: str
    guild_id: int | None
    proof: Mapping[str, Any]
    actor_id: int | None = None
    request_id: int | None = None
    grant_id: int | None = None
    controls: tuple[str, ...] | None = None


class DecisionService:
    def __init__(self, signer: Signer, controls: ControlMap, clock: Clock) -> None:
        self.signer = signer
        self.controls = controls
        self.clock = clock

    def controls_for(self, decision: Decision) -> tuple[str, ...]:
        if decision.controls is not None:
            unknown = self.controls.unknown(decision.controls)
            if unknown:
                log.warning(
                    "decision %s by rule %s names controls missing from the control map: %s",
                    decision.outcome,
                    decision.rule,
                    ", ".join(unknown),
                    extra={"guild_id": decision.guild_id},
                )
            return tuple(decision.controls)
        return self.controls.for_outcome(
            decision.outcome, decision.rule, bot_subject=bool(decision.proof.get("subject_is_bot"))
        )

    async def record(self, session: AsyncSession, decision: Decision, *, narrate: bool = True) -> LedgerEntry:
        """Append the ledger entry and queue its narrative (unless ``narrate`` is false: an allowed
        audit event, or one told in its burst's summary). Flushes; the caller commits."""
        now = self.clock.now()
        entry = await append_entry(
            session,
            self.signer,
            created_at=now,
            outcome=Outcome(decision.outcome).value,
            rule=decision.rule,
            reason=decision.reason,
            proof=decision.proof,
            controls=self.controls_for(decision),
            guild_id=decision.guild_id,
            actor_id=decision.actor_id,
            request_id=decision.request_id,
            grant_id=decision.grant_id,
        )
        metrics.decision_recorded(entry.outcome)
        # Guild-less decisions (CLI, process-wide) have no governance channel: ledger only.
        if decision.guild_id is not None and narrate:
            # Flushed with the next statement or the commit (many decisions in one transaction
            # then insert their outbox rows together).
            session.add(NarrativeOutbox(entry_id=entry.id, guild_id=decision.guild_id, created_at=now))
        log.info(
            "decision %s (rule %s) recorded as ledger #%s",
            entry.outcome,
            entry.rule,
            entry.id,
            extra={
                "guild_id": decision.guild_id,
                "request_id": decision.request_id,
                "grant_id": decision.grant_id,
                "ledger_entry_id": entry.id,
            },
        )
        return entry
