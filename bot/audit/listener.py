"""The audit listener: one raw audit-log entry in, one recorded decision (and its revert) out.

``handle`` serves both the gateway (``on_raw``/``GUILD_AUDIT_LOG_ENTRY_CREATE``) and
catch-up, so a live entry and the same entry read back from ``/audit-logs`` take the
same path and the dedupe row makes sure only one of them is decided.

Order inside ``handle``: classify (reads the cache and the grants) → in one
transaction claim the entry, record the decision, note the revert as pending and
move the cursor → after commit, perform the revert → record the revert as its own
decision (``reverted`` or ``revert-failed``: a control that failed). The decision is
durable before anything happens in Discord or anyone is told.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.audit.actions import (
    EditRolePermissions,
    RemoveMemberRole,
    RevertAction,
    RevertPlan,
    action_from_json,
    action_to_json,
    plan_revert,
)
from bot.audit.bursts import BurstTracker
from bot.audit.classify import Classifier, Sanctions, Verdict
from bot.audit.cursor import (
    ClaimDone,
    CursorState,
    advance_cursor,
    catch_up_plan,
    claim_entries,
    complete_claims,
    gap_since,
    load_cursor,
    processed_ids,
)
from bot.audit.decision import AuditDecision, AuditOutcome, BurstSummary, audit_log_gap, standing_access
from bot.audit.drift import state_drift_events
from bot.audit.events import AuditEvent, event_from_payload, snowflake
from bot.audit.ports import (
    ApprovalQueue,
    DecisionRecorder,
    FetchPage,
    GrantLedger,
    GuildFacts,
    GuildSnapshot,
    Reverter,
)
from bot.clock import Clock
from bot.db.models import AuditProcessed, StandingAccess, StandingBaseline

log = logging.getLogger(__name__)

_STANDING = cast(Table, StandingAccess.__table__)
# A Core statement: the ORM has no bulk DELETE with one set of parameters per row.
_FORGET_STANDING = delete(_STANDING).where(
    _STANDING.c.guild_id == bindparam("g"),
    _STANDING.c.role_id == bindparam("r"),
    _STANDING.c.member_id == bindparam("m"),
)

#: ``session.info`` key: per guild, the newest entry this transaction decided (the cursor's target).
_CURSOR_TO = "warden_audit_cursor_to"
#: ``session.info`` key: claim rows to complete (ledger entry, pending revert) before commit.
_CLAIMS_DONE = "warden_audit_claims_done"

#: A revert to perform after commit: (result index, event, verdict, plan, claimed, narrated).
_Revert = tuple[int, AuditEvent, Verdict, RevertPlan, bool, bool]

#: Catch-up stops after this many pages in one run (100 entries each) and resumes next time.
MAX_PAGES = 1000

Status = Literal["decided", "duplicate", "own", "ignored", "dropped"]


@dataclass(frozen=True)
class HandleResult:
    status: Status
    event: AuditEvent
    verdict: Verdict | None = None
    plan: RevertPlan | None = None
    ledger_entry_id: int | None = None
    failures: tuple[str, ...] = ()
    narrated: bool = False


@dataclass
class CatchUpResult:
    guild_id: int
    baseline: bool = False
    pages: int = 0
    decided: int = 0
    skipped: int = 0
    gap: dt.timedelta | None = None
    results: list[HandleResult] = field(default_factory=list)


def revert_reason(event: AuditEvent, rule_id: str) -> str:
    """The X-Audit-Log-Reason of a revert: names Warden, the rule and the entry it undoes."""
    if not event.entry_id:
        return f"Warden revert of drift found at start-up (rule {rule_id})"
    return f"Warden revert of audit-log entry {event.entry_id} (rule {rule_id})"


@dataclass(eq=False, kw_only=True)
class AuditListener:
    """Decides audit events with ``classifier`` over ``facts``, records each decision through
    ``recorder`` and has ``reverter`` undo what is reverted; ``approvals`` (if any) puts an
    ``approve`` before approvers (a pending request or a held change)."""

    classifier: Classifier
    facts: GuildFacts
    recorder: DecisionRecorder
    reverter: Reverter
    clock: Clock
    session_factory: async_sessionmaker[AsyncSession]
    approvals: ApprovalQueue | None = None
    bursts: BurstTracker = field(default_factory=BurstTracker)
    # Guilds whose audit log has been read up to now since the last (re)connect: only
    # then may a live entry move the cursor (otherwise it would jump over missed entries).
    _synced: set[int] = field(default_factory=set, init=False, repr=False)

    async def heartbeat(self) -> None:
        """Note that in-sync guilds are still being watched (call on a schedule, e.g. hourly), so
        a quiet guild is not mistaken for a 45-day gap at the next start-up."""
        if not self._synced:
            return
        now = self.clock.now()
        async with self.session_factory() as session, session.begin():
            for gid in sorted(self._synced):
                await advance_cursor(session, gid, None, now)

    def connection_lost(self) -> None:
        """Call on disconnect: live entries stop moving cursors until the next catch-up."""
        self._synced.clear()

    # ---- one entry ----------------------------------------------------------------------------

    def normalise(self, payload: Any, guild_id: int | None = None) -> AuditEvent:
        gid = guild_id
        if gid is None and isinstance(payload, dict):
            gid = snowflake(payload.get("guild_id"))

        def is_bot(user_id: int) -> bool | None:
            return self.facts.is_bot(gid, user_id) if gid is not None else None

        return event_from_payload(payload, guild_id=guild_id, is_bot=is_bot)

    async def handle(self, payload: Any, *, guild_id: int | None = None) -> HandleResult:
        """Decide one raw audit-log entry (live or from catch-up). Never raises for bad input."""
        return await self.decide(self.normalise(payload, guild_id))

    async def _classify(self, event: AuditEvent, known: Sanctions | None = None) -> Verdict:
        try:
            return await self.classifier.classify(event, known)
        except Exception as exc:  # a cache or database hiccup must not stop the listener
            log.exception(
                "classifying audit-log entry %s failed", event.entry_id, extra={"guild_id": event.guild_id}
            )
            return await self.classifier.classify(
                dataclasses.replace(
                    event, action="unclassified", problem=f"classification failed: {type(exc).__name__}"
                )
            )

    async def decide(self, event: AuditEvent) -> HandleResult:
        """Decide one normalised event: record, then revert. Also used for start-up state drift."""
        return (await self.decide_many([event]))[0]

    async def decide_many(self, events: Sequence[AuditEvent]) -> list[HandleResult]:
        """Decide events in order, recording them all in one transaction (a catch-up page),
        then perform their reverts. Each event is still its own decision and ledger entry."""
        results: list[HandleResult | None] = []
        todo: list[tuple[int, AuditEvent, Verdict, RevertPlan | None]] = []
        await self._forget_standing(events)
        known: Sanctions | None = None
        if len(events) > 1:
            try:
                known = await self.classifier.sanctions_for(events)
            except Exception:  # each event then asks on its own (and is unclassified if that fails)
                log.warning("reading the grants for a batch of audit-log entries failed", exc_info=True)
        for event in events:
            if event.action == "ignored":
                results.append(HandleResult("ignored", event))
            elif event.guild_id is None:
                log.warning("audit-log entry without a guild dropped: %s", event.problem)
                results.append(HandleResult("dropped", event))
            else:
                verdict = await self._classify(event, known)
                plan: RevertPlan | None = None
                if verdict.outcome in (AuditOutcome.BLOCK, AuditOutcome.APPROVE):
                    plan = plan_revert(event, verdict.plan_input(event, verdict.rule))
                todo.append((len(results), event, verdict, plan))
                results.append(None)
        reverts: list[_Revert] = []
        if todo:
            try:
                await self._record_all(todo, results, reverts)
            except BaseException:
                if self.approvals is not None:
                    await self.approvals.notify(committed=False)
                raise
            if self.approvals is not None:
                await self.approvals.notify(committed=True)
        for index, failures in (await self._revert_all(reverts)).items():
            done = results[index]
            assert done is not None
            results[index] = dataclasses.replace(done, failures=failures)
        return [r for r in results if r is not None]

    async def _record_all(
        self,
        todo: list[tuple[int, AuditEvent, Verdict, RevertPlan | None]],
        results: list[HandleResult | None],
        reverts: list[_Revert],
    ) -> None:
        """One transaction: claim every entry, record each decision, note the reverts to perform."""
        now = self.clock.now()
        async with self.session_factory() as session, session.begin():
            by_guild: dict[int, list[int]] = {}
            for _, event, _, _ in todo:
                if event.entry_id and event.guild_id is not None:
                    by_guild.setdefault(event.guild_id, []).append(event.entry_id)
            claims: set[tuple[int, int]] = set()
            for gid, ids in by_guild.items():
                claims |= {(gid, eid) for eid in await claim_entries(session, gid, ids, now)}
            for index, event, verdict, plan in todo:
                assert event.guild_id is not None
                claimed = (event.guild_id, event.entry_id) in claims
                if event.entry_id and not claimed:  # already decided (live vs catch-up, or twice in a page)
                    results[index] = HandleResult("duplicate", event, verdict)
                    continue
                claims.discard((event.guild_id, event.entry_id))
                result = await self._record_one(session, event, verdict, plan, claimed, now)
                results[index] = result
                if result.status == "decided" and plan is not None and plan.actions:
                    reverts.append((index, event, verdict, plan, claimed, result.narrated))
            await complete_claims(session, session.info.pop(_CLAIMS_DONE, []))
            for gid, newest in session.info.pop(_CURSOR_TO, {}).items():
                await advance_cursor(session, gid, newest, now)

    async def _record_one(
        self,
        session: AsyncSession,
        event: AuditEvent,
        verdict: Verdict,
        plan: RevertPlan | None,
        claimed: bool,
        now: dt.datetime,
    ) -> HandleResult:
        gid = event.guild_id
        assert gid is not None
        if verdict.own_action:
            if claimed:
                session.info.setdefault(_CLAIMS_DONE, []).append(ClaimDone(gid, event.entry_id, None))
            await self._advance(session, gid, event, now)
            return HandleResult("own", event, verdict)
        narrate = verdict.outcome != AuditOutcome.ALLOW
        closed: list[BurstSummary] = []
        if narrate:
            narrate, closed = self.bursts.observe(
                event, verdict.outcome.value, verdict.rule_id, event.created_at or now
            )
        decision = self._decision(event, verdict, plan, narrate)
        if verdict.outcome == AuditOutcome.APPROVE and plan is not None and self.approvals is not None:
            # Recorded by the queue, with the request or held change it opens named in the proof.
            ledger_id = await self.approvals.request_approval(
                session, decision, plan.reapply, self.recorder.record
            )
        else:
            ledger_id = await self.recorder.record(session, decision)
        if claimed:
            # Written with the rest of the batch before commit (not one UPDATE per entry).
            pending = [action_to_json(a) for a in plan.actions] if plan is not None and plan.actions else None
            done = ClaimDone(gid, event.entry_id, ledger_id, pending, verdict.rule_id if pending else None)
            session.info.setdefault(_CLAIMS_DONE, []).append(done)
        for summary in closed:
            await self.recorder.record_summary(session, summary)
        await self._advance(session, gid, event, now)
        return HandleResult("decided", event, verdict, plan, ledger_id, narrated=narrate)

    async def _advance(self, session: AsyncSession, gid: int, event: AuditEvent, now: dt.datetime) -> None:
        """Note the entry for the cursor; :meth:`_record_all` moves it once, before commit."""
        if gid in self._synced and event.entry_id:
            newest = session.info.setdefault(_CURSOR_TO, {})
            newest[gid] = max(newest.get(gid, 0), event.entry_id)

    def _decision(
        self, event: AuditEvent, verdict: Verdict, plan: RevertPlan | None, narrate: bool
    ) -> AuditDecision:
        proof: dict[str, Any] = event.proof() | verdict.facts.proof()
        if plan is not None:
            if plan.actions:
                proof["revert"] = plan.describe()
            if plan.not_revertible:
                proof["not_revertible"] = plan.not_revertible
            if verdict.outcome == AuditOutcome.APPROVE and plan.reapply:
                proof["reapply_if_approved"] = [a.describe() for a in plan.reapply]
        assert event.guild_id is not None
        return AuditDecision(
            guild_id=event.guild_id,
            outcome=verdict.outcome,
            rule=verdict.rule_id,
            reason=verdict.reason,
            proof=proof,
            controls=verdict.controls,
            actor_id=event.actor_id,
            audit_entry_id=event.entry_id or None,
            narrate=narrate,
        )

    async def _revert_all(self, reverts: Sequence[_Revert]) -> dict[int, tuple[str, ...]]:
        """Perform every revert first (the first as soon as possible), then record each as its own
        decision — one transaction for all of them (a failure is a failed control)."""
        performed = [(r, *await self._perform(r[1], r[2], r[3])) for r in reverts]
        failures: dict[int, tuple[str, ...]] = {}
        if not performed:
            return failures
        async with self.session_factory() as session, session.begin():
            left: list[ClaimDone] = []
            for (index, event, verdict, _plan, claimed, narrate), done, failed in performed:
                await self.recorder.record(
                    session, self._revert_decision(event, verdict, done, failed, narrate)
                )
                failures[index] = tuple(why for _, why in failed)
                if claimed and event.guild_id is not None:
                    # The claim row was written with the revert pending; what Discord accepted is not.
                    pending = [action_to_json(a) for a, _ in failed] or None
                    left.append(ClaimDone(event.guild_id, event.entry_id, None, pending))
            await complete_claims(session, left)
        return failures

    async def _perform(
        self, event: AuditEvent, verdict: Verdict, plan: RevertPlan
    ) -> tuple[list[RevertAction], list[tuple[RevertAction, str]]]:
        reason = revert_reason(event, verdict.rule_id)
        done: list[RevertAction] = []
        failed: list[tuple[RevertAction, str]] = []
        for action in plan.actions:
            try:
                await self.reverter.perform(action, reason)
            except Exception as exc:  # reported as a failed control, never stops the listener
                log.warning(
                    "revert refused: %s",
                    exc,
                    extra={"guild_id": event.guild_id, "audit_entry": event.entry_id},
                )
                failed.append((action, describe_failure(exc)))
            else:
                done.append(action)
        return done, failed

    def _revert_decision(
        self,
        event: AuditEvent,
        verdict: Verdict,
        done: list[RevertAction],
        failed: list[tuple[RevertAction, str]],
        narrate: bool,
    ) -> AuditDecision:
        assert event.guild_id is not None
        proof: dict[str, Any] = {"audit_log_entry": str(event.entry_id), "event": event.action}
        if done:
            proof["done"] = [a.describe() for a in done]
        # An ``approve`` rule holds the change for approvers; a ``block`` rule simply blocks it.
        did = "holds for approval" if verdict.outcome == AuditOutcome.APPROVE else "blocked"
        if failed:
            proof["failed"] = [f"{a.describe()}: {why}" for a, why in failed]
            outcome, text = (
                AuditOutcome.REVERT_FAILED,
                f"Warden could not fully undo the change rule {verdict.rule_id} {did}; "
                "the access may still exist — fix Warden's permissions or undo it by hand.",
            )
        else:
            outcome, text = AuditOutcome.REVERTED, f"Warden undid the change rule {verdict.rule_id} {did}."
        return AuditDecision(
            guild_id=event.guild_id,
            outcome=outcome,
            rule=verdict.rule_id,
            reason=text,
            proof=proof,
            controls=verdict.controls,
            actor_id=self.classifier.warden_user_id,
            audit_entry_id=event.entry_id or None,
            narrate=bool(failed) or narrate,
        )

    async def retry_pending(self, guild_id: int, *, max_attempts: int = 5) -> int:
        """Try reverts Discord refused again (call on a schedule); returns how many now succeeded.

        A success is recorded as ``reverted``; a repeated failure was already reported once and
        stays pending (visible through :meth:`pending_reverts`) until ``max_attempts``.
        """
        fixed = 0
        for row in await self.pending_reverts(guild_id):
            if row.attempts >= max_attempts or not row.pending_actions:
                continue
            actions = [action_from_json(a) for a in row.pending_actions]
            reason = f"Warden revert of audit-log entry {row.entry_id} (rule {row.rule}), retried"
            left: list[RevertAction] = []
            for action in actions:
                try:
                    await self.reverter.perform(action, reason)
                except Exception as exc:
                    log.info("revert retry refused: %s", exc, extra={"guild_id": guild_id})
                    left.append(action)
            async with self.session_factory() as session, session.begin():
                fresh = await session.get(AuditProcessed, row.id)
                if fresh is None:
                    continue
                fresh.attempts = (fresh.attempts or 0) + 1
                fresh.pending_actions = [action_to_json(a) for a in left] or None
                if not left:
                    fixed += 1
                    await self.recorder.record(
                        session,
                        AuditDecision(
                            guild_id=guild_id,
                            outcome=AuditOutcome.REVERTED,
                            rule=row.rule or "unknown",
                            reason=f"Warden undid the change on a later attempt (rule {row.rule}).",
                            proof={
                                "audit_log_entry": str(row.entry_id),
                                "done": [a.describe() for a in actions],
                            },
                            actor_id=self.classifier.warden_user_id,
                            audit_entry_id=row.entry_id,
                        ),
                    )
        return fixed

    async def reconcile(
        self, guild_id: int, snapshot: GuildSnapshot, *, just_reverted: Sequence[HandleResult] = ()
    ) -> list[HandleResult]:
        """Start-up state comparison: drift whose audit entry may be gone, decided by the same rules.

        ``just_reverted``: what the catch-up before it decided. The cache may not show those reverts
        yet (Discord's gateway event follows the REST answer), so that drift is not decided twice.
        """
        done = reverted_targets(just_reverted)
        events = await state_drift_events(
            guild_id, self.classifier, snapshot, self._grants_for_drift(), now=self.clock.now()
        )
        events = await self._without_standing_access(guild_id, events)
        return [await self.decide(e) for e in events if drift_key(e) not in done]

    async def _without_standing_access(self, guild_id: int, events: list[AuditEvent]) -> list[AuditEvent]:
        """Holders of JIT-managed roles without a grant are drift — except standing access: who
        held such a role when Warden first governed the guild. That first time, they are recorded
        (one ledger decision names them) and left alone; Warden never takes away what it did not give."""
        held = [e for e in events if e.action == "member_role_update" and e.roles_added]
        now = self.clock.now()
        async with self.session_factory() as session, session.begin():
            if await session.get(StandingBaseline, guild_id) is None:
                session.add(StandingBaseline(guild_id=guild_id, recorded_at=now))
                pairs = sorted({(e.roles_added[0], e.target_id) for e in held})
                for role_id, member_id in pairs:
                    session.add(
                        StandingAccess(
                            guild_id=guild_id, role_id=role_id, member_id=member_id, recorded_at=now
                        )
                    )
                if pairs:
                    await self.recorder.record(session, standing_access(guild_id, pairs))
                return [e for e in events if e not in held]
            rows = await session.execute(
                select(StandingAccess.role_id, StandingAccess.member_id).where(
                    StandingAccess.guild_id == guild_id
                )
            )
            standing = {(r, m) for r, m in rows}
        return [e for e in events if not (e in held and (e.roles_added[0], e.target_id) in standing)]

    async def _forget_standing(self, events: Sequence[AuditEvent]) -> None:
        """A standing holder who loses the role loses the standing: given back by hand, it is drift."""
        removed = [
            {"g": e.guild_id, "r": role_id, "m": e.target_id}
            for e in events
            if e.action == "member_role_update" and e.guild_id is not None
            for role_id in e.roles_removed
        ]
        if not removed:
            return
        async with self.session_factory() as session, session.begin():
            # One executemany for the batch (a bulk expiry is a role removal per entry), not a
            # statement per role.
            await (await session.connection()).execute(_FORGET_STANDING, removed)

    def _grants_for_drift(self) -> GrantLedger:
        return self.classifier.grants

    # ---- bursts -------------------------------------------------------------------------------

    async def flush_bursts(self, *, force: bool = False) -> int:
        """Record summaries of bursts that went quiet (call on a short schedule)."""
        summaries = self.bursts.flush() if force else self.bursts.due(self.clock.now())
        if summaries:
            async with self.session_factory() as session, session.begin():
                for summary in summaries:
                    await self.recorder.record_summary(session, summary)
        return len(summaries)

    # ---- catch-up -----------------------------------------------------------------------------

    async def catch_up(self, guild_id: int, fetch_page: FetchPage) -> CatchUpResult:
        """Read the audit log from the cursor to now; at start-up and after every resume."""
        started = self.clock.now()
        result = CatchUpResult(guild_id)
        async with self.session_factory() as session:
            cursor = await load_cursor(session, guild_id)
        result.gap = gap_since(cursor, started)
        if result.gap is not None and cursor is not None:
            await self._record_gap(guild_id, cursor, started)
        after = cursor.last_entry_id if cursor is not None else None
        while result.pages < MAX_PAGES:
            page = await fetch_page(guild_id, after)
            result.pages += 1
            ids = [eid for e in page if isinstance(e, dict) and (eid := snowflake(e.get("id")))]
            async with self.session_factory() as session:
                done = await processed_ids(session, guild_id, ids)
            state = None if cursor is None else CursorState(guild_id, after or 0, cursor.synced_at)
            plan = catch_up_plan(state, page, processed=done)
            result.skipped += len(set(ids)) - len(plan.entries)
            if plan.baseline:
                result.baseline = True
                async with self.session_factory() as session, session.begin():
                    await advance_cursor(session, guild_id, plan.next_after, started)
                break
            if plan.next_after is None or (after is not None and plan.next_after <= after):
                break
            handled = await self.decide_many([self.normalise(entry, guild_id) for entry in plan.entries])
            result.results += handled
            result.decided += sum(h.status == "decided" for h in handled)
            after = plan.next_after
            async with self.session_factory() as session, session.begin():
                await advance_cursor(session, guild_id, after, started)
        else:
            log.warning("audit-log catch-up stopped after %s pages; it resumes next time", MAX_PAGES)
            return result
        async with self.session_factory() as session, session.begin():
            await advance_cursor(session, guild_id, None, started)
        self._synced.add(guild_id)
        return result

    async def _record_gap(self, guild_id: int, cursor: CursorState, now: dt.datetime) -> None:
        async with self.session_factory() as session, session.begin():
            gap = audit_log_gap(
                guild_id, last_entry_id=cursor.last_entry_id, synced_at=cursor.synced_at, caught_up_at=now
            )
            await self.recorder.record(session, gap)

    async def pending_reverts(self, guild_id: int) -> list[AuditProcessed]:
        """Entries whose revert Discord has not confirmed (for retries and ``/warden doctor``)."""
        async with self.session_factory() as session:
            rows = await session.scalars(
                select(AuditProcessed).where(
                    AuditProcessed.guild_id == guild_id, AuditProcessed.pending_actions.is_not(None)
                )
            )
            return list(rows)


def drift_key(event: AuditEvent) -> tuple[str, int, int]:
    """What a state-drift event is about: (kind, member or role, role or 0)."""
    if event.action == "member_role_update" and event.target_id is not None and event.roles_added:
        return ("member_role", event.target_id, event.roles_added[0])
    return ("role", event.target_id or 0, 0)


def reverted_targets(results: Sequence[HandleResult]) -> set[tuple[str, int, int]]:
    """Member roles and role permissions a set of decisions has just put back (without failures)."""
    out: set[tuple[str, int, int]] = set()
    for result in results:
        if result.plan is None or result.failures:
            continue
        for action in result.plan.actions:
            if isinstance(action, RemoveMemberRole):
                out.add(("member_role", action.member_id, action.role_id))
            elif isinstance(action, EditRolePermissions):
                out.add(("role", action.role_id, 0))
    return out


def describe_failure(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    if status is not None:
        return f"Discord refused with {status}" + (f" (code {code})" if code else "")
    return type(exc).__name__
