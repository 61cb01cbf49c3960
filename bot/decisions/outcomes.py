"""One constructor per outcome: each owns its rule, its sentence and its proof keys.

Services call these instead of building ``Decision`` by hand, so what a given outcome
records (and so what its narrative shows) is written in one place.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol, TypedDict

from bot.db.models import AccessRequest, AttestCampaign, AttestItem, Grant, HeldChange
from bot.decisions.service import Decision, Outcome
from bot.durations import format_duration
from bot.policy import Scope, permission_names


def _length(seconds: int) -> str:
    return format_duration(dt.timedelta(seconds=seconds))


def _subject(row: AccessRequest | Grant) -> dict[str, object]:
    """Whose access it is: the member or bot the request or grant is for."""
    return {"subject": row.subject_id, "subject_is_bot": row.subject_is_bot}


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
    item: AttestItem | None = None,
    actor_id: int | None = None,
) -> Decision:
    return Decision(
        outcome=outcome,
        rule=rule,
        reason=reason,
        proof=proof,
        actor_id=actor_id,
        **_concerns(req, grant, item),
    )


class _Concerns(TypedDict):
    guild_id: int | None
    request_id: int | None
    grant_id: int | None


def _concerns(req: AccessRequest | None, grant: Grant | None, item: AttestItem | None) -> _Concerns:
    """What a decision is about, from its rows: the request (else the grant's request) and the grant,
    if any; the guild from the request, the grant or the attestation item."""
    row = req if req is not None else grant if grant is not None else item
    assert row is not None
    return {
        "guild_id": row.guild_id,
        "request_id": req.id if req is not None else grant.request_id if grant is not None else None,
        "grant_id": grant.id if grant is not None else None,
    }


# ---- requests -------------------------------------------------------------------------------


def requested(
    req: AccessRequest, scope: Scope, *, reason: str, requester_roles: list[int], extends: Grant | None = None
) -> Decision:
    proof: dict[str, Any] = {
        "request": req.id,
        "scope": scope.id,
        "kind": req.kind,
        "requester": req.requester_id,
        **_subject(req),
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
    ids: dict[str, object] = {"grant": grant.id, "request": grant.request_id, "scope": grant.scope_id}
    return ids | _subject(grant) | _access(grant)


def _access(grant: Grant) -> dict[str, object]:
    """What the grant gives, in Discord (a role or a channel overwrite) or outside it (a token), and when."""
    access: dict[str, object] = {"kind": grant.kind}
    if grant.kind in ("role", "channel"):  # a token grant changes nothing in Discord
        access[grant.kind] = grant.target_id
    access |= {"applied_at": grant.applied_at, "expires_at": grant.expires_at}
    if grant.kind == "channel":
        access["allow"] = permission_names(grant.allow_bits)
        access["deny"] = permission_names(grant.deny_bits)
    if grant.breakglass:
        access["breakglass"] = True
    return access


def about(
    row: Grant | AttestItem,
    outcome: Outcome,
    *,
    rule: str,
    reason: str,
    extra: dict[str, object] | None = None,
    actor_id: int | None = None,
) -> Decision:
    """A decision about one row: its facts plus what is new.

    A grant (applied, failed, revoked, expired, removal stuck) shows ``grant_proof``; an attestation
    item (answered, transferred, escalated, missed, removed, restored) what it was and held when its
    campaign began, under an ``attestation.`` rule.
    """
    if isinstance(row, Grant):
        return _made(outcome, rule, reason, grant_proof(row) | (extra or {}), grant=row, actor_id=actor_id)
    proof = attest_item_proof(row) | (extra or {})
    return _made(outcome, f"attestation.{rule}", reason, proof, item=row, actor_id=actor_id)


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
    return _answered(item, Outcome.ATTESTED, "still_needed", by=by, at=at, reason=reason)


def attestation_revoked(item: AttestItem, *, by: int, at: dt.datetime, reason: str) -> Decision:
    return _answered(item, Outcome.ATTEST_REVOKED, "revoke", by=by, at=at, reason=reason)


def _answered(
    item: AttestItem, outcome: Outcome, rule: str, *, by: int, at: dt.datetime, reason: str
) -> Decision:
    """The reviewer's answer (still needed, or revoke): who answered and when."""
    extra: dict[str, object] = {"reviewed_by": by, "answered_at": at}
    return about(item, outcome, rule=rule, reason=reason, extra=extra, actor_id=by)


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
    return about(
        item, Outcome.ATTEST_TRANSFER, rule=f"transfer.{phase}", reason=reason, extra=extra, actor_id=by
    )


def attestation_escalated(item: AttestItem, *, why: str, reason: str) -> Decision:
    """``why``: dms_closed, dm_failed, unowned, missed, needs_human (Warden cannot remove it reversibly)."""
    return about(
        item, Outcome.ATTEST_ESCALATED, rule=f"escalate.{why}", reason=reason, extra={"escalation": why}
    )


def attestation_missed(item: AttestItem, campaign: AttestCampaign, *, reason: str) -> Decision:
    extra = {"deadline_at": campaign.deadline_at, "on_missed": campaign.on_missed}
    return about(
        item, Outcome.ATTEST_MISSED, rule=f"on_missed.{campaign.on_missed}", reason=reason, extra=extra
    )


def access_remediated(item: AttestItem, *, removed: dict[str, object], reason: str) -> Decision:
    extra = _removed_proof(removed, "removed") | {"restore_until": item.restore_until}
    why = "revoke" if item.answer == "revoke" else "on_missed.remediate"
    return about(item, Outcome.ATTEST_REMEDIATED, rule=why, reason=reason, extra=extra)


def remediation_failed(
    item: AttestItem, *, error: str, attempts: int, retry_at: dt.datetime | None, reason: str
) -> Decision:
    extra: dict[str, object] = {"error": error, "attempts": attempts, "next_attempt_at": retry_at}
    return about(item, Outcome.ATTEST_REMEDIATION_FAILED, rule="remediate", reason=reason, extra=extra)


def access_restored(item: AttestItem, *, by: int, restored: dict[str, object], reason: str) -> Decision:
    extra = {"restored_by": by} | _removed_proof(restored, "restored")
    return about(item, Outcome.ATTEST_RESTORED, rule="restore", reason=reason, extra=extra, actor_id=by)


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


# ---- held changes (audit rules with outcome "approve") ----------------------------------------


def held_change_proof(held: HeldChange) -> dict[str, object]:
    """What every decision about a held change shows: which change, which revert, what it restores."""
    proof: dict[str, object] = {"held_change_id": held.id, "event": held.event}
    if held.audit_entry_id:
        proof["audit_log_entry"] = str(held.audit_entry_id)
    if held.ledger_entry_id:
        proof["reverted_in_ledger_entry"] = f"#{held.ledger_entry_id}"
    if held.actor_id is not None:
        proof["changed_by"] = held.actor_id
    kind, _, target = (held.target or "").partition(":")
    if target.isdigit():  # "bot:<id>", "member:<id>", "role:<id>" → the narrative's mention
        proof["target_role_id" if kind == "role" else f"{kind}_id"] = int(target)
    if held.event == "bot_add":
        proof["subject_is_bot"] = True
    return proof


def _held(
    outcome: Outcome, held: HeldChange, reason: str, extra: dict[str, object], actor_id: int | None = None
) -> Decision:
    return Decision(
        outcome=outcome,
        rule=held.rule,
        reason=reason,
        guild_id=held.guild_id,
        proof=held_change_proof(held) | extra,
        actor_id=actor_id,
    )


def change_restored(
    held: HeldChange, *, by: int, done: list[str], failed: list[str], reason: str
) -> Decision:
    """An admin approved: what Warden re-applied (``restore-failed`` when Discord refused any of it)."""
    extra: dict[str, object] = {"approved_by": by, "restored": done or ["nothing"]}
    if failed:
        extra["failed"] = failed
    outcome = Outcome.HELD_RESTORE_FAILED if failed else Outcome.HELD_RESTORED
    return _held(outcome, held, reason, extra, actor_id=by)


def restore_denied(held: HeldChange, *, by: int, reason: str) -> Decision:
    return _held(Outcome.HELD_DENIED, held, reason, {"denied_by": by, "stays_reverted": held.reverted})


def restore_expired(held: HeldChange, *, reason: str) -> Decision:
    extra: dict[str, object] = {"expired_at": held.expires_at, "stays_reverted": held.reverted}
    return _held(Outcome.HELD_EXPIRED, held, reason, extra)


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
