"""One constructor per outcome: each owns its rule, its sentence and its proof keys.

Services call these instead of building ``Decision`` by hand, so what a given outcome
records (and so what its narrative shows) is written in one place.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from bot.db.models import AccessRequest, AttestCampaign, AttestItem, Grant
from bot.decisions.service import Decision, Outcome
from bot.durations import format_duration
from bot.policy import Scope, permission_names


def _length(seconds: int) -> str:
    return format_duration(dt.timedelta(seconds=seconds))


def votes_proof(req: AccessRequest) -> list[dict[str, object]]:
    return [{"approver": v.approver_id, "approve": v.approve, "at": v.created_at} for v in req.votes]


def _made(
    outcome: Outcome,
    rule: str,
    reason: str,
    proof: dict[str, Any],
    *,
    req: AccessRequest | None = None,
    grant: Grant | None = None,
    actor_id: int | None = None,
) -> Decision:
    """The ids come from the rows: the request (else the grant's request) and the grant, if any."""
    row = req if req is not None else grant
    assert row is not None
    return Decision(
        outcome=outcome,
        rule=rule,
        reason=reason,
        guild_id=row.guild_id,
        proof=proof,
        actor_id=actor_id,
        request_id=req.id if req is not None else grant.request_id if grant is not None else None,
        grant_id=grant.id if grant is not None else None,
    )


# ---- requests -------------------------------------------------------------------------------


def requested(
    req: AccessRequest, scope: Scope, *, reason: str, requester_roles: list[int], extends: Grant | None = None
) -> Decision:
    proof: dict[str, Any] = {
        "request": req.id,
        "scope": scope.id,
        "kind": req.kind,
        "requester": req.requester_id,
        "subject": req.subject_id,
        "subject_is_bot": req.subject_is_bot,
        "duration": _length(req.duration_seconds),
        "reason": req.reason,
        "approvals_required": req.approvals_required,
        "requester_roles": requester_roles,
    }
    if extends is not None:
        proof["extends_grant"] = extends.id
    return _made(
        Outcome.REQUESTED,
        f"scope.{scope.id}",
        reason,
        proof,
        req=req,
        grant=extends,
        actor_id=req.requester_id,
    )


def cancelled(req: AccessRequest, *, reason: str) -> Decision:
    proof = {"request": req.id, "scope": req.scope_id, "requester": req.requester_id}
    return _made(Outcome.CANCELLED, "requester.cancel", reason, proof, req=req, actor_id=req.requester_id)


def request_expired(req: AccessRequest) -> Decision:
    reason = f"Nobody decided request #{req.id} before its deadline, so it expired."
    proof = {
        "request": req.id,
        "scope": req.scope_id,
        "requester": req.requester_id,
        "created_at": req.created_at,
        "deadline": req.pending_until,
        "approvals": sum(1 for v in req.votes if v.approve),
        "required": req.approvals_required,
    }
    return _made(Outcome.REQUEST_EXPIRED, "guild.pending_ttl", reason, proof, req=req)


# ---- approvals ------------------------------------------------------------------------------


def voted(
    req: AccessRequest,
    scope: Scope,
    *,
    approver_id: int,
    approve: bool,
    note: str | None,
    at: dt.datetime,
    reason: str,
) -> Decision:
    proof = {
        "request": req.id,
        "approver": approver_id,
        "approve": approve,
        "at": at,
        "reason": note,
        "approvals": sum(1 for v in req.votes if v.approve),
        "required": req.approvals_required,
    }
    return _made(Outcome.VOTED, f"scope.{scope.id}.approvers", reason, proof, req=req, actor_id=approver_id)


def denied(req: AccessRequest, scope: Scope, *, approver_id: int, note: str, reason: str) -> Decision:
    proof = {
        "request": req.id,
        "scope": scope.id,
        "requester": req.requester_id,
        "subject": req.subject_id,
        "denied_by": approver_id,
        "reason": note,
        "votes": votes_proof(req),
    }
    rule = f"scope.{scope.id}.deny_ends_request"
    return _made(Outcome.DENIED, rule, reason, proof, req=req, actor_id=approver_id)


def granted(
    req: AccessRequest,
    scope: Scope,
    grant: Grant,
    *,
    outcome: Outcome,
    rule: str,
    reason: str,
    actor_id: int | None,
) -> Decision:
    """A request approved (by quorum, automatically or by break-glass) and its grant created."""
    proof = {
        "request": req.id,
        "grant": grant.id,
        "scope": scope.id,
        "subject": req.subject_id,
        "requester": req.requester_id,
        "duration": _length(req.duration_seconds),
        "votes": votes_proof(req),
    }
    return _made(outcome, rule, reason, proof, req=req, grant=grant, actor_id=actor_id)


def extended(
    req: AccessRequest, scope: Scope, grant: Grant, *, rule: str, reason: str, actor_id: int | None
) -> Decision:
    proof = {
        "request": req.id,
        "grant": grant.id,
        "scope": scope.id,
        "subject": grant.subject_id,
        "added": _length(req.duration_seconds),
        "expires_at": grant.expires_at,
        "votes": votes_proof(req),
    }
    return _made(Outcome.EXTENDED, rule, reason, proof, req=req, grant=grant, actor_id=actor_id)


def reviewed(grant: Grant, scope: Scope, *, reviewer_id: int, at: dt.datetime, reason: str) -> Decision:
    proof = {
        "grant": grant.id,
        "scope": scope.id,
        "subject": grant.subject_id,
        "reviewed_by": reviewer_id,
        "at": at,
    }
    return _made(
        Outcome.REVIEWED, f"scope.{scope.id}.breakglass", reason, proof, grant=grant, actor_id=reviewer_id
    )


# ---- grants ---------------------------------------------------------------------------------


def grant_proof(grant: Grant) -> dict[str, object]:
    proof: dict[str, object] = {
        "grant": grant.id,
        "request": grant.request_id,
        "scope": grant.scope_id,
        "subject": grant.subject_id,
        "subject_is_bot": grant.subject_is_bot,
        "kind": grant.kind,
    }
    if grant.kind in ("role", "channel"):  # a token grant changes nothing in Discord
        proof[grant.kind] = grant.target_id
    proof |= {"applied_at": grant.applied_at, "expires_at": grant.expires_at}
    if grant.kind == "channel":
        proof["allow"] = permission_names(grant.allow_bits)
        proof["deny"] = permission_names(grant.deny_bits)
    if grant.breakglass:
        proof["breakglass"] = True
    return proof


def about_grant(
    grant: Grant,
    outcome: Outcome,
    *,
    rule: str,
    reason: str,
    extra: dict[str, object] | None = None,
    actor_id: int | None = None,
) -> Decision:
    """Applied, failed, revoked, expired, removal stuck: the grant's facts plus what is new."""
    return _made(outcome, rule, reason, grant_proof(grant) | (extra or {}), grant=grant, actor_id=actor_id)


# ---- attestation campaigns ------------------------------------------------------------------


def attest_item_proof(item: AttestItem) -> dict[str, object]:
    """What the item is and what it held when the campaign began: the evidence for every answer."""
    proof: dict[str, object] = {
        "campaign": item.campaign_id,
        "item": item.id,
        "kind": item.kind,
        "name": item.name,
        "external": item.external_id,
    }
    if item.kind == "standing":
        proof["holder"] = int(item.external_id)
        proof["held_role_id"] = item.role_id
    if item.kind == "bot":
        proof["bot_user"] = int(item.external_id)
        proof["subject_is_bot"] = True
    if item.channel_id is not None:
        proof["webhook_channel_id"] = item.channel_id
    if item.access.get("role_ids"):
        proof["held_role_ids"] = item.access["role_ids"]
    if item.access.get("permissions"):
        proof["permissions_held"] = item.access["permissions"]
    if item.owner_id is not None:
        proof["owner"] = item.owner_id
    if item.owner_group:
        proof["owner_group"] = ", ".join(item.owner_group)
    return proof


def _attest(
    outcome: Outcome,
    item: AttestItem,
    rule: str,
    reason: str,
    extra: dict[str, object] | None = None,
    *,
    actor_id: int | None = None,
) -> Decision:
    return Decision(
        outcome=outcome,
        rule=f"attestation.{rule}",
        reason=reason,
        guild_id=item.guild_id,
        proof=attest_item_proof(item) | (extra or {}),
        actor_id=actor_id,
    )


def attestation_started(campaign: AttestCampaign, *, items: int, unowned: int, reason: str) -> Decision:
    proof = {
        "campaign": campaign.id,
        "kind": campaign.kind,
        "started_by": campaign.started_by,
        "scheduled": campaign.started_by is None,
        "items": items,
        "unowned": unowned,
        "deadline_at": campaign.deadline_at,
        "reminder_at": campaign.reminder_at,
        "on_missed": campaign.on_missed,
        "restore_grace_seconds": campaign.grace_seconds,
    }
    if campaign.kind == "dormancy":
        rule = "attestation.webhook_dormant_after"
    else:
        rule = "attestation.schedule" if campaign.started_by is None else "attestation.on_demand"
    return Decision(
        outcome=Outcome.ATTEST_STARTED,
        rule=rule,
        reason=reason,
        guild_id=campaign.guild_id,
        proof=proof,
        actor_id=campaign.started_by,
    )


def attestation_closed(campaign: AttestCampaign, *, tally: dict[str, int], reason: str) -> Decision:
    proof: dict[str, object] = {"campaign": campaign.id, "closed_at": campaign.closed_at, **tally}
    return Decision(
        outcome=Outcome.ATTEST_CLOSED,
        rule="attestation.deadline",
        reason=reason,
        guild_id=campaign.guild_id,
        proof=proof,
    )


def attested(item: AttestItem, *, by: int, at: dt.datetime, reason: str) -> Decision:
    return _attest(
        Outcome.ATTESTED, item, "still_needed", reason, {"reviewed_by": by, "answered_at": at}, actor_id=by
    )


def attestation_revoked(item: AttestItem, *, by: int, at: dt.datetime, reason: str) -> Decision:
    return _attest(
        Outcome.ATTEST_REVOKED, item, "revoke", reason, {"reviewed_by": by, "answered_at": at}, actor_id=by
    )


def ownership_transfer(
    item: AttestItem, *, phase: str, by: int, previous_owner: int | None, new_owner: int, reason: str
) -> Decision:
    """``phase``: asked (the owner named someone), accepted or declined (by that someone)."""
    extra: dict[str, object] = {
        "phase": phase,
        "previous_owner": previous_owner,
        "new_owner": new_owner,
        "answered_by": by,
    }
    return _attest(Outcome.ATTEST_TRANSFER, item, f"transfer.{phase}", reason, extra, actor_id=by)


def attestation_escalated(item: AttestItem, *, why: str, reason: str) -> Decision:
    """``why``: dms_closed, dm_failed, unowned, missed, needs_human (Warden cannot remove it reversibly)."""
    return _attest(Outcome.ATTEST_ESCALATED, item, f"escalate.{why}", reason, {"escalation": why})


def attestation_missed(item: AttestItem, campaign: AttestCampaign, *, reason: str) -> Decision:
    extra = {"deadline_at": campaign.deadline_at, "on_missed": campaign.on_missed}
    return _attest(Outcome.ATTEST_MISSED, item, f"on_missed.{campaign.on_missed}", reason, extra)


def access_remediated(item: AttestItem, *, removed: dict[str, object], reason: str) -> Decision:
    extra = _removed_proof(removed, "removed") | {"restore_until": item.restore_until}
    why = "revoke" if item.answer == "revoke" else "on_missed.remediate"
    return _attest(Outcome.ATTEST_REMEDIATED, item, why, reason, extra)


def remediation_failed(
    item: AttestItem, *, error: str, attempts: int, retry_at: dt.datetime | None, reason: str
) -> Decision:
    extra: dict[str, object] = {"error": error, "attempts": attempts, "next_attempt_at": retry_at}
    return _attest(Outcome.ATTEST_REMEDIATION_FAILED, item, "remediate", reason, extra)


def access_restored(item: AttestItem, *, by: int, restored: dict[str, object], reason: str) -> Decision:
    extra = {"restored_by": by} | _removed_proof(restored, "restored")
    return _attest(Outcome.ATTEST_RESTORED, item, "restore", reason, extra, actor_id=by)


def _removed_proof(removed: dict[str, object], verb: str) -> dict[str, object]:
    """What a removal took away (or a restore put back), under keys the narrative renders."""
    out: dict[str, object] = {}
    roles = removed.get("role_ids")
    if isinstance(roles, list) and roles:
        out[f"{verb}_role_ids"] = roles
    if removed.get("webhook"):
        out[f"{verb}_webhook"] = removed.get("name")
        out[f"{verb}_webhook_channel_id"] = removed.get("channel_id")
        if removed.get("new_webhook"):
            out["new_webhook"] = removed.get("new_webhook")
    if removed.get("token"):
        out[f"{verb}_token"] = removed.get("token")
    return out or {verb: "nothing (it was already gone)"}


# ---- access tokens and dormancy ---------------------------------------------------------------


class TokenFacts(Protocol):
    """What a token decision records (``bot.tokens.service.TokenInfo`` has it; nothing secret)."""

    @property
    def id(self) -> int: ...
    @property
    def guild_id(self) -> int: ...
    @property
    def scope_id(self) -> str: ...
    @property
    def subject_id(self) -> int: ...
    @property
    def grant_id(self) -> int | None: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def last_used_at(self) -> dt.datetime | None: ...
    @property
    def use_count(self) -> int: ...
    @property
    def revoked_at(self) -> dt.datetime | None: ...


def token_revoked(
    info: TokenFacts, *, rule: str, reason: str, extra: dict[str, object] | None = None
) -> Decision:
    """An access token ended early (dormant, or by a person); never its value, only its facts."""
    proof: dict[str, object] = {
        "token": info.id,
        "scope": info.scope_id,
        "subject": info.subject_id,
        "grant": info.grant_id,
        "issued_at": info.created_at,
        "last_used_at": info.last_used_at,
        "uses": info.use_count,
        "revoked_at": info.revoked_at,
        "reason": reason,
    }
    return Decision(
        outcome=Outcome.REVOKED,
        rule=rule,
        reason=reason,
        guild_id=info.guild_id,
        proof=proof | (extra or {}),
        grant_id=info.grant_id,
    )


def owner_set(
    *,
    guild_id: int,
    item: int,
    kind: str,
    name: str,
    owner_id: int,
    previous_owner_id: int | None,
    actor_id: int,
    confirmed: bool,
) -> Decision:
    """An inventory item's owner: named by an admin (`/warden owner set`) or confirmed by that owner."""
    if confirmed:
        rule, reason = (
            "inventory.owner.confirmed",
            f"The owner Warden inferred from the audit log confirmed they own {kind} #{item}.",
        )
    else:
        rule = "inventory.owner.set"
        reason = f"A server admin named the owner of {kind} #{item}" + (
            ", replacing the previous one." if previous_owner_id not in (None, owner_id) else "."
        )
    proof = {
        "item": item,
        "kind": kind,
        "name": name,
        "owner_id": owner_id,
        "previous_owner_id": previous_owner_id,
        "set_by_id": actor_id,
    }
    return Decision(
        outcome=Outcome.OWNER_SET, rule=rule, reason=reason, guild_id=guild_id, proof=proof, actor_id=actor_id
    )
