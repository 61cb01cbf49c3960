"""The evidence for one campaign as CSV: who had access, who reviewed it, when, the answer, what changed.

Each row also names the ledger entries about the item, so an auditor can check every answer and
consequence against the signed ledger export (``warden audit export``).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AttestCampaign, AttestItem, LedgerEntry
from bot.decisions.service import Outcome
from bot.services.errors import NotFound

COLUMNS = (
    "campaign",
    "campaign_started_at",
    "deadline_at",
    "item",
    "kind",
    "name",
    "external_id",
    "holder",
    "access_held",
    "owner",
    "owner_group",
    "asked_at",
    "reminded_at",
    "reviewed_by",
    "answered_at",
    "answer",
    "transferred_from",
    "escalated_at",
    "escalation",
    "status",
    "removed",
    "removed_at",
    "restore_until",
    "restored_by",
    "restored_at",
    "last_error",
    "ledger_entries",
)

ATTEST_OUTCOMES = tuple(o.value for o in Outcome if o.name.startswith("ATTEST"))


def _when(value: object) -> str:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else ""


def _id(value: int | None) -> str:
    return "" if value is None else str(value)


async def campaign_report(session: AsyncSession, campaign_id: int) -> str:
    campaign = await session.get(AttestCampaign, campaign_id)
    if campaign is None:
        raise NotFound(
            f"There is no attestation campaign #{campaign_id}; `/warden attest status` lists them."
        )
    items = (
        await session.scalars(
            select(AttestItem).where(AttestItem.campaign_id == campaign_id).order_by(AttestItem.id)
        )
    ).all()
    entries: dict[int, list[int]] = defaultdict(list)
    rows = await session.execute(
        select(LedgerEntry.id, LedgerEntry.proof)
        .where(LedgerEntry.guild_id == campaign.guild_id, LedgerEntry.outcome.in_(ATTEST_OUTCOMES))
        .order_by(LedgerEntry.id)
    )
    for entry_id, proof in rows:
        if isinstance(proof, dict) and proof.get("campaign") == campaign_id and "item" in proof:
            entries[int(proof["item"])].append(entry_id)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow(
            {
                "campaign": campaign.id,
                "campaign_started_at": _when(campaign.started_at),
                "deadline_at": _when(campaign.deadline_at),
                "item": item.id,
                "kind": item.kind,
                "name": item.name,
                "external_id": item.external_id,
                "holder": item.external_id if item.kind in ("bot", "standing") else "",
                "access_held": json.dumps(item.access, sort_keys=True),
                "owner": _id(item.owner_id),
                "owner_group": " ".join(item.owner_group or []),
                "asked_at": _when(item.notified_at),
                "reminded_at": _when(item.reminded_at),
                "reviewed_by": _id(item.answered_by),
                "answered_at": _when(item.answered_at),
                "answer": item.answer or "",
                "transferred_from": _id(item.transfer_from) if item.transfer_from else "",
                "escalated_at": _when(item.escalated_at),
                "escalation": item.escalation or "",
                "status": item.status,
                "removed": json.dumps(item.removed, sort_keys=True) if item.removed else "",
                "removed_at": _when(item.removed_at),
                "restore_until": _when(item.restore_until),
                "restored_by": _id(item.restored_by),
                "restored_at": _when(item.restored_at),
                "last_error": item.last_error or "",
                "ledger_entries": " ".join(str(e) for e in entries.get(item.id, [])),
            }
        )
    return out.getvalue()
