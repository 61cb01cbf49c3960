"""HeldChanges (bot/audit/held.py) with fakes of its Protocols, on SQLite and PostgreSQL: a change an
``approve`` rule reverted is held, and one of the guild's admins restores or denies it; nobody
deciding expires it."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.audit.actions import AddMemberRole, EditRolePermissions, RevertAction, action_to_json
from bot.audit.decision import AuditDecision, AuditOutcome
from bot.audit.held import HeldChanges
from bot.audit.recorder import LedgerRecorder
from bot.controls import ControlMap
from bot.db.models import HeldChange, HeldStatus, LedgerEntry
from bot.decisions.narrative import narrative_style
from bot.decisions.service import DecisionService
from bot.ledger import Signer
from bot.policy import GuildDirectory
from bot.services.base import Core
from bot.services.errors import AlreadyDecided, NotAllowed, NotFound
from tests.helpers import (
    ADMIN,
    ALICE,
    BOB,
    BOT,
    BOT_MANAGED_ROLE,
    GUILD,
    PLAIN_ROLE,
    FakeFacts,
    FakeReverter,
    audit_policy,
    bits,
)

ADMINISTRATOR = int(bits("administrator"))
REAPPLY: tuple[RevertAction, ...] = (
    AddMemberRole(GUILD, BOT, PLAIN_ROLE),
    EditRolePermissions(GUILD, BOT_MANAGED_ROLE, add_bits=ADMINISTRATOR),
)


@dataclass
class Cards:
    posted: list[int] = field(default_factory=list)
    updated: list[tuple[int, str]] = field(default_factory=list)
    down: bool = False  # the approvals channel refuses the post

    async def held_change_created(self, held: HeldChange) -> None:
        if self.down:
            return
        self.posted.append(held.id)
        held.card_channel_id, held.card_message_id = 77, 1000 + held.id

    async def held_change_updated(self, held: HeldChange) -> None:
        self.updated.append((held.id, held.status))


@dataclass
class Held:
    service: HeldChanges
    reverter: FakeReverter
    cards: Cards
    sessions: Any
    clock: Any
    recorder: LedgerRecorder

    async def hold(self, reapply: tuple[RevertAction, ...] = REAPPLY, actor: int = ADMIN) -> int:
        """What the listener does for an ``approve`` decision: record it through the queue, commit, notify."""
        decision = AuditDecision(
            guild_id=GUILD,
            outcome=AuditOutcome.APPROVE,
            rule="dangerous-bot-quarantined",
            reason="A bot with administrative permissions is quarantined until approvers approve it.",
            proof={"event": "bot_add", "bot_id": BOT, "revert": ["remove the bot's roles"]},
            actor_id=actor,
            audit_entry_id=123456789,
        )
        async with self.sessions() as session, session.begin():
            ledger_id = await self.service.request_approval(session, decision, reapply, self.recorder.record)
        await self.service.notify(committed=True)
        return ledger_id

    async def rows(self) -> list[HeldChange]:
        async with self.sessions() as s:
            return list(await s.scalars(select(HeldChange).order_by(HeldChange.id)))

    async def ledger(self) -> list[LedgerEntry]:
        async with self.sessions() as s:
            return list(await s.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))


@pytest.fixture
def held(session_factory, clock) -> Held:
    decisions = DecisionService(Signer.generate(), ControlMap.load_default(), clock)
    core = Core(
        guilds=GuildDirectory(audit_policy()), sessions=session_factory, clock=clock, decisions=decisions
    )
    reverter, cards = FakeReverter(), Cards()
    service = HeldChanges(core, facts=FakeFacts(), reverter=reverter, cards=cards)
    return Held(service, reverter, cards, session_factory, clock, LedgerRecorder(decisions))


async def test_an_approve_decision_with_something_to_reapply_is_held_and_its_card_posted(held):
    ledger_id = await held.hold()
    (row,) = await held.rows()
    assert row.status == HeldStatus.PENDING and row.ledger_entry_id == ledger_id
    assert row.reapply == [action_to_json(a) for a in REAPPLY]
    assert row.expires_at == held.clock.now() + dt.timedelta(hours=4)  # the guild's pending_ttl
    assert row.target == f"bot:{BOT}" and row.actor_id == ADMIN
    (entry,) = await held.ledger()
    assert entry.outcome == "approval-required" and entry.proof["held_change_id"] == row.id
    assert narrative_style(entry)[0] == "Change reverted — approvers can restore it"
    assert held.cards.posted == [row.id]


async def test_nothing_to_reapply_is_recorded_without_a_card_and_says_so(held):
    await held.hold(reapply=())
    assert await held.rows() == [] and held.cards.posted == []
    (entry,) = await held.ledger()
    assert narrative_style(entry)[0] == "Change reverted — nothing for approvers to restore"


async def test_a_rolled_back_transaction_posts_no_card(held):
    decision = AuditDecision(GUILD, AuditOutcome.APPROVE, "r", "why", {"event": "bot_add"}, actor_id=ADMIN)
    with pytest.raises(RuntimeError):
        async with held.sessions() as session, session.begin():
            await held.service.request_approval(session, decision, REAPPLY, held.recorder.record)
            raise RuntimeError("the batch failed")
    await held.service.notify(committed=False)
    assert held.cards.posted == [] and await held.rows() == []


async def test_an_admin_approves_and_warden_reapplies_it_once(held):
    await held.hold()
    (row,) = await held.rows()
    out = await held.service.approve(row.id, GUILD, BOB)  # BOB holds the admins role
    assert out.status == HeldStatus.APPROVED and out.decided_by == BOB and out.restored_at is not None
    assert [a for a, _ in held.reverter.performed] == list(REAPPLY)
    assert all(reason.startswith("Warden restore") for _, reason in held.reverter.performed)
    restored = (await held.ledger())[-1]
    assert restored.outcome == "change-restored" and restored.rule == "dangerous-bot-quarantined"
    assert restored.proof["approved_by"] == BOB and len(restored.proof["restored"]) == 2
    assert held.cards.updated == [(row.id, HeldStatus.APPROVED)]
    with pytest.raises(AlreadyDecided, match="already approved"):
        await held.service.approve(row.id, GUILD, BOB)
    assert len(held.reverter.performed) == 2


async def test_only_the_guilds_admins_decide_and_never_the_changes_author(held):
    await held.hold(actor=ADMIN)
    (row,) = await held.rows()
    with pytest.raises(NotAllowed, match="Only the server's admins"):
        await held.service.approve(row.id, GUILD, ALICE)
    with pytest.raises(NotAllowed, match="Only the server's admins"):
        await held.service.deny(row.id, GUILD, ALICE)
    with pytest.raises(NotAllowed, match="another admin must"):
        await held.service.approve(row.id, GUILD, ADMIN)
    with pytest.raises(NotFound):
        await held.service.approve(row.id, GUILD + 1, BOB)  # another server's card id
    assert held.reverter.performed == [] and len(await held.ledger()) == 1
    assert [r.status for r in await held.rows()] == [HeldStatus.PENDING]


async def test_two_admins_at_once_restore_it_once(held):
    await held.hold(actor=ALICE)
    (row,) = await held.rows()
    results = await asyncio.gather(
        held.service.approve(row.id, GUILD, BOB),
        held.service.approve(row.id, GUILD, ADMIN),
        return_exceptions=True,
    )
    assert sum(isinstance(r, HeldChange) for r in results) == 1, results
    assert sum(isinstance(r, AlreadyDecided) for r in results) == 1, results
    assert len(held.reverter.performed) == len(REAPPLY)
    assert [e.outcome for e in await held.ledger()].count("change-restored") == 1


async def test_deny_keeps_it_reverted(held):
    await held.hold()
    (row,) = await held.rows()
    out = await held.service.deny(row.id, GUILD, BOB)
    assert out.status == HeldStatus.DENIED and held.reverter.performed == []
    denied = (await held.ledger())[-1]
    assert denied.outcome == "restore-denied" and denied.proof["denied_by"] == BOB
    with pytest.raises(AlreadyDecided, match="already denied"):
        await held.service.approve(row.id, GUILD, BOB)


async def test_nobody_deciding_expires_it_once(held):
    await held.hold()
    (row,) = await held.rows()
    held.clock.advance(dt.timedelta(hours=3, minutes=59))
    assert await held.service.expire_due() == []
    held.clock.advance(dt.timedelta(minutes=1))
    with pytest.raises(AlreadyDecided, match="expired"):
        await held.service.approve(row.id, GUILD, BOB)
    (expired,) = await held.service.expire_due()
    assert expired.status == HeldStatus.EXPIRED
    assert await held.service.expire_due() == []
    assert [e.outcome for e in await held.ledger()] == ["approval-required", "restore-expired"]
    assert held.cards.updated == [(row.id, HeldStatus.EXPIRED)] and held.reverter.performed == []


async def test_discord_refusing_the_restore_is_a_failed_control(held):
    await held.hold()
    (row,) = await held.rows()

    class Forbidden(Exception):
        status, code = 403, 50013

    held.reverter.refuse = Forbidden()
    out = await held.service.approve(row.id, GUILD, BOB)
    assert out.failures and "Discord refused with 403 (code 50013)" in out.failures[0]
    failed = (await held.ledger())[-1]
    assert failed.outcome == "restore-failed" and len(failed.proof["failed"]) == 2
    assert narrative_style(failed)[0] == "Control failed: restore not complete"


async def test_a_restore_a_crash_cut_short_is_finished_by_the_sweep_once(held):
    await held.hold()
    (row,) = await held.rows()
    # The process died right after the Approve was claimed: approved, nothing done in Discord yet.
    async with held.sessions() as s, s.begin():
        await s.execute(
            update(HeldChange)
            .where(HeldChange.id == row.id)
            .values(status=HeldStatus.APPROVED, decided_by=BOB, restore_started_at=held.clock.now())
        )
    held.clock.advance(dt.timedelta(minutes=1))
    assert await held.service.run_due() == 0  # maybe still in progress elsewhere
    held.clock.advance(dt.timedelta(minutes=1))
    assert await held.service.run_due() == 1
    assert [a for a, _ in held.reverter.performed] == list(REAPPLY)
    assert await held.service.run_due() == 0
    assert [e.outcome for e in await held.ledger()] == ["approval-required", "change-restored"]


async def test_a_card_that_never_reached_discord_is_posted_by_the_sweep_once(held):
    held.cards.down = True
    await held.hold()
    (row,) = await held.rows()
    held.clock.advance(dt.timedelta(seconds=31))
    assert await held.service.post_lost_cards() == 0  # still down: released for the next sweep
    held.cards.down = False
    assert await held.service.post_lost_cards() == 1
    assert await held.service.post_lost_cards() == 0
    assert held.cards.posted == [row.id]
